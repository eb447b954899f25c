"""The organiser's side of a scoring child's report (``harness score --explain N``): read back, checked, drawn.

The child (:func:`harness.scoring.worker.report_step`) runs submission code, so everything it wrote is
hostile input: files are capped in size (symbolic links and anything not a plain file refused),
``explain.npz`` is opened without pickles with its members' unpacked sizes capped, and every array is
checked (numeric dtypes, consistent shapes, finite values, at most ``MAX_IMAGES`` images of at most
``MAX_SIDE`` pixels a side, class ids in range, short printable names); ``history.json`` may hold at most
``MAX_EPOCHS`` epochs of finite numbers. Only then are ``explain.png`` and ``activations.png`` drawn, here,
with :mod:`harness.plots`, into one folder per result (replaced as a whole). :func:`report_details` gives
what a record's ``details`` gain; it never raises: anything wrong is a failed report with a one-line reason,
and the result is scored all the same.
"""

from __future__ import annotations

import json
import math
import shutil
import stat
import zipfile
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from ..atomic import atomic_directory
from ..explain import ACTIVATION_CHANNELS, ACTIVATION_LAYERS, TOPK
from .worker import EXPLAIN_FILE, HISTORY_FILE, REPORT_DIR

#: caps on what a child's report may hold (the pictures' layers, channels and top classes: what a harness child
#: makes, so that a hostile one cannot make the organiser draw for long)
MAX_NPZ_BYTES = 20 * 2**20
MAX_HISTORY_BYTES = 2**20
MAX_IMAGES, MAX_SIDE, MAX_EPOCHS = 16, 512, 1000
MAX_NAME, MAX_CLASSES, MAX_TOPK = 100, 100_000, TOPK
MAX_LAYERS, MAX_CHANNELS, MAX_MEMBERS = ACTIVATION_LAYERS, ACTIVATION_CHANNELS, 64
#: float slack of the [0, 1] range checks (the child's float32 arithmetic)
ATOL = 1e-3
#: the pictures drawn, by what they show
PICTURES = {"explain": "explain.png", "activations": "activations.png"}
#: the per-epoch values a record keeps (``details["history"]``); the val ones may be None
HISTORY_KEYS = ("epoch", "train_loss", "train_top1", "val_loss", "val_top1", "lr")


class BadReport(Exception):
    """What is wrong with a child's report, as one line."""


def report_details(work: Path, folder: Path, child: Any, *, name: str, num_classes: int | None = None,
                   images: int = MAX_IMAGES) -> dict[str, Any]:
    """``{"history": [...], "report": {...}}`` for a scored record's details from the child's ``work`` folder
    (``child``: the ``"report"`` entry of its result.json; ``images``: how many it was asked to explain, the most
    it may return); the pictures go into ``folder``. Never raises."""
    history: list[dict[str, Any]] = []
    source = Path(work) / REPORT_DIR
    if not isinstance(child, Mapping):
        report = {"status": "none", "reason": "the scoring child made no report"}
    else:
        try:
            if (source / HISTORY_FILE).exists() or (source / HISTORY_FILE).is_symlink():
                history = read_history(source / HISTORY_FILE)
            if child.get("status") != "ok":
                raise BadReport(f"the scoring child's report failed: {one_line(child.get('reason'))}")
            explained = read_explained(source / EXPLAIN_FILE, num_classes, images)
            with atomic_directory(folder) as tmp:
                explained.draw(tmp / PICTURES["explain"], tmp / PICTURES["activations"], name)
                pictures = {kind: file for kind, file in PICTURES.items() if (tmp / file).is_file()}
            report = {"status": "ok", "reason": one_line(child.get("reason")),
                      "dir": str(Path(folder).resolve()), "pictures": pictures}
        except BadReport as exc:
            report = {"status": "failed", "reason": str(exc)}
        except Exception as exc:  # noqa: BLE001 - a report that cannot be drawn is failed; the result still counts
            report = {"status": "failed", "reason": "drawing the report failed: "
                                                    + one_line(f"{type(exc).__name__}: {exc}")}
    if report["status"] != "ok":
        shutil.rmtree(folder, ignore_errors=True)  # no pictures of an earlier attempt beside a failed report
    return {"history": history, "report": report}


def one_line(text: Any, limit: int = 300) -> str:
    """``text`` (from the child) as one printable line of at most ``limit`` characters."""
    flat = " ".join(str(text or "").split())
    return "".join(c if c.isprintable() else "?" for c in flat)[:limit]


