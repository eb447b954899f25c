"""The adaptive scoring phase: each adaptive category attacked white-box on the submission's exported model.

Organiser side, harness code only. For every adaptive category of the split (:func:`adaptive_categories`)
:func:`run_adaptive_phase` starts two fresh sandboxed children of :mod:`harness.scoring.exported_worker`,
each with its own scratch folder holding copies of what it needs and nothing else (no submission, no
labels, no recipe): ``attack`` gets the export and the category's clean images and returns adversarial
images; the organiser checks every one (:func:`check_adversarial`: right count and shape, finite, in
[0, 1], inside the eps ball; nothing is projected here) and ``predict``, a second child, returns the
logits of the clean and the adversarial images. A category whose child fails or returns one bad image
is ``failed`` with the reason; without an export every category is ``failed`` with
``not exportable: <reason>`` and no child starts.

The outcome is written under ``SCRATCH/adaptive/`` (``outcome.json`` plus two ``.npy`` per category, the
JSON last and atomically) so an executor can ship that folder back; :func:`read_adaptive_outcome` reads
it. The children's own scratch folders are under ``SCRATCH/adaptive-children/``.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic import atomic_path, write_json
from ..chunks import open_npy, spans
from ..errors import UsageError
from ..robustness.checks import FLAGS
from ..sandbox.choice import Isolation
from ..sandbox.limits import Limits
from .child_run import Entry, open_predictions, run_child, run_harness_child
from .split import HiddenSplit

OUTCOME_DIR = "adaptive"
CHILDREN_DIR = "adaptive-children"
OUTCOME_FILE = "outcome.json"
#: float slack of the image checks: the child's float32 arithmetic, not a budget
ATOL = 1e-5


@dataclass(frozen=True)
class AdaptiveCategory:
    """One adaptive category: its attack settings (summary.json["adaptive"]) and its images' positions."""

    name: str
    attack: str
    eps: float
    norm: str
    params: dict[str, Any]
    members: list[Any]
    seed: int
    indices: np.ndarray

    def to_dict(self) -> dict[str, Any]:
        """JSON-able, for an executor that runs the phase elsewhere (:meth:`from_dict` reads it back)."""
        return {"name": self.name, **self.settings(), "indices": [int(i) for i in self.indices]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "AdaptiveCategory":
        return cls(**{**data, "indices": np.asarray(data["indices"], dtype=np.int64)})

    def settings(self) -> dict[str, Any]:
        """What the attacking child is told (JSON-able)."""
        return {"attack": self.attack, "eps": self.eps, "norm": self.norm, "params": self.params,
                "members": self.members, "seed": self.seed}


@dataclass
class CategoryOutcome:
    """One category's result: ``status`` "ok" or "failed" (with ``reason``), logits (float32, one row per
    image of the category, in split order), the sanity flags that fired and how it was obtained."""

    status: str
    reason: str = ""
    clean_logits: np.ndarray | None = None
    adversarial_logits: np.ndarray | None = None
    flags: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    def robust_correct(self, labels: np.ndarray) -> np.ndarray:
        """Per image of the category (``labels`` in the same order): both its clean and its adversarial
        prediction equal its label; all False when the category failed (it counts 0)."""
        labels = np.asarray(labels)
        if self.status != "ok" or self.clean_logits is None or self.adversarial_logits is None:
            return np.zeros(len(labels), dtype=bool)
        return (self.clean_logits.argmax(axis=1) == labels) & (self.adversarial_logits.argmax(axis=1) == labels)


@dataclass
class AdaptiveOutcome:
    """Every adaptive category's outcome, by category."""

    categories: dict[str, CategoryOutcome] = field(default_factory=dict)


def adaptive_categories(split: HiddenSplit) -> list[AdaptiveCategory]:
    """The split's adaptive categories in recipe order, with the positions of their images in split order."""
    found = []
    for name, s in (split.summary.get("adaptive") or {}).items():
        indices = np.flatnonzero(np.fromiter((c == name for c in split.categories), bool, len(split.categories)))
        found.append(AdaptiveCategory(name=name, attack=s["attack"], eps=float(s["eps"]), norm=s["norm"],
                                      params=dict(s.get("params") or {}), members=list(s.get("members") or []),
                                      seed=int(s["seed"]), indices=indices))
    return found


def exported_model(scratch: Path) -> tuple[Path | None, str]:
    """(export folder, "") when child 1 exported its model into ``scratch/work/export``, else (None, why not)."""
    work = Path(scratch) / "work"
    try:
        record = json.loads((work / "result.json").read_text()).get("export") or {}
    except (OSError, ValueError, AttributeError) as exc:
        return None, f"no readable result.json: {exc}"
    if record.get("status") != "exported" or not (work / "export").is_dir():
        return None, str(record.get("reason") or "the scoring child wrote no export")
    return work / "export", ""


def run_both_phases(entry: Entry, profile: str | None, images: Path, scratch: Path, timeout: float,
                    threads: int | None, isolation: Isolation, limits: Limits,
                    withhold: tuple[str, str] | None, categories: list[AdaptiveCategory], *,
                    num_classes: int | None = None, cache: Path | None = None,
                    export: bool = False, explain: int = 0) -> tuple[str, str]:
    """Child 1 (:func:`~harness.scoring.child_run.run_child`: train, predict, export when there are adaptive
    ``categories`` or ``export`` is asked for: the attack track classifies with it), then, when it succeeded,
    the adaptive phase on its export; child 1's (status, reason). Both executors run this, so the phase runs
    where child 1 ran. ``explain`` N > 0: child 1 also writes its report of N images (``--explain``)."""
    status, reason = run_child(entry, profile, images, scratch, timeout, threads, isolation, limits, withhold,
                               cache, export=bool(categories) or export, explain=explain)
    if status == "ok" and categories:
        export_dir, why = exported_model(scratch)
        run_adaptive_phase(export_dir, why, images, categories, scratch, timeout, threads, isolation, limits,
                           num_classes=num_classes)
    return status, reason


def check_adversarial(adversarial: Any, clean: np.ndarray, eps: float, norm: str, atol: float = ATOL) -> str:
    """The first problem of returned adversarial images against the clean uint8 ones ("" when none): count and
    shape, finite, inside [0, 1], inside the ``norm`` ball of radius ``eps`` (with ``atol`` float slack).
    Memory maps are checked a chunk at a time."""
    adversarial = np.asarray(adversarial)
    if adversarial.shape != clean.shape:
        return (f"returned {adversarial.shape[0] if adversarial.ndim else 0} images shaped {adversarial.shape}, "
                f"expected {clean.shape}")
    if not np.issubdtype(adversarial.dtype, np.floating):
        return f"returned {adversarial.dtype} images, expected float32 in [0, 1]"
    axes = tuple(range(1, adversarial.ndim))
    found = {"finite": [None, 0], "box": [None, 0], "ball": [None, 0, 0.0]}  # first image, count (, its size)
    for part in spans(len(adversarial)):
        chunk = np.asarray(adversarial[part], dtype=np.float64)
        delta = chunk - np.asarray(clean[part], dtype=np.float64) / 255.0
        size = np.sqrt((delta ** 2).sum(axis=axes)) if norm == "l2" else np.abs(delta).max(axis=axes)
        for name, bad in (("finite", ~np.isfinite(chunk).all(axis=axes)),
                          ("box", ((chunk < -atol) | (chunk > 1 + atol)).any(axis=axes)),
                          ("ball", size > eps + atol)):
            if bad.any() and found[name][0] is None:
                found[name][0] = part.start + int(np.argmax(bad))
                if name == "ball":
                    found[name][2] = float(size[int(np.argmax(bad))])
            found[name][1] += int(bad.sum())
    (first, bad), (box_first, box_bad), (ball_first, ball_bad, distance) = found.values()
    if bad:
        return f"image {first} is not finite ({bad} images with NaN or infinity)"
    if box_bad:
        return f"image {box_first} leaves [0, 1] ({box_bad} images)"
    if ball_bad:
        return (f"image {ball_first} is outside the {norm} ball: distance {distance:.6g} > eps {eps:.6g} "
                f"({ball_bad} images)")
    return ""


def run_adaptive_phase(export_dir: Path | None, export_reason: str, images_path: Path,
                       categories: list[AdaptiveCategory], scratch: Path, timeout: float, threads: int | None,
                       isolation: Isolation | None = None, limits: Limits | None = None, *,
                       num_classes: int | None = None) -> AdaptiveOutcome:
    """Attack and predict every category on the export in ``export_dir`` (None: not exportable, ``export_reason``
    says why); write the outcome under ``scratch/adaptive/`` and return it. ``images_path``: the split's
    images.npy (adaptive images are stored clean); ``timeout`` applies to each child; ``num_classes``, when
    given, is checked against the logits' width."""
    scratch = Path(scratch).resolve()
    images = np.load(images_path, mmap_mode="r", allow_pickle=False)
    outcome = AdaptiveOutcome()
    children = scratch / CHILDREN_DIR
    for category in categories:
        if export_dir is None:
            outcome.categories[category.name] = CategoryOutcome(
                "failed", f"not exportable: {export_reason or 'no export'}", details=_base_details(category))
            continue
        outcome.categories[category.name] = _run_category(Path(export_dir), category, images,
                                                          children / category.name, timeout, threads, isolation,
                                                          limits, num_classes)
    write_adaptive_outcome(scratch, outcome)
    return outcome


def _base_details(category: AdaptiveCategory) -> dict[str, Any]:
    return {**category.settings(), "count": int(len(category.indices))}


def _run_category(export_dir: Path, category: AdaptiveCategory, images: np.ndarray, folder: Path, timeout: float,
                  threads: int | None, isolation: Isolation | None, limits: Limits | None,
                  num_classes: int | None) -> CategoryOutcome:
    """The two children for one category, the image checks between them, and the logits read back; the
    category's clean images are copied out of the split's memory-mapped ``images`` a chunk at a time."""
    details = _base_details(category)
    if not len(category.indices):
        return CategoryOutcome("ok", clean_logits=np.zeros((0, num_classes or 0), np.float32),
                               adversarial_logits=np.zeros((0, num_classes or 0), np.float32), details=details)
    if folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True)
    clean = open_npy(folder / "clean.npy", (len(category.indices), *images.shape[1:]), np.uint8)
    for part in spans(len(category.indices)):
        clean[part] = images[category.indices[part]]
    clean.flush()
    clean = np.load(folder / "clean.npy", mmap_mode="r", allow_pickle=False)
    started = time.perf_counter()
    status, reason = run_harness_child(
        "harness.scoring.exported_worker", ["attack", "--settings", json.dumps(category.settings())],
        {"export": export_dir, "images.npy": folder / "clean.npy"}, folder / "attack", timeout, threads,
        isolation, limits)
    details["seconds"] = {"attack_child": round(time.perf_counter() - started, 3)}
    if status != "ok":
        return CategoryOutcome("failed", f"attack child {reason}", details=details)
    work = folder / "attack" / "work"
    try:
        adversarial = np.load(work / "adversarial.npy", mmap_mode="r", allow_pickle=False)  # shape checked first
        report = json.loads((work / "attack.json").read_text())
        flags = [f for f in report["flags"] if f in FLAGS]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return CategoryOutcome("failed", f"attack child wrote no readable result: {exc}", details=details)
    details.update({k: report.get(k) for k in ("eps_ladder", "hyperparameters", "checks", "projected", "device")})
    # the attacks were given the model's own clean predictions as labels (their "mode" says true-label: from
    # their side those were the labels)
    details["labels"] = "predicted"
    details["seconds"]["attack"] = report.get("seconds")
    details["projections"] = sum(int(v.get("outside_budget", 0)) + int(v.get("outside_box", 0))
                                      + int(v.get("not_finite", 0)) for v in details.get("projected") or [])
    problem = check_adversarial(adversarial, clean, category.eps, category.norm)
    if problem:
        return CategoryOutcome("failed", f"adversarial images rejected: {problem}", flags=flags, details=details)
    np.save(folder / "adversarial.npy", np.asarray(adversarial, dtype=np.float32))
    started = time.perf_counter()
    status, reason = run_harness_child(
        "harness.scoring.exported_worker", ["predict"],
        {"export": export_dir, "images.npy": folder / "clean.npy", "adversarial.npy": folder / "adversarial.npy"},
        folder / "predict", timeout, threads, isolation, limits)
    details["seconds"]["predict_child"] = round(time.perf_counter() - started, 3)
    if status != "ok":
        return CategoryOutcome("failed", f"predict child {reason}", flags=flags, details=details)
    work = folder / "predict" / "work"
    try:
        width = num_classes
        logits = {}
        for name in ("clean_logits", "adversarial_logits"):
            if width is None:
                width = np.load(work / f"{name}.npy", mmap_mode="r", allow_pickle=False).shape[-1]
            logits[name] = open_predictions(work / f"{name}.npy", len(clean), int(width))
    except (UsageError, ValueError, OSError) as exc:
        return CategoryOutcome("failed", f"predict child: {getattr(exc, 'message', exc)}", flags=flags,
                               details=details)
    return CategoryOutcome("ok", "", logits["clean_logits"], logits["adversarial_logits"], flags, details)


