"""Charts from saved files (``harness plot``): training curves, robust accuracy vs eps, corruption heat maps,
submissions compared across evaluation sets. Each reads what the harness wrote and draws one PNG, atomically.

Reads: ``metrics.json`` (harness.training), ``robustness.json`` and ``corruptions.csv`` (``harness evaluate
--robust``), ``evaluation.csv`` (``harness evaluate``) or a leaderboard CSV (``harness score``).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .atomic import atomic_path
from .errors import UsageError

DPI = 100


def run_label(path: Path) -> str:
    """A short name for a saved file: ``runs/tiny/cpu/robustness/robustness.json`` -> ``tiny/cpu``."""
    folder = path.resolve().parent
    if folder.name == "robustness":
        folder = folder.parent
    return f"{folder.parent.name}/{folder.name}" if folder.parent.name else folder.name


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise UsageError(f"{path}: no such file")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UsageError(f"{path}: unreadable JSON: {exc}") from None
    if not isinstance(data, dict):
        raise UsageError(f"{path}: expected a JSON object")
    return data


def _read_csv(path: Path, needs: Sequence[str]) -> list[dict[str, str]]:
    if not path.is_file():
        raise UsageError(f"{path}: no such file")
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in needs if c not in (reader.fieldnames or [])]
        if missing:
            raise UsageError(f"{path}: no '{missing[0]}' column")
        return list(reader)


def _save(fig: Any, path: str | Path) -> Path:
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=DPI)
    return Path(path)


def _figure(width: float, height: float) -> Any:
    from matplotlib.figure import Figure  # no pyplot: no GUI backend, no global figure state

    return Figure(figsize=(width, height), dpi=DPI)


def plot_training_curves(history: Any, path: str | Path, title: str | None = None) -> Path:
    """Loss and top-1 accuracy per epoch of a ``TrainingHistory`` (train and val) as a PNG, written atomically.

    Dashed vertical lines mark epochs that started with an event, such as a
    stage of layers being unfrozen.
    """
    from matplotlib.figure import Figure  # no pyplot: no GUI backend, no global figure state

    epochs = history.column("epoch")
    fig = Figure(figsize=(10, 4))
    loss_ax, acc_ax = fig.subplots(1, 2)
    panels = ((loss_ax, "loss", "Loss"), (acc_ax, "top1", "Top-1 accuracy"))
    for ax, metric, label in panels:
        ax.plot(epochs, history.column(f"train_{metric}"), marker="o", markersize=3, label="train")
        val = [np.nan if v is None else v for v in history.column(f"val_{metric}")]
        if not all(np.isnan(v) for v in val):
            ax.plot(epochs, val, marker="o", markersize=3, label="val")
        for epoch, event in history.events:
            ax.axvline(epoch - 0.5, color="grey", linestyle="--", linewidth=1)
            ax.annotate(event, (epoch - 0.5, 1.0), xycoords=("data", "axes fraction"), rotation=90,
                        va="top", ha="right", fontsize=7, color="grey")
        ax.set_xlabel("epoch")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend(loc="best")
    acc_ax.set_ylim(0.0, 1.0)
    fig.suptitle(title or str(history.meta.get("defense", "training")))
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    return Path(path)


def plot_curves(paths: Sequence[Path], out: str | Path) -> Path:
    """Loss and top-1 per epoch of one or more ``metrics.json``: one file -> the training curves (train and val,
    unfreezing events marked); several -> their curves on one chart (val solid, train dashed)."""
    from .training import TrainingHistory

    histories = {}
    for path in paths:
        data = _read_json(Path(path))
        if "epochs" not in data:
            raise UsageError(f"{path}: not a metrics.json (no 'epochs' field)")
        histories[run_label(Path(path))] = TrainingHistory.from_dict(data)
    if len(histories) == 1:
        label, history = next(iter(histories.items()))
        return plot_training_curves(history, out, title=label)
    fig = _figure(11, 4.2)
    panels = fig.subplots(1, 2)
    for (label, history), color in zip(histories.items(), _colors(len(histories))):
        epochs = history.column("epoch")
        for ax, metric in zip(panels, ("loss", "top1")):
            ax.plot(epochs, history.column(f"train_{metric}"), linestyle="--", color=color, alpha=0.6)
            val = [np.nan if v is None else v for v in history.column(f"val_{metric}")]
            ax.plot(epochs, val, marker="o", markersize=3, color=color, label=label)
            for epoch, _event in history.events:
                ax.axvline(epoch - 0.5, color=color, linestyle=":", linewidth=1)
    for ax, name in zip(panels, ("loss", "top-1 accuracy")):
        ax.set_xlabel("epoch")
        ax.set_ylabel(name)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="best")
    panels[1].set_ylim(0.0, 1.0)
    fig.suptitle("val (solid) and train (dashed); dotted lines: layers unfrozen", fontsize=9)
    return _save(fig, out)


def plot_robustness(paths: Sequence[Path], out: str | Path) -> Path:
    """Worst-case (ensemble) accuracy vs eps of several ``robustness.json``, clean accuracy at eps 0."""
    fig = _figure(7, 4.5)
    ax = fig.subplots()
    for path in paths:
        data = _read_json(Path(path))
        if "robust_accuracy" not in data or "clean_accuracy" not in data:
            raise UsageError(f"{path}: not a robustness.json (no 'robust_accuracy' field)")
        series = sorted((float(p["eps"]), float(p["accuracy"])) for p in data["robust_accuracy"])
        xs = [0.0] + [e * 255 for e, _ in series]
        ys = [float(data["clean_accuracy"])] + [a for _, a in series]
        flags = data.get("flags") or []
        ax.plot(xs, ys, marker="o", label=run_label(Path(path)) + (f" (flags: {', '.join(flags)})" if flags else ""))
    ax.set_xlabel("L-inf eps (/255)")
    ax.set_ylabel("robust accuracy (worst case over the ensemble)")
    ax.set_ylim(0.0, 1.0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    ax.set_title("robust accuracy vs eps")
    return _save(fig, out)


def plot_corruptions(path: Path, out: str | Path) -> Path:
    """Accuracy per corruption (rows) and severity (columns) of a ``corruptions.csv`` as a heat map."""
    rows = _read_csv(Path(path), ("corruption", "severity", "accuracy"))
    if not rows:
        raise UsageError(f"{path}: no rows")
    corruptions = list(dict.fromkeys(r["corruption"] for r in rows))
    severities = sorted({int(r["severity"]) for r in rows})
    grid = np.full((len(corruptions), len(severities)), np.nan)
    for r in rows:
        grid[corruptions.index(r["corruption"]), severities.index(int(r["severity"]))] = float(r["accuracy"])
    fig = _figure(2.5 + 0.9 * len(severities), 1.2 + 0.35 * len(corruptions))
    ax = fig.subplots()
    image = ax.imshow(grid, cmap="viridis", vmin=0, vmax=1, aspect="auto")
    for (i, j), value in np.ndenumerate(grid):
        if not np.isnan(value):
            ax.text(j, i, f"{value:.0%}", ha="center", va="center", fontsize=7,
                    color="black" if value > 0.5 else "white")
    ax.set_xticks(range(len(severities)), [str(s) for s in severities])
    ax.set_yticks(range(len(corruptions)), corruptions, fontsize=8)
    ax.set_xlabel("severity")
    ax.set_title(f"accuracy under corruptions: {run_label(Path(path))}", fontsize=9)
    fig.colorbar(image, ax=ax, label="accuracy")
    return _save(fig, out)


def comparison_table(path: Path, partition: str = "public") -> tuple[list[str], list[str], np.ndarray]:
    """(submissions, sets, top-1 matrix) from ``evaluation.csv`` or a leaderboard CSV (its ``top1_*`` columns)."""
    rows = _read_csv(Path(path), ("submission",))
    columns = list(rows[0]) if rows else []
    if "set" in columns and "top1" in columns:  # harness evaluate: one row per submission and set
        submissions = list(dict.fromkeys(r["submission"] for r in rows))
        sets = list(dict.fromkeys(r["set"] for r in rows))
        values = np.full((len(submissions), len(sets)), np.nan)
        for r in rows:
            values[submissions.index(r["submission"]), sets.index(r["set"])] = float(r["top1"])
        return submissions, sets, values
    if "partition" in columns:  # harness score: one row per submission and partition
        rows = [r for r in rows if r["partition"] == partition and r.get("status", "scored") == "scored"]
        sets = [c for c in columns if c.startswith("top1_")]
        submissions = [r["submission"] for r in rows]
        values = np.array([[float(r[c]) if r[c] else np.nan for c in sets] for r in rows]).reshape(len(rows), -1)
        return submissions, [c.removeprefix("top1_") for c in sets], values
    raise UsageError(f"{path}: neither an evaluation CSV (set, top1 columns) nor a leaderboard (partition column)")


def plot_compare(path: Path, out: str | Path, partition: str = "public") -> Path:
    """Grouped bars: top-1 of every submission (bars) on every evaluation set or category (groups)."""
    submissions, sets, values = comparison_table(Path(path), partition)
    if not submissions or not sets:
        raise UsageError(f"{path}: no scored submissions to compare")
    fig = _figure(max(6.0, 0.5 * len(sets) * len(submissions) + 2), 4.2)
    ax = fig.subplots()
    width = 0.8 / len(submissions)
    positions = np.arange(len(sets))
    for i, (name, color) in enumerate(zip(submissions, _colors(len(submissions)))):
        ax.bar(positions - 0.4 + width * (i + 0.5), np.nan_to_num(values[i]) * 100, width, label=name, color=color)
    ax.set_xticks(positions, sets, rotation=20 if len(sets) > 4 else 0, fontsize=8)
    ax.set_ylabel("top-1 accuracy (%)")
    ax.set_ylim(0, 100)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    ax.set_title(f"submissions compared: {Path(path).name}", fontsize=9)
    return _save(fig, out)


def _colors(count: int) -> list[Any]:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if count <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(count)]
