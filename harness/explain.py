"""Pictures of what a model looks at (``harness explain``): one PNG grid per model.

Each row is one image: the image, its top-5 predictions, the vanilla-gradient
saliency of the predicted class split into positive and negative maps, and a
Grad-CAM overlay; then the same five for its adversarial version. The gradient
maths lives in the framework runtimes (``class_gradients``, ``gradcam``); the
drawing in :func:`harness.plots.plot_explanations`; this module gathers what is drawn.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .errors import UsageError
from .plots import CELL, DPI, HEADER, PANELS, plot_explanations  # noqa: F401 - the grid's geometry, for callers

TOPK = 5
#: panels per row of explain_model's grid (clean and adversarial side by side): it is
#: (COLUMNS * CELL) x (HEADER + rows * CELL) inches
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
