"""Pictures of what a model looks at (``harness explain``): one PNG grid per model.

Each row is one image: the image, its top-5 predictions, the vanilla-gradient
saliency of the predicted class split into positive and negative maps, and a
Grad-CAM overlay; then the same five for its adversarial version. The gradient
maths lives in the framework runtimes (``class_gradients``, ``gradcam``); this
module only arranges and draws.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .atomic import atomic_path
from .errors import UsageError

TOPK = 5
#: inches per grid cell, header height in inches, dots per inch: a grid is
#: (COLUMNS * CELL) x (HEADER + rows * CELL) inches
CELL, HEADER, DPI = 1.5, 0.6, 100
PANELS = ("image", "top-5", "saliency +", "saliency -", "Grad-CAM")
COLUMNS = 2 * len(PANELS)


@dataclass
class Explanation:
    """What the model makes of N float [0, 1] images."""

    images: np.ndarray  # N,H,W,C float in [0, 1]
    top_ids: np.ndarray  # N,k class ids, most likely first
    top_probs: np.ndarray  # N,k softmax probabilities
    saliency: np.ndarray  # N,H,W,C gradient of the top-1 logit
    cam: np.ndarray  # N,H,W Grad-CAM of the top-1 class in [0, 1]


def explain_images(runtime: Any, model: Any, images: np.ndarray, layer: str | None = None) -> Explanation:
    """Top-k, saliency and Grad-CAM of the predicted class for float [0, 1] N,H,W,C ``images``."""
    images = np.asarray(images, dtype=np.float32)
    logits = runtime.predict_logits_float(model, images)
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    top_ids = np.argsort(-probs, axis=1, kind="stable")[:, :TOPK]
    predicted = top_ids[:, 0]
    return Explanation(images, top_ids, np.take_along_axis(probs, top_ids, axis=1),
                       runtime.class_gradients(model, images, predicted),
                       runtime.gradcam(model, images, predicted, layer=layer))


def saliency_maps(gradients: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(positive, negative) N,H,W maps: the largest channel of max(g, 0) and of max(-g, 0), scaled per image
    by the larger of the two peaks (so the two maps of an image share one scale)."""
    positive = np.clip(gradients, 0, None).max(axis=-1)
    negative = np.clip(-gradients, 0, None).max(axis=-1)
    peak = np.maximum(positive.max(axis=(1, 2)), negative.max(axis=(1, 2)))[:, None, None]
    peak = np.where(peak > 0, peak, 1.0)
    return positive / peak, negative / peak


def make_attack(framework: str, attack: str, eps: float, seed: int = 0) -> Any:
    """Attack plugin ``attack`` with ``eps`` and ``seed`` where it takes them."""
    from .registry import create_attack, get_attack

    params = get_attack(attack, framework=framework).params
    return create_attack(attack, framework=framework,
                         **{k: v for k, v in (("eps", eps), ("seed", seed)) if k in params})


def explain_model(loaded: Any, images: np.ndarray, path: str | Path, labels: np.ndarray | None = None, *,
                  attack: str = "fgsm", eps: float = 8 / 255, seed: int = 0, layer: str | None = None,
                  title: str | None = None) -> Path:
    """The PNG grid of a loaded model (:class:`harness.workflow.LoadedModel`) for uint8 N,H,W,C ``images``.

    ``labels`` None: the adversarial examples attack the clean predictions.
    """
    images = np.asarray(images, dtype=np.uint8)
    if images.ndim != 4 or len(images) == 0:
        raise UsageError("explain: no images to explain")
    runtime, model = loaded.runtime, loaded.model
    clean = explain_images(runtime, model, images / np.float32(255.0), layer)
    targets = clean.top_ids[:, 0] if labels is None else np.asarray(labels, dtype=np.int64)
    adversarial = runtime.adversarial_images(model, images, targets,
                                             make_attack(runtime.name, attack, eps, seed))
    attacked = explain_images(runtime, model, np.clip(adversarial, 0.0, 1.0), layer)
    names = list(loaded.info.get("class_names") or [str(i) for i in range(int(loaded.info["num_classes"]))])
    title = title or f"{loaded.submission.name}: clean vs {attack} (eps {eps * 255:.3g}/255)"
    return plot_explanations([clean, attacked], names, path, labels=labels, title=title,
                             headings=("clean", f"{attack} {eps * 255:.3g}/255"))


def plot_explanations(versions: Sequence[Explanation], class_names: Sequence[str], path: str | Path, *,
                      labels: np.ndarray | None = None, title: str = "", headings: Sequence[str] = ()) -> Path:
    """Draw the grid (rows: images; five panels per version, versions side by side); written atomically."""
    from matplotlib.figure import Figure  # no pyplot: no GUI backend, no global figure state

    rows = len(versions[0].images)
    columns = len(PANELS) * len(versions)
    fig = Figure(figsize=(columns * CELL, HEADER + rows * CELL), dpi=DPI)
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
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=DPI)
    return Path(path)


def _show_image(ax: Any, image: np.ndarray) -> None:
    if image.shape[-1] == 1:
        ax.imshow(image[..., 0], cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    else:
        ax.imshow(np.clip(image, 0, 1), interpolation="nearest")


# --------------------------------------------------------------------------- choosing images


def pick_images(split: Any, class_names: Sequence[str], classes: Sequence[str] | None = None,
                count: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 images, labels): the first image of each named class, or of the first ``count`` classes."""
    labels = np.asarray(split.labels)
    if classes:
        unknown = [c for c in classes if c not in class_names]
        if unknown:
            from .errors import suggest

            raise UsageError(f"--classes: unknown class '{unknown[0]}'.{suggest(unknown[0], class_names)}")
        wanted = [list(class_names).index(c) for c in classes]
    else:
        wanted = [int(c) for c in dict.fromkeys(labels.tolist())]
        wanted = sorted(wanted)[:count]
    chosen = []
    for cid in wanted:
        hits = np.flatnonzero(labels == cid)
        if len(hits) == 0:
            raise UsageError(f"--classes: no image of class '{class_names[cid]}' in the split")
        chosen.append(int(hits[0]))
    return np.asarray(split.images[chosen]), labels[chosen]


def read_images(paths: Sequence[Path], input_shape: Sequence[int]) -> np.ndarray:
    """uint8 N,H,W,C images decoded from files and resized to ``input_shape`` (H, W, C)."""
    from .data.decode import BadImage, decode_image

    height, width, channels = (int(v) for v in input_shape)
    try:
        return np.stack([decode_image(Path(p), (height, width), channels, resize=True) for p in paths])
    except BadImage as exc:
        raise UsageError(str(exc)) from None