def check_file(path: Path, limit: int) -> None:
    """A plain file (not a link) of at most ``limit`` bytes, else BadReport naming it."""
    try:
        info = path.lstat()
    except OSError:
        raise BadReport(f"{path.name}: missing") from None
    if not stat.S_ISREG(info.st_mode):
        raise BadReport(f"{path.name}: not a plain file")
    if info.st_size > limit:
        raise BadReport(f"{path.name}: {info.st_size} bytes, more than the {limit} allowed")


# --------------------------------------------------------------------------- history.json


def read_history(path: Path) -> list[dict[str, Any]]:
    """The per-epoch metrics of a ``history.json`` (harness.training.history schema), checked."""
    check_file(path, MAX_HISTORY_BYTES)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise BadReport(f"{path.name}: not JSON ({one_line(exc, 120)})") from None
    epochs = data.get("epochs") if isinstance(data, dict) else None
    if not isinstance(epochs, list):
        raise BadReport(f"{path.name}: no list of epochs")
    if len(epochs) > MAX_EPOCHS:
        raise BadReport(f"{path.name}: {len(epochs)} epochs, more than {MAX_EPOCHS}")
    return [_epoch(path.name, i, epoch) for i, epoch in enumerate(epochs)]


def _epoch(file: str, index: int, epoch: Any) -> dict[str, Any]:
    if not isinstance(epoch, dict):
        raise BadReport(f"{file}: epoch {index} is not an object")
    found: dict[str, Any] = {}
    for key in HISTORY_KEYS:
        value = epoch.get(key)
        if value is None and key.startswith("val_"):
            found[key] = None
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise BadReport(f"{file}: epoch {index} {key} is not a finite number")
        found[key] = int(value) if key == "epoch" else float(value)
    return found


# --------------------------------------------------------------------------- explain.npz


def read_explained(path: Path, num_classes: int | None = None, images: int = MAX_IMAGES) -> Any:
    """The :class:`harness.explain.Explained` of an ``explain.npz`` (:meth:`~harness.explain.Explained.arrays`),
    checked; ``num_classes``: how many classes the split has (the class names must match); ``images``: the most
    images it may hold (at most ``MAX_IMAGES``)."""
    check_file(path, MAX_NPZ_BYTES)
    try:
        with zipfile.ZipFile(path) as archive:  # the unpacked sizes, before numpy unpacks anything
            members = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise BadReport(f"{path.name}: not an npz archive ({one_line(exc, 120)})") from None
    if len(members) > MAX_MEMBERS:
        raise BadReport(f"{path.name}: {len(members)} arrays, more than {MAX_MEMBERS}")
    unpacked = sum(m.file_size for m in members)
    if unpacked > MAX_NPZ_BYTES:
        raise BadReport(f"{path.name}: {unpacked} bytes unpacked, more than the {MAX_NPZ_BYTES} allowed")
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile, KeyError) as exc:
        raise BadReport(f"{path.name}: unreadable ({one_line(exc, 120)})") from None
    return _explained(Arrays(path.name, arrays), num_classes, min(int(images), MAX_IMAGES))


class Arrays:
    """The arrays of an npz, each fetched checked for its kind, rank and shape (BadReport naming the array)."""

    def __init__(self, file: str, arrays: dict[str, np.ndarray]):
        self.file, self.arrays = file, arrays

    def bad(self, key: str, problem: str) -> BadReport:
        return BadReport(f"{self.file}: {key} {problem}")

    def get(self, key: str, kind: str, shape: tuple[int | None, ...]) -> np.ndarray:
        """Array ``key`` of ``kind`` "float" (finite), "int" or "str" and ``shape`` (None: any size there)."""
        if key not in self.arrays:
            raise self.bad(key, "is missing")
        value = self.arrays[key]
        wanted = {"float": np.floating, "int": np.integer, "str": np.str_}[kind]
        if not np.issubdtype(value.dtype, wanted):
            raise self.bad(key, f"has dtype {value.dtype}, expected {kind}")
        if value.ndim != len(shape) or any(s is not None and s != v for s, v in zip(shape, value.shape)):
            raise self.bad(key, f"has shape {value.shape}, expected "
                                f"({', '.join('any' if s is None else str(s) for s in shape)})")
        if kind == "float" and not np.isfinite(value).all():
            raise self.bad(key, "holds NaN or infinite values")
        return value

    def within(self, key: str, value: np.ndarray, low: float, high: float) -> np.ndarray:
        if value.size and (value.min() < low or value.max() > high):
            raise self.bad(key, f"has values outside [{low:g}, {high:g}]")
        return value

    def names(self, key: str, value: np.ndarray) -> list[str]:
        names = [str(v) for v in value.reshape(-1)]
        for name in names:
            if len(name) > MAX_NAME or not name.isprintable():
                raise self.bad(key, f"holds a name longer than {MAX_NAME} characters or not printable")
        return names


