"""One entry point for robustness numbers: :func:`evaluate_robustness` -> :class:`RobustnessReport`.

Used by ``harness evaluate --robust`` (participants) and by the organiser's scoring::

    from harness.frameworks import get_runtime
    from harness.robustness import evaluate_robustness

    report = evaluate_robustness(get_runtime("torch"), model, images, labels,
                                 extra_eps=(0.2,), reference=Reference(ref_model),
                                 corruptions="all", seed=0, out_dir="runs/x/robust")
    report.robust_accuracy      # {eps: worst-case accuracy over the ensemble}
    report.flags                # names of the sanity checks that fired
    report.to_dict()            # JSON-able, hyper-parameters of every attack included

Files written to ``out_dir``: robustness.json, robustness.csv (accuracy per attack
and eps), robustness.png (robust accuracy vs eps) and, with corruptions,
corruptions.csv.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from numbers import Real
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from ..atomic import write_json, write_text
from ..errors import UsageError
from ..perturb.severity import SEVERITIES
from . import checks as C
from .corruption import CorruptionResult, corruption_accuracy
from .ensemble import DEFAULT_EPS, Member, build_ensemble, kind, run_member

SCHEMA_VERSION = 1
#: PGD step counts run besides the ensemble's own, for the "more steps must not be weaker" check
STEP_LADDER = (1, 10)
#: examples used by the model checks (determinism, logits, gradients)
CHECK_EXAMPLES = 256
CSV_FIELDS = ("eps", "eps_255", "attack", "kind", "accuracy", "count")


@dataclass
class Reference:
    """The organiser's reference model for transfer robustness: PGD examples made on it are given to the model.

    ``runtime`` None: the evaluated model's runtime. ``steps``/``restarts``: of the PGD made on it.
    """

    model: Any
    runtime: Any = None
    name: str = "reference"
    steps: int = 50
    restarts: int = 1


def transfer_examples(runtime: Any, model: Any, images: np.ndarray, labels: np.ndarray, eps: Iterable[float],
                      *, steps: int = 50, restarts: int = 1, seed: int = 0, batch_size: int = 256
                      ) -> dict[float, np.ndarray]:
    """PGD examples (float32 N,H,W,C) made on ``model`` at each eps: make them once, give them to every submission."""
    from ..frameworks import get_runtime
    from ..registry import create_attack

    runtime = get_runtime(runtime) if isinstance(runtime, str) else runtime
    out = {}
    for i, e in enumerate(sorted(float(v) for v in eps)):
        attack = create_attack("pgd", framework=runtime.name, eps=e, steps=steps, restarts=restarts, seed=seed + i)
        out[e] = runtime.adversarial_images(model, images, labels, attack, batch_size=batch_size)
    return out


@dataclass
class RobustnessReport:
    """Everything :func:`evaluate_robustness` measured; :meth:`to_dict` is the stored JSON."""

    framework: str
    count: int
    num_classes: int
    seed: int
    clean_accuracy: float
    eps: list[float]
    #: eps -> accuracy under the ensemble's per-example worst case
    robust_accuracy: dict[float, float]
    #: attack -> eps -> accuracy under that attack alone
    attack_accuracy: dict[str, dict[float, float]]
    #: attack -> eps -> hyper-parameters
    attack_params: dict[str, dict[float, dict[str, Any]]]
    #: eps -> accuracy under the worst case of the white-box members (what Square is compared with)
    whitebox_accuracy: dict[float, float] = field(default_factory=dict)
    #: steps -> eps -> PGD accuracy (the step-count check)
    pgd_steps_accuracy: dict[int, dict[float, float]] = field(default_factory=dict)
    #: eps -> accuracy on examples transferred from the reference model (None: not measured)
    transfer_accuracy: dict[float, float] | None = None
    transfer: dict[str, Any] | None = None
    checks: list[C.SanityCheck] = field(default_factory=list)
    corruption: CorruptionResult | None = None
    files: dict[str, str] = field(default_factory=dict)
    #: attack (and "ensemble") -> eps -> per-example bool: still correct (not in the JSON)
    survival: dict[str, dict[float, np.ndarray]] = field(default_factory=dict, repr=False)
    #: with ``keep_adversarial``: eps -> float32 N,H,W,C worst-case images (not in the JSON): per example the
    #: first member's image that changed the prediction, else the last member's (clean where not attacked)
    adversarial: dict[float, np.ndarray] = field(default_factory=dict, repr=False)

    @property
    def flags(self) -> list[str]:
        """Names of the sanity checks that fired."""
        return [check.name for check in self.checks if check.flagged]

    def rows(self) -> list[dict[str, Any]]:
        """The CSV rows: clean, every attack, the ensemble and transfer, per eps."""
        rows = [{"eps": 0.0, "attack": "clean", "kind": "clean", "accuracy": self.clean_accuracy}]
        for name, by_eps in self.attack_accuracy.items():
            kind = next(iter(self.attack_params[name].values()), {}).get("kind", "")
            rows += [{"eps": e, "attack": name, "kind": kind, "accuracy": a} for e, a in sorted(by_eps.items())]
        rows += [{"eps": e, "attack": "ensemble", "kind": "worst-case", "accuracy": a}
                 for e, a in sorted(self.robust_accuracy.items())]
        for e, a in sorted((self.transfer_accuracy or {}).items()):
            rows.append({"eps": e, "attack": "transfer", "kind": "transfer", "accuracy": a})
        return [{**row, "eps_255": round(row["eps"] * 255, 4), "count": self.count} for row in rows]

    def to_csv(self) -> str:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=CSV_FIELDS, lineterminator="\n")
        writer.writeheader()
        for row in self.rows():
            writer.writerow({**row, "eps": f"{row['eps']:.6g}", "accuracy": f"{row['accuracy']:.6f}"})
        return buffer.getvalue()

    def to_dict(self) -> dict[str, Any]:
        def series(by_eps: Mapping[float, float]) -> list[dict[str, float]]:
            return [{"eps": float(e), "accuracy": float(a)} for e, a in sorted(by_eps.items())]

        return {
            "schema_version": SCHEMA_VERSION,
            "framework": self.framework,
            "count": self.count,
            "num_classes": self.num_classes,
            "seed": self.seed,
            "clean_accuracy": self.clean_accuracy,
            "eps": [float(e) for e in self.eps],
            "robust_accuracy": series(self.robust_accuracy),
            "attacks": {
                name: {"accuracy": series(by_eps),
                       "params": [self.attack_params[name][e] for e in sorted(self.attack_params[name])]}
                for name, by_eps in self.attack_accuracy.items()
            },
            "whitebox_accuracy": series(self.whitebox_accuracy),
            "pgd_steps_accuracy": [{"steps": int(s), "eps": float(e), "accuracy": float(a)}
                                   for s, by_eps in sorted(self.pgd_steps_accuracy.items())
                                   for e, a in sorted(by_eps.items())],
            "transfer": None if self.transfer_accuracy is None else {
                **(self.transfer or {}), "accuracy": series(self.transfer_accuracy)},
            "flags": self.flags,
            "checks": [check.to_dict() for check in self.checks],
            "corruption": None if self.corruption is None else self.corruption.to_dict(),
            "files": dict(self.files),
        }

    def plot(self, path: str | Path) -> Path:
        """Robust accuracy vs eps (ensemble, each attack, transfer) as a PNG, written atomically."""
        from ..plots import plot_robustness_report

        return plot_robustness_report(self, path)

    def write(self, out_dir: str | Path) -> dict[str, str]:
        """Write robustness.json, robustness.csv, robustness.png (and corruptions.csv) into ``out_dir``."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        self.files["csv"] = str(out / "robustness.csv")
        write_text(self.files["csv"], self.to_csv())
        self.files["png"] = str(self.plot(out / "robustness.png"))
        if self.corruption is not None:
            self.files["corruption_csv"] = str(self.corruption.write_csv(out / "corruptions.csv"))
        self.files["json"] = str(out / "robustness.json")
        write_json(self.files["json"], self.to_dict())
        return dict(self.files)


