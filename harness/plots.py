"""Every picture the harness draws, from data the caller passes: training curves, robust accuracy vs eps,
corruption heat maps, submissions compared, the demo's leaderboard chart, the attack track's matrix, the
explanation grid and the feature maps of the first convolution layers.

Each function draws one PNG, written atomically, and returns its path. matplotlib is imported only when
drawing, and only its object API (no pyplot: no GUI backend, no global figure state). Reading the files these
pictures come from is the caller's job (``harness plot``: :mod:`harness.cli.plot_cmd`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from .atomic import atomic_path

if TYPE_CHECKING:
    from .explain import Explanation, LayerMaps
    from .robustness.evaluate import RobustnessReport
    from .scoring.store import MatrixRecord, ScoreRecord
    from .training import TrainingHistory

DPI = 100
#: explanation grid: inches per cell, header height in inches; a grid is (columns * CELL) x (HEADER + rows * CELL)
CELL, HEADER = 1.5, 0.6
PANELS = ("image", "top-5", "saliency +", "saliency -", "Grad-CAM")
#: activation picture: inches per cell (its first column is the image, then one column per channel)
MAP_CELL = 1.1


def _figure(width: float, height: float, dpi: float | None = DPI) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=dpi)


def _write(fig: Any, path: str | Path, dpi: float | str | None = DPI, tight: bool = True) -> Path:
    if tight:
        fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", **({} if dpi is None else {"dpi": dpi}))
    return Path(path)


def _colors(count: int) -> list[Any]:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if count <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(count)]


# --------------------------------------------------------------------------- training


def plot_training_curves(history: TrainingHistory, path: str | Path, title: str | None = None) -> Path:
    """Loss and top-1 accuracy per epoch (train and val) of one training.

    Dashed vertical lines mark epochs that started with an event, such as a stage of layers being unfrozen.
    """
    epochs = history.column("epoch")
    fig = _figure(10, 4, dpi=None)
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
    return _write(fig, path)


def plot_curves(histories: Mapping[str, TrainingHistory], out: str | Path) -> Path:
    """Loss and top-1 per epoch of labelled trainings: one -> its training curves (train and val, unfreezing
    events marked); several -> their curves on one chart (val solid, train dashed)."""
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
    return _write(fig, out)


# --------------------------------------------------------------------------- robustness


def plot_robustness(results: Mapping[str, Mapping[str, Any]], out: str | Path) -> Path:
    """Worst-case (ensemble) accuracy vs eps of labelled ``robustness.json`` contents, clean accuracy at eps 0."""
    fig = _figure(7, 4.5)
    ax = fig.subplots()
    for label, data in results.items():
        series = sorted((float(p["eps"]), float(p["accuracy"])) for p in data["robust_accuracy"])
        xs = [0.0] + [e * 255 for e, _ in series]
        ys = [float(data["clean_accuracy"])] + [a for _, a in series]
        flags = data.get("flags") or []
        ax.plot(xs, ys, marker="o", label=label + (f" (flags: {', '.join(flags)})" if flags else ""))
    ax.set_xlabel("L-inf eps (/255)")
    ax.set_ylabel("robust accuracy (worst case over the ensemble)")
    ax.set_ylim(0.0, 1.0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    ax.set_title("robust accuracy vs eps")
    return _write(fig, out)


def plot_robustness_report(report: RobustnessReport, path: str | Path) -> Path:
    """One model's robust accuracy vs eps: each attack, the ensemble's worst case, transfer; flags in red."""
    fig = _figure(6.5, 4.2, dpi=None)
    ax = fig.subplots()
    clean = report.clean_accuracy
    for name, by_eps in report.attack_accuracy.items():
        xs = [0.0, *sorted(by_eps)]
        ax.plot([x * 255 for x in xs], [clean] + [by_eps[e] for e in xs[1:]], marker="o",
                markersize=3, linewidth=1, alpha=0.8, label=name)
    xs = [0.0, *sorted(report.robust_accuracy)]
    ax.plot([x * 255 for x in xs], [clean] + [report.robust_accuracy[e] for e in xs[1:]],
            color="black", linewidth=2.5, marker="o", label="ensemble (worst case)")
    if report.transfer_accuracy:
        xs = [0.0, *sorted(report.transfer_accuracy)]
        ax.plot([x * 255 for x in xs], [clean] + [report.transfer_accuracy[e] for e in xs[1:]],
                color="grey", linestyle="--", marker="s", markersize=3, label="transfer")
    ax.set_xlabel("L-inf eps (/255)")
    ax.set_ylabel("accuracy")
    ax.set_ylim(0.0, 1.0)
    ax.grid(alpha=0.3)
    ax.legend(loc="best", fontsize=8)
    flags = report.flags
    ax.set_title(f"robust accuracy vs eps (n={report.count})" + (f"\nflags: {', '.join(flags)}" if flags else ""),
                 fontsize=9, color="darkred" if flags else "black")
    return _write(fig, path)


def plot_corruptions(corruptions: Sequence[str], severities: Sequence[int], accuracy: np.ndarray, label: str,
                     out: str | Path) -> Path:
    """Accuracy per corruption (rows) and severity (columns) as a heat map; NaN cells are left blank."""
    grid = np.asarray(accuracy, dtype=float)
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
    ax.set_title(f"accuracy under corruptions: {label}", fontsize=9)
    fig.colorbar(image, ax=ax, label="accuracy")
    return _write(fig, out)


# --------------------------------------------------------------------------- submissions compared


def plot_compare(submissions: Sequence[str], sets: Sequence[str], top1: np.ndarray, label: str,
                 out: str | Path) -> Path:
    """Grouped bars: top-1 (``top1[submission, set]``, NaN drawn as 0) of every submission on every set."""
    fig = _figure(max(6.0, 0.5 * len(sets) * len(submissions) + 2), 4.2)
    ax = fig.subplots()
    width = 0.8 / len(submissions)
    positions = np.arange(len(sets))
    for i, (name, color) in enumerate(zip(submissions, _colors(len(submissions)))):
        ax.bar(positions - 0.4 + width * (i + 0.5), np.nan_to_num(top1[i]) * 100, width, label=name, color=color)
    ax.set_xticks(positions, sets, rotation=20 if len(sets) > 4 else 0, fontsize=8)
    ax.set_ylabel("top-1 accuracy (%)")
    ax.set_ylim(0, 100)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    ax.set_title(f"submissions compared: {label}", fontsize=9)
    return _write(fig, out)


def leaderboard_chart(records: Sequence[ScoreRecord], path: str | Path, partition: str = "public") -> Path:
    """Grouped bars: top-1 per perturbation category for every scored submission (best score first)."""
    from .scoring.leaderboard import category_columns

    scored = sorted((r for r in records if r.status == "scored"), key=lambda r: -r.metrics[partition]["score"])
    columns = category_columns(scored)
    fig = _figure(max(6, 1.6 * len(columns) + 2), 4, dpi=120)
    ax = fig.subplots()
    width = 0.8 / max(1, len(scored))
    positions = np.arange(len(columns))
    for i, record in enumerate(scored):
        values = [record.metrics[partition].get(c, 0.0) * 100 for c in columns]
        ax.bar(positions + i * width - 0.4 + width / 2, values, width,
               label=f"{record.submission} ({record.metrics[partition]['score']:.1%})")
    ax.set_xticks(positions, [c.removeprefix("top1_") for c in columns])
    ax.set_ylabel("top-1 accuracy (%)")
    ax.set_ylim(0, 100)
    ax.set_title(f"Hidden split, {partition} partition: accuracy per perturbation")
    if scored:
        ax.legend(fontsize=8, loc="lower left")
    ax.grid(axis="y", alpha=0.3)
    return _write(fig, path, dpi=None)


def attack_matrix_chart(matrix: Sequence[MatrixRecord], out: str | Path, partition: str = "public") -> Path:
    """Heat map of the attack track: attacks (rows, best score first) x defenses (columns), each cell the
    attack's success against the defense in percent (fooled / right when clean); failed cells hatched with an
    "x". Each cell's latest row counts (:func:`harness.scoring.attack_board.latest_matrix`)."""
    from matplotlib.patches import Patch, Rectangle

    from .scoring.attack_board import latest_matrix

    rows = latest_matrix(matrix)
    defenses = sorted({m.defense for m in rows})
    grid: dict[str, dict[str, float | None]] = {}
    for m in rows:
        grid.setdefault(m.attack, {})[m.defense] = (float((m.metrics.get(partition) or {}).get("success", 0.0))
                                                    if m.status == "scored" else None)
    mean = {a: np.mean([v for v in cells.values() if v is not None] or [-1.0]) for a, cells in grid.items()}
    attacks = sorted(grid, key=lambda a: (-mean[a], a))
    values = np.array([[np.nan if grid[a].get(d) is None else grid[a][d] for d in defenses] for a in attacks],
                      dtype=float).reshape(len(attacks), len(defenses))
    fig = _figure(min(16.0, max(6.0, 3.0 + 0.75 * len(defenses))), min(12.0, max(3.0, 2.0 + 0.4 * len(attacks))))
    ax = fig.subplots()
    image = ax.imshow(values * 100, cmap="Reds", vmin=0, vmax=100, aspect="auto")
    failed = False
    for i, attack in enumerate(attacks):
        for j, defense in enumerate(defenses):
            if defense not in grid[attack]:
                continue
            value = grid[attack][defense]
            if value is None:
                failed = True
                ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, hatch="xx", edgecolor="grey",
                                       linewidth=0))
                ax.text(j, i, "x", ha="center", va="center", fontsize=8, color="black")
            else:
                ax.text(j, i, f"{value * 100:.0f}", ha="center", va="center", fontsize=7,
                        color="white" if value > 0.6 else "black")
    ax.set_xticks(range(len(defenses)), defenses, rotation=30 if len(defenses) > 3 else 0, ha="right"
                  if len(defenses) > 3 else "center", fontsize=8)
    ax.set_yticks(range(len(attacks)), attacks, fontsize=8)
    ax.set_xlabel("defense")
    ax.set_ylabel("attack")
    ax.set_title(f"Attack track, {partition} partition\ncell: success (%), the share of the images the defense "
                 "gets right clean that the attack fools", fontsize=8)
    fig.colorbar(image, ax=ax, label="success (%)")
    fig.tight_layout()
    if failed:
        fig.legend(handles=[Patch(facecolor="white", edgecolor="grey", hatch="xx", label="x: failed")],
                   loc="lower left", fontsize=7, frameon=False)
    return _write(fig, out, tight=False)