def _explained(a: Arrays, num_classes: int | None, most: int) -> Any:
    from ..explain import Explained, Explanation, LayerMaps

    labels = a.get("labels", "int", (None,))
    count = len(labels)
    if not 1 <= count <= most:
        raise a.bad("labels", f"has {count} images, expected 1 to {most}")
    class_names = a.names("class_names", a.get("class_names", "str", (None,)))
    if not 1 <= len(class_names) <= MAX_CLASSES or (num_classes is not None and len(class_names) != num_classes):
        raise a.bad("class_names", f"has {len(class_names)} names, expected "
                                   f"{num_classes if num_classes is not None else f'1 to {MAX_CLASSES}'}")
    classes = len(class_names)
    a.within("labels", labels, -1, classes - 1)
    shape = None
    versions = []
    for version in ("clean", "adversarial"):
        images = a.get(f"{version}_images", "float", (count, None, None, None) if shape is None else shape)
        shape = images.shape
        if not (1 <= shape[1] <= MAX_SIDE and 1 <= shape[2] <= MAX_SIDE and shape[3] in (1, 3)):
            raise a.bad(f"{version}_images", f"has shape {shape}: at most {MAX_SIDE} pixels a side, 1 or 3 "
                                             "channels")
        a.within(f"{version}_images", images, -ATOL, 1 + ATOL)
        top_ids = a.get(f"{version}_top_ids", "int", (count, None))
        if not 1 <= top_ids.shape[1] <= min(MAX_TOPK, classes):
            raise a.bad(f"{version}_top_ids", f"has {top_ids.shape[1]} classes per image, expected 1 to "
                                              f"{min(MAX_TOPK, classes)}")
        a.within(f"{version}_top_ids", top_ids, 0, classes - 1)
        top_probs = a.within(f"{version}_top_probs", a.get(f"{version}_top_probs", "float", top_ids.shape),
                             0, 1 + ATOL)
        saliency = a.get(f"{version}_saliency", "float", shape)
        cam = a.within(f"{version}_cam", a.get(f"{version}_cam", "float", shape[:3]), -ATOL, 1 + ATOL)
        versions.append(Explanation(np.clip(images, 0, 1).astype(np.float32), top_ids.astype(np.int64),
                                    top_probs.astype(np.float32), saliency.astype(np.float32),
                                    np.clip(cam, 0, 1).astype(np.float32)))
    attack = a.names("attack", a.get("attack", "str", ()))[0]
    eps = float(a.within("eps", a.get("eps", "float", ()), 0, 1))
    layers = a.names("layers", a.get("layers", "str", (None,)))
    if len(layers) > MAX_LAYERS:
        raise a.bad("layers", f"names {len(layers)} layers, more than {MAX_LAYERS}")
    maps = []
    for i, layer in enumerate(layers):
        channels = a.get(f"layer{i}_channels", "int", (count, None))
        if not 1 <= channels.shape[1] <= MAX_CHANNELS:
            raise a.bad(f"layer{i}_channels", f"has {channels.shape[1]} channels per image, expected 1 to "
                                              f"{MAX_CHANNELS}")
        a.within(f"layer{i}_channels", channels, 0, 1_000_000)
        clean = a.get(f"layer{i}_clean", "float", (count, None, None, channels.shape[1]))
        if not (1 <= clean.shape[1] <= MAX_SIDE and 1 <= clean.shape[2] <= MAX_SIDE):
            raise a.bad(f"layer{i}_clean", f"has shape {clean.shape}: at most {MAX_SIDE} pixels a side")
        adversarial = a.get(f"layer{i}_adversarial", "float", clean.shape)
        maps.append(LayerMaps(layer, channels.astype(np.int64), clean.astype(np.float32),
                              adversarial.astype(np.float32)))
    known = labels >= 0
    return Explained(versions[0], versions[1], class_names, labels.astype(np.int64) if known.all() else None,
                     maps, attack, eps)
