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
import time
from dataclasses import dataclass, field
from numbers import Real
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from ..atomic import write_json, write_text
from ..chunks import spans
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
    #: attack -> eps -> accuracy after that member (``cascade``: it and the members before it), or under that
    #: attack alone (``cascade`` False); attacks in the order they ran
    attack_accuracy: dict[str, dict[float, float]]
    #: attack -> eps -> hyper-parameters
    attack_params: dict[str, dict[float, dict[str, Any]]]
    #: eps -> accuracy under the worst case of the white-box members (what Square is compared with)
    whitebox_accuracy: dict[float, float] = field(default_factory=dict)
    #: True: each member attacked only the images still robust (AutoAttack's way); False: each on every one
    cascade: bool = True
    #: attack -> eps -> how many images it attacked
    attacked: dict[str, dict[float, int]] = field(default_factory=dict)
    #: attack -> eps -> wall seconds it took (its attack and predictions, not the checks)
    attack_seconds: dict[str, dict[float, float]] = field(default_factory=dict)
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
            "cascade": self.cascade,
            "attacks": {
                name: {"accuracy": series(by_eps),
                       "attacked": [int(self.attacked.get(name, {}).get(e, 0)) for e in sorted(by_eps)],
                       "seconds": [round(float(self.attack_seconds.get(name, {}).get(e, 0.0)), 3)
                                   for e in sorted(by_eps)],
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


def _transfer(runtime: Any, target: _Target, reference: Reference | Mapping[float, np.ndarray], images: np.ndarray,
              labels: np.ndarray, eps_values: list[float], seed: int, batch_size: int
              ) -> tuple[dict[float, float], dict[str, Any]]:
    """Accuracy on examples transferred from the reference (made chunk by chunk on its model with the seeds of
    :func:`transfer_examples`, or sliced from precomputed ones) and what they were."""
    from ..frameworks import get_runtime
    from ..registry import create_attack

    if isinstance(reference, Reference):
        ref_runtime = runtime if reference.runtime is None else reference.runtime
        ref_runtime = get_runtime(ref_runtime) if isinstance(ref_runtime, str) else ref_runtime
        base = _seed(seed, 2000)
        attacks = {e: create_attack("pgd", framework=ref_runtime.name, eps=e, steps=reference.steps,
                                    restarts=reference.restarts, seed=base + i) for i, e in enumerate(eps_values)}

        def examples(e: float, chunk: np.ndarray) -> np.ndarray:
            return ref_runtime.adversarial_images(reference.model, images[chunk], labels[chunk], attacks[e],
                                                  batch_size=batch_size)

        info = {"reference": reference.name, "attack": "pgd", "steps": reference.steps,
                "restarts": reference.restarts}
    else:
        given = {float(e): v for e, v in reference.items()}

        def examples(e: float, chunk: np.ndarray) -> np.ndarray | None:
            key = next((k for k in given if math.isclose(k, e, rel_tol=1e-6)), None)
            return None if key is None else np.asarray(given[key][chunk[0] : chunk[-1] + 1])

        info = {"reference": "precomputed examples"}
    accuracy = {}
    for e in eps_values:
        correct, missing = 0, False
        for chunk in _chunks(np.arange(len(images)), batch_size):
            adversarial = examples(e, chunk)
            if adversarial is None:
                missing = True
                break
            adversarial, _ = C.project_adversarial(adversarial, _floats(images[chunk]), e)
            correct += int(np.sum(target.predict(adversarial) == labels[chunk]))
        if not missing:
            accuracy[e] = correct / len(images)
    return accuracy, info


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
    cascade: bool = True,
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
    - ``cascade`` (default, as AutoAttack): per eps, each member attacks only the images no member before it
      has broken (white-box members first, then black-box ones), and ``attack_accuracy`` is the accuracy after
      that member; False: every member attacks every correct image and ``attack_accuracy`` is "that attack
      alone" (slower). The worst case per example is the same either way.

    Memory stays bounded by ``batch_size`` images in float32 (``images`` may be a memory-mapped uint8
    array; it is read chunk by chunk, never copied whole), apart from ``keep_adversarial``'s images.
    """
    from ..progress import stage

    with stage("evaluate --robust", enabled=progress) as report:
        return _evaluate(runtime, model, images, labels, eps, extra_eps, attacks, reference, corruptions, severities,
                         corruption_baseline, seed, out_dir, batch_size, num_classes, tolerance, report, norm,
                         keep_adversarial, cascade)


def _chunks(idx: np.ndarray, size: int) -> Iterable[np.ndarray]:
    """``idx`` in consecutive pieces of at most ``size`` (:func:`harness.chunks.spans`)."""
    return (idx[part] for part in spans(len(idx), max(1, size)))


def _floats(images: np.ndarray) -> np.ndarray:
    return images.astype(np.float32) / 255.0


def _evaluate(runtime, model, images, labels, eps, extra_eps, attacks, reference, corruptions, severities,
              corruption_baseline, seed, out_dir, batch_size, num_classes, tolerance, report, norm="linf",
              keep_adversarial=False, cascade=True) -> RobustnessReport:
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
    kinds: dict[str, str] = {}
    for i, member in enumerate(members):  # bad parameters fail here, before anything runs
        kinds[member.name] = kind(member.create(runtime.name, eps_values[0], _seed(seed, i, 0), norm))
    if cascade:  # as AutoAttack: the white-box members first, then the black-box ones, each in the given order
        order = [m for m in members if kinds[m.name] == "white-box"] + [
            m for m in members if kinds[m.name] != "white-box"]
    else:
        order = list(members)
    seeds = {m.name: i for i, m in enumerate(members)}  # a member's seed does not depend on the order
    logits = runtime.predict_logits(model, images, batch_size=batch_size)
    num_classes = int(num_classes or logits.shape[1])
    target = _Target(runtime, model, batch_size, norm)
    clean_correct = logits.argmax(axis=1) == labels
    count = len(labels)
    idx = np.flatnonzero(clean_correct)
    report.line(f"clean accuracy {clean_correct.mean():.1%} on {count} images; "
                f"{len(members)} attacks x {len(eps_values)} eps"
                + (" (each on the images still robust)" if cascade else " (each on every correct image)"))
    report.bar("attacks", len(members) * len(eps_values))

    # ---- the ensemble, on the examples the model gets right (cascade: on those no member has broken yet)
    survived: dict[str, dict[float, np.ndarray]] = {m.name: {} for m in order}
    attacked: dict[str, dict[float, int]] = {m.name: {} for m in order}
    seconds: dict[str, dict[float, float]] = {m.name: {} for m in order}
    params: dict[str, dict[float, dict[str, Any]]] = {m.name: {} for m in order}
    violations: dict[str, dict[float, dict[str, int]]] = {m.name: {} for m in order}
    errors: dict[str, list[str]] = {m.name: [] for m in order}
    kept: dict[float, np.ndarray] = {}
    robust_alive: dict[float, np.ndarray] = {}
    whitebox_alive: dict[float, np.ndarray] = {}
    blackbox_alive: dict[float, np.ndarray] = {}
    pgd_alone: dict[float, np.ndarray] = {}  # pgd's own survival on the images it attacked (the step check)
    pgd_inputs: dict[float, np.ndarray] = {}
    for j, e in enumerate(eps_values):
        alive = clean_correct.copy()  # not broken by any member so far
        whitebox = clean_correct.copy()
        blackbox = clean_correct.copy()
        taken = np.zeros(count, dtype=bool)  # examples whose kept image already changed the prediction
        if keep_adversarial:
            kept[e] = np.zeros(images.shape, np.float32)
            for chunk in _chunks(np.arange(count), batch_size):
                kept[e][chunk] = _floats(images[chunk])
        for i, member in enumerate(order):
            started = time.perf_counter()
            attack = member.create(runtime.name, e, _seed(seed, seeds[member.name], j), norm)
            params[member.name][e] = member.hyperparameters(attack, runtime.name)
            todo = np.flatnonzero(alive) if cascade else idx
            attacked[member.name][e] = len(todo)
            report.line(f"{member.name} eps {_eps_text(e)}: attacking {len(todo)} images")
            broke = np.zeros(count, dtype=bool)
            counts = {"not_finite": 0, "outside_box": 0, "outside_budget": 0}
            failed = ""
            for chunk in _chunks(todo, batch_size):
                x_chunk = _floats(images[chunk])
                try:
                    adversarial, bad = target.attack(attack, images[chunk], x_chunk, labels[chunk], e)
                except Exception as exc:  # noqa: BLE001 - recorded and flagged, the others still run
                    errors[member.name].append(_failure(e, exc))
                    failed = " (attack failed)"
                    break
                counts = {k: counts[k] + bad.get(k, 0) for k in counts}
                fooled = target.predict(adversarial) != labels[chunk]
                broke[chunk[fooled]] = True
                if keep_adversarial:
                    chosen = ~taken[chunk] & (fooled | (i == len(order) - 1))
                    kept[e][chunk[chosen]] = adversarial[chosen]
                    taken[chunk[fooled]] = True
            violations[member.name][e] = counts
            seconds[member.name][e] = time.perf_counter() - started
            alive &= ~broke
            (whitebox if kinds[member.name] == "white-box" else blackbox)[broke] = False
            survived[member.name][e] = alive.copy() if cascade else clean_correct & ~broke
            if member.name == "pgd":
                pgd_alone[e], pgd_inputs[e] = clean_correct & ~broke, todo
            report.done(f"{member.name} eps {_eps_text(e)} done ({'robust' if cascade else 'alone'} "
                        f"{survived[member.name][e].mean():.1%}){failed}")
        robust_alive[e], whitebox_alive[e], blackbox_alive[e] = alive, whitebox, blackbox
    attack_accuracy = {name: {e: float(a.mean()) for e, a in by_eps.items()} for name, by_eps in survived.items()}
    robust = {e: float(a.mean()) for e, a in robust_alive.items()}
    has_whitebox = any(k == "white-box" for k in kinds.values())
    has_blackbox = any(k != "white-box" for k in kinds.values())
    whitebox_accuracy = {e: float(a.mean()) for e, a in whitebox_alive.items()} if has_whitebox else {}
    # the black-box members' effect: (cascade) after them, on what the white-box members left; else on their own
    blackbox_accuracy = ({e: robust[e] if cascade else float(blackbox_alive[e].mean()) for e in eps_values}
                         if has_blackbox else None)

    # ---- PGD at fewer steps, on the images pgd attacked: more steps must not be weaker
    pgd = next((m for m in members if m.name == "pgd"), None)
    by_steps: dict[int, dict[float, np.ndarray]] = {}
    if pgd is not None:
        pgd_steps = params["pgd"][eps_values[0]]["steps"]
        by_steps[pgd_steps] = pgd_alone
        report.line(f"pgd at fewer steps ({', '.join(str(s) for s in STEP_LADDER if s < pgd_steps) or 'none'})")
        for steps in (s for s in STEP_LADDER if s < pgd_steps):
            member = Member("pgd", {"steps": steps, "restarts": 1})
            by_steps[steps] = {}
            for j, e in enumerate(eps_values):
                alive = clean_correct.copy()
                try:
                    attack = member.create(runtime.name, e, _seed(seed, 1000 + steps, j), norm)
                    for chunk in _chunks(pgd_inputs[e], batch_size):
                        adversarial, _ = target.attack(attack, images[chunk], _floats(images[chunk]), labels[chunk],
                                                       e)
                        alive[chunk] = target.predict(adversarial) == labels[chunk]
                except Exception as exc:  # noqa: BLE001 - the same failure as the pgd member's, recorded
                    errors.setdefault(f"pgd-{steps}-steps", []).append(_failure(e, exc))
                by_steps[steps][e] = alive
                report.line(f"pgd-{steps} eps {_eps_text(e)} done (alone {alive.mean():.1%})")

    # ---- transfer from the reference model, chunk by chunk
    transfer_accuracy, transfer_info = None, None
    if reference is not None:
        report.line("transfer from the reference model")
        transfer_accuracy, transfer_info = _transfer(runtime, target, reference, images, labels, eps_values, seed,
                                                    batch_size)

    # ---- model checks on a subset
    report.line("sanity checks")
    subset = images[:CHECK_EXAMPLES]
    passes = [logits[: len(subset)]] + [runtime.predict_logits(model, subset, batch_size=batch_size)
                                        for _ in range(C.DETERMINISM_PASSES - 1)]
    gradients = runtime.input_gradients(model, _floats(subset), labels[: len(subset)], batch_size=batch_size)
    series = {"ensemble": robust_alive, **survived}
    report_checks = [
        C.check_eps_monotone(series, clean_correct, tolerance),
        C.check_steps_monotone(by_steps, tolerance) if pgd is not None
        else C.skipped(C.MORE_STEPS_WEAKER, "pgd is not in the ensemble"),
        C.check_transfer(robust, transfer_accuracy, tolerance) if transfer_accuracy
        else C.skipped(C.WHITEBOX_WEAKER_THAN_TRANSFER, "no reference model"),
        C.check_blackbox(whitebox_accuracy, blackbox_accuracy, tolerance) if blackbox_accuracy and whitebox_accuracy
        else C.skipped(C.BLACKBOX_BEATS_WHITEBOX, "needs a black-box (square) and a white-box attack"),
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
        attack_accuracy=attack_accuracy, attack_params=params, cascade=cascade, attacked=attacked,
        attack_seconds=seconds,
        pgd_steps_accuracy={k: {e: float(v.mean()) for e, v in by_eps.items()} for k, by_eps in by_steps.items()},
        transfer_accuracy=transfer_accuracy, transfer=transfer_info, checks=report_checks, corruption=corruption,
        whitebox_accuracy=whitebox_accuracy, survival=series, adversarial=kept,
    )
    if out_dir is not None:
        result.write(out_dir)
    return result
