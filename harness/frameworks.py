"""The framework boundary: what the harness asks of a deep-learning framework.

The competition workflow (train a submission, save and reload its model, predict
hidden images, evaluate under attacks) is framework-neutral; each framework
plugin package provides one *runtime* module with the functions of
:class:`Runtime`. Images cross the boundary as uint8 N,H,W,C numpy arrays (or
float32 in [0, 1] where noted); logits come back as float32 numpy arrays.

The two runtimes live in the built-in plugin packages (``harness_torch.runtime``,
``harness_tf.runtime``); this module imports neither framework until asked.
"""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from .errors import PluginError

#: framework name -> (runtime module, the module it needs, pip extra)
RUNTIMES: dict[str, tuple[str, str, str]] = {
    "torch": ("harness_torch.runtime", "torch", "torch"),
    "tf": ("harness_tf.runtime", "tensorflow", "tf"),
}


class Runtime(Protocol):
    """One framework's side of the workflow (a module, duck-typed)."""

    #: "torch" or "tf"
    name: str
    #: file name of saved weights inside a model artifact, e.g. "weights.pt"
    weights_file: str

    def configure(self, threads: int | None = None, seed: int | None = None) -> None:
        """Set intra-op threads and seed the framework's global RNGs (None: leave as is)."""

    def device_name(self) -> str:
        """The device models run on, e.g. "cpu" or "cuda:0" ("GPU:0" for TensorFlow)."""

    def save_weights(self, model: Any, path: Path) -> None:
        """Write the model's weights to ``path`` (the caller makes it atomic)."""

    def load_weights(self, model: Any, path: Path) -> Any:
        """Load weights saved by :meth:`save_weights` into a freshly built ``model``; return it."""

    def predict_logits(self, model: Any, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """float32 (N, classes) logits for uint8 N,H,W,C images (model in inference mode)."""

    def accuracy(self, model: Any, images: np.ndarray, labels: np.ndarray, attack: Any = None,
                 batch_size: int = 256) -> dict[str, Any]:
        """{"loss", "top1", "top5", "count"} on uint8 images, attacked batch by batch when ``attack`` is given."""

    def adversarial_images(self, model: Any, images: np.ndarray, labels: np.ndarray | None, attack: Any,
                           batch_size: int = 256) -> np.ndarray:
        """float32 N,H,W,C adversarial images in [0, 1] made by an attack plugin of this framework."""

    def augment_images(self, augmentations: list[Any], images: np.ndarray, seed: int,
                       batch_size: int = 256) -> np.ndarray:
        """uint8 images after this framework's augmentation plugins (applied in order, seeded)."""

    def predict_logits_float(self, model: Any, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """float32 (N, classes) logits for float32 N,H,W,C images in [0, 1] (e.g. adversarial ones)."""

    def input_gradients(self, model: Any, images: np.ndarray, labels: np.ndarray,
                        batch_size: int = 256) -> np.ndarray:
        """float32 N,H,W,C gradient of the summed cross-entropy wrt float [0, 1] N,H,W,C ``images``
        (model in inference mode; zeros where the loss does not depend on the input)."""

    def art_classifier(self, model: Any, num_classes: int, input_shape: tuple[int, int, int]) -> Any:
        """An adversarial-robustness-toolbox classifier of ``model`` that takes float32 N,H,W,C in [0, 1]
        (clip_values (0, 1), cross-entropy loss, logits out); PluginError naming the extra without ART."""

    def class_gradients(self, model: Any, images: np.ndarray, class_ids: np.ndarray,
                        batch_size: int = 256) -> np.ndarray:
        """float32 N,H,W,C gradient of logit ``class_ids[i]`` of image i wrt float [0, 1] N,H,W,C ``images``
        (vanilla saliency; model in inference mode)."""

    def gradcam(self, model: Any, images: np.ndarray, class_ids: np.ndarray, layer: str | None = None,
                batch_size: int = 64) -> np.ndarray:
        """float32 (N, H, W) Grad-CAM heatmaps in [0, 1] of logit ``class_ids[i]``, upsampled to the input size.

        ``layer``: name of a convolution layer (None: the last one, nested Keras models included);
        UsageError when there is none or no such name."""


def framework_available(framework: str) -> bool:
    """True when the framework's module is installed (checked without importing it)."""
    _check(framework)
    return importlib.util.find_spec(RUNTIMES[framework][1]) is not None


def get_runtime(framework: str) -> Runtime:
    """The runtime module of ``framework`` ("torch" or "tf"); a clear error when it is not installed."""
    _check(framework)
    module, needs, extra = RUNTIMES[framework]
    if importlib.util.find_spec(needs) is None:
        raise PluginError(f"framework '{framework}' needs {needs}, which is not installed",
                          hint=f"pip install 'harness[{extra}]'")
    return importlib.import_module(module)  # type: ignore[return-value]


def quantize_within_budget(adversarial: np.ndarray, clean: np.ndarray, eps: float | None,
                           norm: str = "linf") -> np.ndarray:
    """uint8 images nearest to float [0, 1] ``adversarial`` that stay inside the L-inf ball around ``clean``.

    Rounding to grey levels may step up to half a level outside an L-inf budget; the
    result is clipped back to the grey levels inside it, so a stored adversarial image
    never exceeds its budget. For L2 (or eps None) it rounds and clips to [0, 255].
    """
    levels = np.clip(np.rint(np.asarray(adversarial, dtype=np.float64) * 255.0), 0, 255)
    if eps is not None and norm == "linf":
        base = np.asarray(clean, dtype=np.float64)
        budget = np.floor(eps * 255.0 + 1e-6)
        levels = np.clip(levels, base - budget, base + budget)
    return levels.astype(np.uint8)


def _check(framework: str) -> None:
    if framework not in RUNTIMES:
        from .errors import suggest

        raise PluginError(f"Unknown framework '{framework}'.{suggest(framework, RUNTIMES)} "
                          f"Frameworks: {', '.join(RUNTIMES)}")