# --------------------------------------------------------------------------- explanations


def saliency_maps(gradients: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(positive, negative) N,H,W maps: the largest channel of max(g, 0) and of max(-g, 0), scaled per image
    by the larger of the two peaks (so the two maps of an image share one scale)."""
    positive = np.clip(gradients, 0, None).max(axis=-1)
    negative = np.clip(-gradients, 0, None).max(axis=-1)
    peak = np.maximum(positive.max(axis=(1, 2)), negative.max(axis=(1, 2)))[:, None, None]
    peak = np.where(peak > 0, peak, 1.0)
    return positive / peak, negative / peak


def plot_explanations(versions: Sequence[Explanation], class_names: Sequence[str], path: str | Path, *,
                      labels: np.ndarray | None = None, title: str = "", headings: Sequence[str] = ()) -> Path:
    """The explanation grid (rows: images; the five PANELS per version, versions side by side)."""
    rows = len(versions[0].images)
    columns = len(PANELS) * len(versions)
    fig = _figure(columns * CELL, HEADER + rows * CELL)
    axes = np.asarray(fig.subplots(rows, columns, squeeze=False))
    for v, version in enumerate(versions):
        positive, negative = saliency_maps(version.saliency)
        for r in range(rows):
            ax = axes[r, v * len(PANELS): (v + 1) * len(PANELS)]
            image = version.images[r]
            _show_image(ax[0], image)
            truth = None if labels is None else int(labels[r])
            ax[1].axis("off")
            for k, (cid, prob) in enumerate(zip(version.top_ids[r], version.top_probs[r])):
                name = class_names[cid] if cid < len(class_names) else str(cid)
                mark = "*" if truth == int(cid) else " "
                ax[1].text(0.0, 0.9 - 0.19 * k, f"{mark}{prob:4.0%} {name[:16]}", fontsize=7, family="monospace",
                           transform=ax[1].transAxes, color="darkgreen" if truth == int(cid) else "black")
            ax[2].imshow(positive[r], cmap="Reds", vmin=0, vmax=1, interpolation="nearest")
            ax[3].imshow(negative[r], cmap="Blues", vmin=0, vmax=1, interpolation="nearest")
            _show_image(ax[4], image)
            ax[4].imshow(version.cam[r], cmap="jet", alpha=0.45, vmin=0, vmax=1, interpolation="bilinear")
            for a in ax[[0, 2, 3, 4]]:
                a.set_xticks([])
                a.set_yticks([])
            if r == 0:
                heading = headings[v] if v < len(headings) else f"version {v}"
                for a, panel in zip(ax, PANELS):
                    a.set_title(f"{heading}\n{panel}" if panel == "image" else panel, fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=1 - HEADER / (HEADER + rows * CELL),
                        wspace=0.05, hspace=0.1)
    return _write(fig, path, tight=False)


def _show_image(ax: Any, image: np.ndarray) -> None:
    if image.shape[-1] == 1:
        ax.imshow(image[..., 0], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    else:
        ax.imshow(np.clip(image, 0, 1), interpolation="nearest")


def plot_activations(clean: np.ndarray, adversarial: np.ndarray, maps: Sequence[LayerMaps], path: str | Path, *,
                     title: str = "", headings: Sequence[str] = ("clean", "adversarial")) -> Path:
    """Feature maps of the first convolution layers: per image and layer two rows, the clean image and its
    strongest channels above the adversarial image and the same channels; each channel pair shares one colour
    scale (inferno: dark low, bright high), titled with its layer and channel.

    ``clean``/``adversarial``: float [0, 1] N,H,W,C images; ``maps``: one :class:`~harness.explain.LayerMaps`
    per layer."""
    count = len(clean)
    columns = 1 + max(m.clean.shape[-1] for m in maps)
    rows = 2 * count * len(maps)
    fig = _figure(columns * MAP_CELL, HEADER + rows * MAP_CELL)
    axes = np.asarray(fig.subplots(rows, columns, squeeze=False))
    for a in axes.flat:
        a.set_xticks([])
        a.set_yticks([])
        a.set_frame_on(False)
    for i in range(count):
        for l, layer in enumerate(maps):
            top, bottom = axes[2 * (i * len(maps) + l)], axes[2 * (i * len(maps) + l) + 1]
            for ax, image, heading in ((top[0], clean[i], headings[0]), (bottom[0], adversarial[i], headings[1])):
                _show_image(ax, image)
                ax.set_ylabel(heading, fontsize=7)
            top[0].set_title(f"image {i + 1}", fontsize=7)
            for k in range(layer.clean.shape[-1]):
                pair = (layer.clean[i, ..., k], layer.adversarial[i, ..., k])
                low, high = float(min(p.min() for p in pair)), float(max(p.max() for p in pair))
                high = high if high > low else low + 1.0  # a constant pair: one flat colour, not a warning
                for ax, values in zip((top[k + 1], bottom[k + 1]), pair):
                    ax.imshow(values, cmap="inferno", vmin=low, vmax=high, interpolation="nearest")
                top[k + 1].set_title(f"{layer.layer[:12]} ch {int(layer.channels[i, k])}", fontsize=7)
    height = HEADER + rows * MAP_CELL
    if title:  # a fixed distance from the top whatever the height, clear of the first row's titles
        fig.suptitle(title, fontsize=10, y=1 - 0.08 / height, va="top")
    fig.subplots_adjust(left=0.04, right=0.99, bottom=0.01, top=1 - HEADER / height, wspace=0.05, hspace=0.3)
    return _write(fig, path, tight=False)
