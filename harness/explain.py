"""Pictures of what a model looks at (``harness explain``): a PNG grid and a PNG of feature maps per model.

Each row of the grid is one image: the image, its top-5 predictions, the vanilla-gradient
saliency of the predicted class split into positive and negative maps, and a
Grad-CAM overlay; then the same five for its adversarial version. The second picture
shows the first convolution layers' strongest feature maps of each image, clean above
adversarial. The gradient and activation maths lives in the framework runtimes
(``class_gradients``, ``gradcam``, ``activations``); the drawing in
:func:`harness.plots.plot_explanations` and :func:`harness.plots.plot_activations`; this
module gathers what is drawn (:class:`Explained`, which a scoring child also ships as arrays).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .errors import UsageError
from .plots import CELL, DPI, HEADER, PANELS, plot_activations, plot_explanations  # noqa: F401 - geometry too

TOPK = 5
#: convolution layers, and channels of each, the activation picture shows
ACTIVATION_LAYERS, ACTIVATION_CHANNELS = 2, 6
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


@dataclass
class LayerMaps:
    """The strongest channels of one convolution layer's feature maps, clean and adversarial."""

    layer: str
    channels: np.ndarray  # N,k channel ids, strongest first (by mean activation on the clean image)
    clean: np.ndarray  # N,h,w,k float32 feature maps of the clean images
    adversarial: np.ndarray  # N,h,w,k float32 feature maps of the adversarial images (same channels)


def layer_maps(runtime: Any, model: Any, clean: np.ndarray, adversarial: np.ndarray,
               count: int = ACTIVATION_LAYERS, channels: int = ACTIVATION_CHANNELS) -> list[LayerMaps]:
    """The first ``count`` convolution layers' ``channels`` strongest feature maps of each float [0, 1] image,
    clean and adversarial (the channels ranked by mean activation on the clean image)."""
    found = []
    for (name, on_clean), (_, on_adversarial) in zip(runtime.activations(model, clean, count),
                                                     runtime.activations(model, adversarial, count)):
        order = np.argsort(-on_clean.mean(axis=(1, 2)), axis=1, kind="stable")[:, :channels]
        pick = order[:, None, None, :]
        found.append(LayerMaps(name, order, np.take_along_axis(on_clean, pick, axis=3),
                               np.take_along_axis(on_adversarial, pick, axis=3)))
    return found


@dataclass
class Explained:
    """Everything both pictures draw: clean and adversarial explanations, feature maps, names."""

    clean: Explanation
    adversarial: Explanation
    class_names: list[str]
    labels: np.ndarray | None = None
    maps: list[LayerMaps] = field(default_factory=list)
    attack: str = "fgsm"
    eps: float = 8 / 255

    @property
    def headings(self) -> tuple[str, str]:
        return "clean", f"{self.attack} {self.eps * 255:.3g}/255"

    def draw(self, grid: str | Path, activations: str | Path | None = None, name: str = "") -> list[Path]:
        """The grid PNG and, with ``activations`` and feature maps, the activation PNG; their paths."""
        title = f"{name + ': ' if name else ''}clean vs {self.headings[1]}"
        paths = [plot_explanations([self.clean, self.adversarial], self.class_names, grid, labels=self.labels,
                                   title=title, headings=self.headings)]
        if activations is not None and self.maps:
            paths.append(plot_activations(self.clean.images, self.adversarial.images, self.maps, activations,
                                          title=f"{title}: first convolution layers", headings=self.headings))
        return paths

    def arrays(self) -> dict[str, np.ndarray]:
        """The arrays a scoring child writes to ``explain.npz`` (numbers and unicode strings, no objects):
        ``{clean,adversarial}_{images,top_ids,top_probs,saliency,cam}``, ``class_names``, ``labels`` (-1:
        unknown), ``attack``, ``eps``, ``layers`` and ``layer<i>_{channels,clean,adversarial}``."""
        found: dict[str, np.ndarray] = {}
        for version, explanation in (("clean", self.clean), ("adversarial", self.adversarial)):
            for key in ("images", "top_ids", "top_probs", "saliency", "cam"):
                found[f"{version}_{key}"] = np.asarray(getattr(explanation, key))
        labels = self.labels if self.labels is not None else np.full(len(self.clean.images), -1)
        found.update(class_names=np.asarray(self.class_names, dtype=str), labels=np.asarray(labels, np.int64),
                     attack=np.asarray(self.attack), eps=np.asarray(self.eps, np.float64),
                     layers=np.asarray([m.layer for m in self.maps], dtype=str).reshape(-1))
        for i, maps in enumerate(self.maps):
            found.update({f"layer{i}_channels": np.asarray(maps.channels, np.int64),
                          f"layer{i}_clean": np.asarray(maps.clean, np.float32),
                          f"layer{i}_adversarial": np.asarray(maps.adversarial, np.float32)})
        return found


def explain(loaded: Any, images: np.ndarray, labels: np.ndarray | None = None, *, attack: str = "fgsm",
            eps: float = 8 / 255, seed: int = 0, layer: str | None = None,
            layers: int = ACTIVATION_LAYERS) -> Explained:
    """What a loaded model (:class:`harness.workflow.LoadedModel`) makes of uint8 N,H,W,C ``images`` and their
    adversarial versions (``labels`` None: the attack targets the clean predictions); ``layers`` 0: no maps."""
    images = np.asarray(images, dtype=np.uint8)
    if images.ndim != 4 or len(images) == 0:
        raise UsageError("explain: no images to explain")
    runtime, model = loaded.runtime, loaded.model
    clean = explain_images(runtime, model, images / np.float32(255.0), layer)
    targets = clean.top_ids[:, 0] if labels is None else np.asarray(labels, dtype=np.int64)
    adversarial = np.clip(runtime.adversarial_images(model, images, targets, make_attack(runtime.name, attack, eps,
                                                                                         seed)), 0.0, 1.0)
    attacked = explain_images(runtime, model, adversarial, layer)
    maps = layer_maps(runtime, model, clean.images, adversarial, layers) if layers > 0 else []
    names = list(loaded.info.get("class_names") or [str(i) for i in range(int(loaded.info["num_classes"]))])
    return Explained(clean, attacked, names, None if labels is None else np.asarray(labels, np.int64), maps,
                     attack, eps)


def explain_model(loaded: Any, images: np.ndarray, path: str | Path, labels: np.ndarray | None = None, *,
                  attack: str = "fgsm", eps: float = 8 / 255, seed: int = 0, layer: str | None = None,
                  activations: str | Path | None = None) -> Path:
    """The PNG grid of a loaded model (:class:`harness.workflow.LoadedModel`) for uint8 N,H,W,C ``images`` (its
    path) and, with ``activations`` (a PNG path), the picture of its first convolution layers' feature maps.

    ``labels`` None: the adversarial examples attack the clean predictions.
    """
    explained = explain(loaded, images, labels, attack=attack, eps=eps, seed=seed, layer=layer,
                        layers=ACTIVATION_LAYERS if activations is not None else 0)
    return explained.draw(path, activations, loaded.submission.name)[0]


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