def _eps_list(eps: Iterable[float], extra_eps: Iterable[float]) -> list[float]:
    values = []
    for value in (*eps, *extra_eps):
        if isinstance(value, bool) or not isinstance(value, Real) or not 0 < float(value) < math.inf:
            raise UsageError(f"eps must be numbers > 0, got {value!r}")
        values.append(float(value))
    if not values:
        raise UsageError("eps needs at least one budget")
    return sorted(set(values))


def _check_images(images: Any, labels: Any) -> tuple[np.ndarray, np.ndarray]:
    images = np.asarray(images)
    if images.dtype != np.uint8 or images.ndim != 4:
        raise UsageError(f"images must be uint8 shaped (N, H, W, C), got {images.dtype} {images.shape}")
    labels = np.asarray(labels)
    if labels.shape != (len(images),) or not np.issubdtype(labels.dtype, np.integer):
        raise UsageError(f"labels must be {len(images)} integers, got {labels.dtype} {labels.shape}")
    return images, labels.astype(np.int64)


def _seed(*parts: int) -> int:
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1)[0])


def _eps_text(eps: float) -> str:
    return f"{eps * 255:.3g}/255"


def _failure(eps: float, exc: Exception) -> str:
    return f"eps {eps * 255:.3g}/255: {type(exc).__name__}: {exc}".splitlines()[0]