def write_adaptive_outcome(scratch: Path, outcome: AdaptiveOutcome) -> Path:
    """``outcome`` as ``scratch/adaptive/outcome.json`` plus ``<category>.clean.npy`` and
    ``<category>.adversarial.npy``; each file atomic, the JSON (which names the arrays) written last."""
    folder = Path(scratch) / OUTCOME_DIR
    folder.mkdir(parents=True, exist_ok=True)
    table = {}
    for name, result in outcome.categories.items():
        entry = {"status": result.status, "reason": result.reason, "flags": result.flags, "details": result.details}
        for key, array in (("clean_logits", result.clean_logits), ("adversarial_logits", result.adversarial_logits)):
            if array is not None:
                entry[key] = f"{name}.{key}.npy"
                with atomic_path(folder / entry[key], suffix=".npy") as tmp:
                    np.save(tmp, np.asarray(array, dtype=np.float32))
        table[name] = entry
    write_json(folder / OUTCOME_FILE, {"categories": table})
    return folder


def read_adaptive_outcome(scratch: Path) -> AdaptiveOutcome:
    """The outcome :func:`run_adaptive_phase` wrote under ``scratch/adaptive/``; UsageError when absent or
    unreadable."""
    folder = Path(scratch) / OUTCOME_DIR
    try:
        table = json.loads((folder / OUTCOME_FILE).read_text())["categories"]
        outcome = AdaptiveOutcome()
        for name, entry in table.items():
            arrays = {key: np.load(folder / entry[key], mmap_mode="r", allow_pickle=False) if entry.get(key) else None
                      for key in ("clean_logits", "adversarial_logits")}
            outcome.categories[name] = CategoryOutcome(entry["status"], entry.get("reason", ""),
                                                       flags=list(entry.get("flags") or []),
                                                       details=dict(entry.get("details") or {}), **arrays)
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise UsageError(f"{folder / OUTCOME_FILE}: unreadable adaptive outcome: {exc}") from None
    return outcome
