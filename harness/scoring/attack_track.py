"""The attack track: every attack run in its own sandboxed child, its images checked and clipped here, then
classified by every defense's code-free export.

The format of the NIPS 2017 adversarial competition (Kurakin et al., arXiv 1804.00097): attacks and defenses
are submitted separately; the organiser gives each attack the track's clean source images (never their
labels), enforces the budget on what comes back, and lets every defense classify every attack's images.

- **Attackers** (:func:`attackers`): the attack submissions (``track = "attack"``) and the recipe's baselines.
- **Running an attack** (:func:`run_attack`): ``harness.scoring.attack_worker`` in a fresh child under the
  chosen isolation, its time limit the recipe's ``time_limit`` (``defense_time_limit`` per defense with
  white-box access, where the child also gets that defense's export). Its images are checked here
  (:func:`clip_adversarial`): a wrong count or shape, a non-float array or any non-finite value fails the
  attack with the reason; otherwise every image is clipped into ``[0, 1]`` and the eps ball around its clean
  image, and how many needed it is recorded. The clipped images are kept in ``WORK/attacks/`` (their path is
  in the record's details) so later defenses are classified on them without running the attack again.
- **Classification** (:func:`classify`): per defense, one ``harness.scoring.exported_worker predict`` child
  on its export classifies the clean source images and every pending attack's images. Predictions are
  compared with the labels here only.

An :class:`~harness.scoring.store.AttackRecord` is stored per attack run and a
:class:`~harness.scoring.store.MatrixRecord` per (attack, defense), each in one transaction and keyed by
what was run, so a killed organiser resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from dataclasses import dataclass, replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable

import numpy as np

from .. import __version__
from ..atomic import atomic_path
from ..errors import UsageError
from ..sandbox.choice import Isolation
from ..sandbox.limits import default_limits
from .child_run import Entry, RunSettings, check_predictions, read_entry, run_harness_child
from .split import AttackTrackRules, Baseline, HiddenSplit
from .stats import pack_bits
from .store import AttackRecord, MatrixRecord, ResultStore, ScoreRecord, attack_key, latest, matrix_key

#: float slack of the checks: the child's float32 arithmetic, not a budget
ATOL = 1e-5
ATTACKS_DIR = "attacks"
CHILDREN_DIR = "attack-children"


@dataclass(frozen=True)
class Attacker:
    """One attack to run: an attack submission (``root`` its folder) or a baseline of the recipe (``attack`` its
    {name, params}; ``root`` its surrogate's folder, or None)."""

    name: str
    team: str
    framework: str
    kind: str
    content_hash: str
    root: Path | None = None
    attack: dict[str, Any] | None = None
    #: the profile its submission (or surrogate) is resolved with
    profile: str | None = None


@dataclass(frozen=True)
class DefenseTarget:
    """A scored defense as the attack track sees it: its store key and its export (None: ``why`` not)."""

    name: str
    team: str
    key: str
    export: Path | None
    why: str = ""


def baseline_attacker(baseline: Baseline) -> Attacker:
    """A recipe baseline as an attacker: team "organiser", hashed over its settings (and its surrogate's files)."""
    surrogate = read_entry(baseline.surrogate) if baseline.surrogate is not None else None
    settings = {"attack": baseline.attack, "params": dict(baseline.params),
                "surrogate": surrogate.content_hash if surrogate else None, "framework": baseline.framework,
                "profile": baseline.surrogate_profile}
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()
    return Attacker(name=baseline.label, team="organiser", framework=surrogate.framework if surrogate else
                    baseline.framework, kind="baseline", content_hash=digest,
                    root=surrogate.root if surrogate else None,
                    attack={"name": baseline.attack, "params": dict(baseline.params)},
                    profile=baseline.surrogate_profile)


def attackers(entries: list[Entry], rules: AttackTrackRules, profile: str | None) -> list[Attacker]:
    """The attack submissions among ``entries`` (in order, resolved with ``profile``), then the recipe's
    baselines."""
    found = [Attacker(e.name, e.team, e.framework, "submission", e.content_hash, e.root, profile=profile)
             for e in entries if e.track == "attack"]
    return found + [baseline_attacker(b) for b in rules.baselines]


def clip_adversarial(adversarial: Any, clean: np.ndarray, eps: float, norm: str) -> tuple[np.ndarray | None,
                                                                                           dict[str, int], str]:
    """(clipped float32 images, counts, "") or (None, {}, problem): images of the wrong count or shape, not
    floats, or with any non-finite value are refused; the others are clipped into [0, 1] and the ``norm`` ball
    of radius ``eps`` around their clean uint8 images. Counts: images outside the budget, outside [0, 1] and
    changed by the clipping (each beyond float slack ``ATOL``)."""
    adversarial = np.asarray(adversarial)
    if adversarial.shape != clean.shape:
        return None, {}, (f"returned {adversarial.shape[0] if adversarial.ndim else 0} images shaped "
                          f"{adversarial.shape}, expected {clean.shape}")
    if not np.issubdtype(adversarial.dtype, np.floating):
        return None, {}, f"returned {adversarial.dtype} images, expected floats in [0, 1]"
    x = adversarial.astype(np.float64)
    axes = tuple(range(1, x.ndim))
    bad = ~np.isfinite(x).all(axis=axes)
    if bad.any():
        return None, {}, f"image {int(np.argmax(bad))} is not finite ({int(bad.sum())} images with NaN or infinity)"
    origin = clean.astype(np.float64) / 255.0
    delta = x - origin
    if norm == "l2":
        size = np.sqrt((delta ** 2).sum(axis=axes))
        scale = np.minimum(1.0, eps / np.maximum(size, 1e-12)).reshape((-1,) + (1,) * len(axes))
        projected = delta * scale
    else:
        size = np.abs(delta).max(axis=axes) if delta.size else np.zeros(len(x))
        projected = np.clip(delta, -eps, eps)
    # clipping to [0, 1] after the projection only shrinks each coordinate of delta: it stays in the ball
    clipped = np.clip(origin + projected, 0.0, 1.0)
    counts = {"outside_budget": int((size > eps + ATOL).sum()),
              "outside_box": int(((x < -ATOL) | (x > 1 + ATOL)).any(axis=axes).sum()),
              "clipped": int((np.abs(clipped - x) > ATOL).any(axis=axes).sum())}
    return clipped.astype(np.float32), counts, ""


def _keep_images(folder: Path, images: np.ndarray) -> Path:
    """The clipped images, written atomically where later runs find them."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "adversarial.npy"
    with atomic_path(path, suffix=".npy") as tmp:
        np.save(tmp, images)
    return path


def run_attack(attacker: Attacker, split: HiddenSplit, clean: np.ndarray, store: ResultStore, *, profile: str,
               settings: RunSettings, isolation: Isolation, work_dir: Path, defense: DefenseTarget | None = None
               ) -> AttackRecord:
    """Run ``attacker`` once (on ``defense``'s export with white-box access), check and clip its images and
    store the record; returns it."""
    rules = split.attack_track
    defense_key = defense.key if defense is not None else ""
    key = attack_key(attacker.content_hash, split.split_hash, __version__, profile, defense_key)
    label = f"{attacker.name}-{key[:12]}"
    record = AttackRecord(attack=attacker.name, team=attacker.team, framework=attacker.framework,
                          kind=attacker.kind, profile=profile, content_hash=attacker.content_hash,
                          split_hash=split.split_hash, harness_version=__version__,
                          defense=defense.name if defense else "", defense_key=defense_key, status="failed",
                          isolation=isolation.kind)
    details: dict[str, Any] = {"access": rules.access, "eps": rules.eps, "norm": rules.norm,
                               "isolation": isolation.kind, "seed": _seed(attacker, split)}
    if defense is not None and defense.export is None:  # white-box on a model that cannot be attacked code-free
        record.reason = f"not exportable: {defense.why or 'no export'}"
        record.details = details
        store.add_attack(record)
        store.add_matrix(matrix_record(record, defense, split, "failed", record.reason))
        return record
    timeout = rules.defense_time_limit if defense is not None else rules.time_limit
    folder = Path(work_dir) / CHILDREN_DIR / label
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    inputs: dict[str, Path] = {"images.npy": split.attack_images_path}
    if attacker.root is not None:
        inputs["submission"] = attacker.root
    if defense is not None:
        inputs["export"] = defense.export
    child_settings = {"eps": rules.eps, "norm": rules.norm, "seed": details["seed"],
                      "profile": attacker.profile, "attack": attacker.attack, "framework": attacker.framework}
    limits = default_limits(timeout, settings.threads, settings.memory_gb)
    started = time.perf_counter()
    status, reason = run_harness_child(
        "harness.scoring.attack_worker", ["--settings", json.dumps(child_settings)], inputs, folder / "child",
        timeout, settings.threads, isolation, limits, cache=_cache(attacker), withhold=(
            split.summary.get("dataset"), rules.source))
    details["seconds"] = {"child": round(time.perf_counter() - started, 3)}
    if status != "ok":
        record.reason = reason
    else:
        work = folder / "child" / "work"
        try:
            report = json.loads((work / "attack.json").read_text())
            adversarial = np.load(work / "adversarial.npy", mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as exc:
            report, adversarial, record.reason = {}, None, f"attack child wrote no readable result: {exc}"
        if adversarial is not None:
            images, counts, problem = clip_adversarial(adversarial, clean, rules.eps, rules.norm)
            if problem:
                record.reason = f"adversarial images rejected: {problem}"
            else:
                record.status, record.clipped = "ok", counts
                details["images"] = str(_keep_images(Path(work_dir) / ATTACKS_DIR / label, images).resolve())
        if isinstance(report, dict):
            details.update({k: report.get(k) for k in ("hyperparameters", "target", "surrogate", "device")
                            if k in report})
            details["seconds"].update(report.get("seconds") or {})
    shutil.rmtree(folder / "child" / "work" / "surrogate", ignore_errors=True)  # the attack's own model
    record.details = details
    store.add_attack(record)
    return record


def _seed(attacker: Attacker, split: HiddenSplit) -> int:
    """The attack's seed: a submission's own ``seed``; a baseline's from the split hash and its name."""
    if attacker.kind == "submission":
        from ..submission import read_toml, submission_file

        try:
            seed = read_toml(submission_file(attacker.root)).get("seed", 0)
        except UsageError:
            seed = 0
        return int(seed) if isinstance(seed, int) else 0
    return int(hashlib.sha256(f"{split.split_hash}:{attacker.name}".encode()).hexdigest()[:8], 16)


def _cache(attacker: Attacker) -> Path | None:
    """The dataset cache an attack child may read: only when it trains a surrogate (it has a folder)."""
    from ..paths import cache_dir

    return cache_dir() if attacker.root is not None else None


def defense_targets(records: list[ScoreRecord]) -> list[DefenseTarget]:
    """The split's scored defenses (each submission's latest record) with their exports where they still are."""
    targets = []
    for record in latest(records):
        if record.status != "scored":
            continue
        export = (record.details or {}).get("export_dir")
        state = (record.details or {}).get("export") or {}
        if export and Path(export).is_dir():
            targets.append(DefenseTarget(record.submission, record.team, record.key, Path(export)))
        else:
            why = state.get("reason") if isinstance(state, dict) and state.get("reason") else (
                f"its export is gone ({export})" if export else "scored without an export")
            targets.append(DefenseTarget(record.submission, record.team, record.key, None, why))
    return targets


def _partitions(split: HiddenSplit) -> tuple[tuple[str, np.ndarray], ...]:
    public = np.asarray(split.attack_public, dtype=bool)
    return ("public", public), ("private", ~public)


def matrix_record(attack: AttackRecord, defense: DefenseTarget, split: HiddenSplit, status: str, reason: str = "",
                  clean_logits: np.ndarray | None = None, adversarial_logits: np.ndarray | None = None,
                  details: dict[str, Any] | None = None) -> MatrixRecord:
    """The (attack, defense) record; with logits, its counts and per-image correctness per partition."""
    metrics: dict[str, Any] = {}
    correct: dict[str, Any] = {}
    if status == "scored":
        labels = np.asarray(split.attack_labels)
        clean_ok = clean_logits.argmax(axis=1) == labels
        adversarial_ok = adversarial_logits.argmax(axis=1) == labels
        for partition, mask in _partitions(split):
            right, fooled = int(clean_ok[mask].sum()), int((clean_ok & ~adversarial_ok)[mask].sum())
            metrics[partition] = {"count": int(mask.sum()), "clean_correct": right, "fooled": fooled,
                                  "success": fooled / right if right else 0.0}
            correct[partition] = {"clean": pack_bits(clean_ok[mask]), "adversarial": pack_bits(adversarial_ok[mask])}
    return MatrixRecord(attack=attack.attack, attack_kind=attack.kind, attack_key=attack.key,
                        defense=defense.name, defense_team=defense.team, defense_key=defense.key,
                        split_hash=split.split_hash, harness_version=__version__, status=status, reason=reason,
                        metrics=metrics, correct=correct, details=dict(details or {}))


def classify(defense: DefenseTarget, attacks: list[AttackRecord], split: HiddenSplit, clean: np.ndarray,
             store: ResultStore, *, settings: RunSettings, isolation: Isolation, work_dir: Path) -> list[MatrixRecord]:
    """Classify the clean images and every one of ``attacks``' images with ``defense``'s export in one child;
    store and return a matrix record per attack (failed ones with the reason)."""
    if not attacks:
        return []
    if defense.export is None:
        records = [matrix_record(a, defense, split, "failed", f"not exportable: {defense.why}") for a in attacks]
    else:
        folder = Path(work_dir) / CHILDREN_DIR / f"classify-{defense.name}-{defense.key[:12]}"
        records = _classify_in_child(defense, attacks, split, clean, folder, settings, isolation)
    for record in records:
        store.add_matrix(record)
    return records


def _classify_in_child(defense: DefenseTarget, attacks: list[AttackRecord], split: HiddenSplit, clean: np.ndarray,
                       folder: Path, settings: RunSettings, isolation: Isolation) -> list[MatrixRecord]:
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    try:
        stacked = np.concatenate([np.load(a.details["images"], allow_pickle=False) for a in attacks])
    except (OSError, ValueError, KeyError) as exc:
        return [matrix_record(a, defense, split, "failed", f"attack images unreadable: {exc}") for a in attacks]
    np.save(folder / "adversarial.npy", stacked)
    limits = default_limits(settings.timeout, settings.threads, settings.memory_gb)
    started = time.perf_counter()
    status, reason = run_harness_child(
        "harness.scoring.exported_worker", ["predict"],
        {"export": defense.export, "images.npy": split.attack_images_path,
         "adversarial.npy": folder / "adversarial.npy"},
        folder / "child", settings.timeout, settings.threads, isolation, limits)
    details = {"seconds": round(time.perf_counter() - started, 3), "isolation": isolation.kind,
               "attacks_classified": len(attacks)}
    if status != "ok":
        return [matrix_record(a, defense, split, "failed", f"classifying child {reason}", details=details)
                for a in attacks]
    work = folder / "child" / "work"
    num_classes = int(split.summary["num_classes"])
    try:
        clean_logits = check_predictions(work / "clean_logits.npy", len(clean), num_classes)
        logits = check_predictions(work / "adversarial_logits.npy", len(stacked), num_classes)
    except UsageError as exc:
        return [matrix_record(a, defense, split, "failed", f"classifying child: {exc.message}", details=details)
                for a in attacks]
    shutil.rmtree(folder, ignore_errors=True)
    count = len(clean)
    return [matrix_record(a, defense, split, "scored", "", clean_logits, logits[i * count:(i + 1) * count],
                          details) for i, a in enumerate(attacks)]


def run_attack_track(split: HiddenSplit, entries: list[Entry], store: ResultStore, *, profile: str,
                     settings: RunSettings, isolation: Isolation, work_dir: Path, retry_failed: bool = False,
                     invalid: Callable[[Entry], str] = lambda entry: "",
                     event: Callable[[str, Any, str], None] = lambda kind, who, detail: None) -> None:
    """The whole track on ``split``: every attacker of ``entries`` (attack submissions) and of the recipe, run
    where its record is missing (transfer: once; white-box: once per scored defense), then every scored
    defense of the store classifies every stored attack's images it has not classified yet.

    ``invalid(entry)`` gives the TOML-only problem of an attack submission ("" none): recorded, never run.
    ``profile`` names the stored records' profile ("base" for none). ``event(kind, who, detail)`` reports
    "cached", "invalid", "running", "attacked", "failed" and "classified" (``who`` has a name and a framework).
    """
    rules = split.attack_track
    if rules is None:
        return
    work_dir = Path(work_dir)
    clean = np.load(split.attack_images_path, allow_pickle=False)
    defenses = defense_targets(store.records(split.split_hash))
    by_name = {e.name: e for e in entries}
    for attacker in attackers(entries, rules, settings.profile):
        targets = defenses if rules.access == "white-box" else [None]
        for defense in targets:
            key = attack_key(attacker.content_hash, split.split_hash, __version__, profile,
                             defense.key if defense else "")
            shown = replace(attacker, name=attacker.name + (f" vs {defense.name}" if defense else ""))
            if retry_failed:
                store.forget_attack_failure(key)
            if store.has_attack(key):
                event("cached", shown, "already run: kept")
                continue
            reason = invalid(by_name[attacker.name]) if attacker.kind == "submission" else ""
            if reason:
                store.add_attack(AttackRecord(
                    attack=attacker.name, team=attacker.team, framework=attacker.framework, kind=attacker.kind,
                    profile=profile, content_hash=attacker.content_hash, split_hash=split.split_hash,
                    harness_version=__version__, defense=defense.name if defense else "",
                    defense_key=defense.key if defense else "", status="invalid", reason=reason))
                event("invalid", shown, reason)
                continue
            event("running", shown, "")
            record = run_attack(attacker, split, clean, store, profile=profile, settings=settings,
                                isolation=isolation, work_dir=work_dir, defense=defense)
            clipped = record.clipped.get("clipped", 0) if record.status == "ok" else 0
            event("attacked" if record.status == "ok" else "failed", shown,
                  record.reason or (f"{clipped} of {len(clean)} images clipped into the budget" if clipped else ""))
    attack_records = [r for r in store.attack_records(split.split_hash) if r.status == "ok"]
    for defense in defenses:
        pending = [a for a in attack_records if a.defense_key in ("", defense.key)
                   and not store.has_matrix(matrix_key(a.key, defense.key))]
        if not pending:
            continue
        who = SimpleNamespace(name=defense.name, framework="export")
        event("running", who, f"classifying {len(pending)} attacks' images")
        records = classify(defense, pending, split, clean, store, settings=settings, isolation=isolation,
                           work_dir=work_dir)
        failed = [r for r in records if r.status != "scored"]
        event("failed" if failed else "classified", who,
              failed[0].reason if failed else f"{len(records)} attacks' images classified")