@dataclass
class _Target:
    """The model under attack, reached through its runtime."""

    runtime: Any
    model: Any
    batch_size: int
    norm: str = "linf"

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Top class of float32 N,H,W,C images in [0, 1]."""
        return self.runtime.predict_logits_float(self.model, x, batch_size=self.batch_size).argmax(axis=1)

    def attack(self, attack: Any, images: np.ndarray, x: np.ndarray, labels: np.ndarray, eps: float
               ) -> tuple[np.ndarray, dict[str, int]]:
        """Adversarial images of one attack, projected back into the valid set, and what was wrong with them."""
        adversarial = run_member(self.runtime, self.model, attack, images, labels, self.batch_size)
        return C.project_adversarial(adversarial, x, eps, norm=self.norm)


def evaluate_robustness(
    runtime: Any,
    model: Any,
    images: np.ndarray,
    labels: np.ndarray,
    *,
    eps: Sequence[float] = DEFAULT_EPS,
    extra_eps: Sequence[float] = (),
    attacks: Sequence[str | Member] | Mapping[str, Mapping[str, Any]] | None = None,
    reference: Reference | Mapping[float, np.ndarray] | None = None,
    corruptions: str | Iterable[str] | None = None,
    severities: Sequence[int] = SEVERITIES,
    corruption_baseline: Mapping[str, Mapping[int, float]] | str | Path | None = None,
    seed: int = 0,
    out_dir: str | Path | None = None,
    batch_size: int = 256,
    num_classes: int | None = None,
    tolerance: float = C.TOLERANCE,
    progress: bool = True,
    norm: str = "linf",
    keep_adversarial: bool = False,
) -> RobustnessReport:
    """White-box, transfer and corruption robustness of ``model`` with every sanity check.

    - ``runtime``: a :class:`harness.frameworks.Runtime` or its name ("torch", "tf");
      ``images`` uint8 N,H,W,C, ``labels`` int.
    - ``eps`` (default 2/255, 4/255, 8/255) plus ``extra_eps`` (e.g. the organiser's 0.2): L-inf budgets.
    - ``attacks``: ensemble members (:mod:`.ensemble`), any registered attacks: None for pgd, apgd-ce,
      apgd-t and square at their defaults, names, members, or ``{"pgd": {"steps": 20}, "square": {"max_iter": 500}}``.
    - ``reference``: a :class:`Reference` model, or precomputed transfer examples {eps: float images}
      (see :func:`transfer_examples`); reported apart from the white-box numbers.
    - ``corruptions``: None (skip), "benchmark" (15 x severities), "holdout", "all" or names;
      ``corruption_baseline`` (errors or a corruptions.csv) gives mCE.
    - ``seed`` fixes every random step; ``out_dir`` writes the files (see module doc).
    - ``progress``: a bar on a terminal, else a line per attack x eps and stage (:mod:`harness.progress`).
    - ``norm``: the budgets' norm, "linf" or "l2" (every member needs a ``norm`` parameter; no ``reference``).
    - ``keep_adversarial``: keep each example's worst-case image per eps in ``report.adversarial``.
    """
    from ..progress import stage

    with stage("evaluate --robust", enabled=progress) as report:
        return _evaluate(runtime, model, images, labels, eps, extra_eps, attacks, reference, corruptions, severities,
                         corruption_baseline, seed, out_dir, batch_size, num_classes, tolerance, report, norm,
                         keep_adversarial)


def _evaluate(runtime, model, images, labels, eps, extra_eps, attacks, reference, corruptions, severities,
              corruption_baseline, seed, out_dir, batch_size, num_classes, tolerance, report, norm="linf",
              keep_adversarial=False) -> RobustnessReport:
    """The body of :func:`evaluate_robustness`, reporting to the stage ``report``."""
    from ..frameworks import get_runtime

    runtime = get_runtime(runtime) if isinstance(runtime, str) else runtime
    images, labels = _check_images(images, labels)
    if len(images) == 0:
        raise UsageError("evaluate_robustness needs at least one image")
    eps_values = _eps_list(eps, extra_eps)
    if norm not in ("linf", "l2"):
        raise UsageError(f"norm must be linf or l2, got {norm!r}")
    if norm != "linf" and reference is not None:
        raise UsageError("transfer examples are linf only: no reference with norm l2")
    members = build_ensemble(attacks, framework=runtime.name)
    for i, member in enumerate(members):  # bad parameters fail here, before anything runs
        member.create(runtime.name, eps_values[0], _seed(seed, i, 0), norm)
    x = images.astype(np.float32) / 255.0
    logits = runtime.predict_logits(model, images, batch_size=batch_size)
    num_classes = int(num_classes or logits.shape[1])
    target = _Target(runtime, model, batch_size, norm)
    clean_correct = logits.argmax(axis=1) == labels
    count = len(labels)
    idx = np.flatnonzero(clean_correct)
    report.line(f"clean accuracy {clean_correct.mean():.1%} on {count} images; "
                f"{len(members)} attacks x {len(eps_values)} eps")
    report.bar("attacks", len(members) * len(eps_values))

    # ---- the ensemble, on the examples the model gets right
    survived = {m.name: {} for m in members}
    params: dict[str, dict[float, dict[str, Any]]] = {m.name: {} for m in members}
    violations: dict[str, dict[float, dict[str, int]]] = {m.name: {} for m in members}
    errors: dict[str, list[str]] = {m.name: [] for m in members}
    kinds: dict[str, str] = {}
    kept: dict[float, np.ndarray] = {}
    for j, e in enumerate(eps_values):
        taken = np.zeros(len(idx), dtype=bool)  # examples whose kept image already changed the prediction
        if keep_adversarial:
            kept[e] = x.copy()
        for i, member in enumerate(members):
            attack = member.create(runtime.name, e, _seed(seed, i, j), norm)
            params[member.name][e] = member.hyperparameters(attack, runtime.name)
            kinds[member.name] = kind(attack)
            alive = np.zeros(count, dtype=bool)
            before = len(errors[member.name])
            if len(idx):
                try:
                    adversarial, bad = target.attack(attack, images[idx], x[idx], labels[idx], e)
                except Exception as exc:  # noqa: BLE001 - recorded and flagged, the others still run
                    errors[member.name].append(_failure(e, exc))
                    adversarial, bad = x[idx], {}
                violations[member.name][e] = bad
                alive[idx] = target.predict(adversarial) == labels[idx]
                if keep_adversarial:
                    chosen = ~taken & (~alive[idx] | (i == len(members) - 1))
                    kept[e][idx[chosen]] = adversarial[chosen]
                    taken |= ~alive[idx]
            survived[member.name][e] = alive
            failed = " (attack failed)" if len(errors[member.name]) > before else ""
            report.done(f"{member.name} eps {_eps_text(e)} done (robust {alive.mean():.1%}){failed}")
    attack_accuracy = {name: {e: float(a.mean()) for e, a in by_eps.items()} for name, by_eps in survived.items()}
    robust = {e: float(np.logical_and.reduce([survived[m.name][e] for m in members]).mean()) for e in eps_values}
    whitebox_members = [m for m in members if kinds[m.name] == "white-box"]
    whitebox = {e: float(np.logical_and.reduce([survived[m.name][e] for m in whitebox_members]).mean())
                for e in eps_values} if whitebox_members else {}

    # ---- PGD at fewer steps: more steps must not be weaker
    pgd = next((m for m in members if m.name == "pgd"), None)
    by_steps: dict[int, dict[float, np.ndarray]] = {}
    if pgd is not None:
        pgd_steps = params["pgd"][eps_values[0]]["steps"]
        by_steps[pgd_steps] = survived[pgd.name]
        report.line(f"pgd at fewer steps ({', '.join(str(s) for s in STEP_LADDER if s < pgd_steps) or 'none'})")
        for steps in (s for s in STEP_LADDER if s < pgd_steps):
            member = Member("pgd", {"steps": steps, "restarts": 1})
            by_steps[steps] = {}
            for j, e in enumerate(eps_values):
                alive = np.zeros(count, dtype=bool)
                if len(idx):
                    try:
                        attack = member.create(runtime.name, e, _seed(seed, 1000 + steps, j), norm)
                        adversarial, _ = target.attack(attack, images[idx], x[idx], labels[idx], e)
                    except Exception as exc:  # noqa: BLE001 - the same failure as the pgd member's, recorded
                        errors.setdefault(f"pgd-{steps}-steps", []).append(_failure(e, exc))
                        adversarial = x[idx]
                    alive[idx] = target.predict(adversarial) == labels[idx]
                by_steps[steps][e] = alive

    # ---- transfer from the reference model
    transfer_accuracy, transfer_info = None, None
    if reference is not None:
        report.line("transfer from the reference model")
        if isinstance(reference, Reference):
            ref_runtime = runtime if reference.runtime is None else reference.runtime
            examples = transfer_examples(ref_runtime, reference.model, images, labels, eps_values,
                                         steps=reference.steps, restarts=reference.restarts, seed=_seed(seed, 2000),
                                         batch_size=batch_size)
            transfer_info = {"reference": reference.name, "attack": "pgd", "steps": reference.steps,
                             "restarts": reference.restarts}
        else:
            examples = {float(e): np.asarray(v) for e, v in reference.items()}
            transfer_info = {"reference": "precomputed examples"}
        transfer_accuracy = {}
        for e in eps_values:
            key = next((k for k in examples if math.isclose(k, e, rel_tol=1e-6)), None)
            if key is not None:
                adversarial, _ = C.project_adversarial(examples[key], x, e)
                transfer_accuracy[e] = float(np.mean(target.predict(adversarial) == labels))

    # ---- model checks on a subset
    report.line("sanity checks")
    subset = images[:CHECK_EXAMPLES]
    passes = [logits[: len(subset)]] + [runtime.predict_logits(model, subset, batch_size=batch_size)
                                        for _ in range(C.DETERMINISM_PASSES - 1)]
    gradients = runtime.input_gradients(model, x[: len(subset)], labels[: len(subset)], batch_size=batch_size)
    series = {"ensemble": {e: np.logical_and.reduce([survived[m.name][e] for m in members]) for e in eps_values},
              **survived}
    square = attack_accuracy.get("square")
    report_checks = [
        C.check_eps_monotone(series, clean_correct, tolerance),
        C.check_steps_monotone(by_steps, tolerance) if pgd is not None
        else C.skipped(C.MORE_STEPS_WEAKER, "pgd is not in the ensemble"),
        C.check_transfer(robust, transfer_accuracy, tolerance) if transfer_accuracy
        else C.skipped(C.WHITEBOX_WEAKER_THAN_TRANSFER, "no reference model"),
        C.check_blackbox(whitebox, square, tolerance) if square is not None and whitebox
        else C.skipped(C.BLACKBOX_BEATS_WHITEBOX, "needs square and a white-box attack"),
        C.check_determinism(passes),
        C.check_logits(logits),
        C.check_gradients(gradients),
        C.check_budgets(violations),
        C.check_failures(errors),
    ]

    corruption = None
    if corruptions is not None:
        corruption = corruption_accuracy(lambda batch: runtime.predict_logits(model, batch, batch_size=batch_size),
                                         images, labels, corruptions, severities, seed,
                                         baseline=corruption_baseline, progress=report.mode != "off")

    result = RobustnessReport(
        framework=runtime.name, count=count, num_classes=num_classes, seed=int(seed),
        clean_accuracy=float(clean_correct.mean()), eps=eps_values, robust_accuracy=robust,
        attack_accuracy=attack_accuracy, attack_params=params,
        pgd_steps_accuracy={k: {e: float(v.mean()) for e, v in by_eps.items()} for k, by_eps in by_steps.items()},
        transfer_accuracy=transfer_accuracy, transfer=transfer_info, checks=report_checks, corruption=corruption,
        whitebox_accuracy=whitebox, survival=series, adversarial=kept,
    )
    if out_dir is not None:
        result.write(out_dir)
    return result
