"""The framework boundary: what the harness asks of a deep-learning framework.

The competition workflow (train a submission, save and reload its model, predict
hidden images, evaluate under attacks) is framework-neutral; each framework
plugin package provides one *runtime* module with the functions of
:class:`Runtime`. Images cross the boundary as uint8 N,H,W,C numpy arrays (or
float32 in [0, 1] where noted); logits come back as float32 numpy arrays.

The two runtimes live in the built-in plugin packages (``harness_torch.runtime``,
``harness_tf.runtime``); their batching loops are written once in :class:`RuntimeBase`,
over per-framework hooks. This module imports neither framework until asked.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Protocol

import numpy as np

from .chunks import spans
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
    #: the :class:`RuntimeBase` object whose bound methods the batching functions are (its hooks convert batches)
    RUNTIME: "RuntimeBase"

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
                       batch_size: int = 256, generator: Any = None) -> np.ndarray:
        """uint8 images after this framework's (or framework-neutral) augmentations, applied in order, seeded
        (or drawn from the framework ``generator`` given)."""

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

    def activations(self, model: Any, images: np.ndarray, count: int = 2,
                    batch_size: int = 64) -> list[tuple[str, np.ndarray]]:
        """(layer name, float32 N,h,w,c output) of the first ``count`` convolution layers (registration order,
        nested Keras models included) for float [0, 1] N,H,W,C ``images``, model in inference mode: the feature
        maps ``harness explain`` draws. UsageError when the model has no convolution layer."""


#: every function a runtime module exports (its ``__all__``)
RUNTIME_FUNCTIONS = ("accuracy", "activations", "adversarial_images", "art_classifier", "augment_images",
                     "class_gradients", "configure", "device_name", "gradcam", "input_gradients", "load_weights",
                     "predict_logits", "predict_logits_float", "save_weights")
#: the ones :class:`RuntimeBase` writes once, in the order :meth:`RuntimeBase.batching_functions` returns them
BATCHING_FUNCTIONS = ("predict_logits", "predict_logits_float", "adversarial_images", "augment_images",
                      "input_gradients", "class_gradients")


class RuntimeBase:
    """The batching loops every runtime shares, written once over per-framework hooks.

    A framework's runtime module builds one instance of its subclass and exports the bound
    methods (``predict_logits = _RUNTIME.predict_logits``, ...), so the module keeps the
    :class:`Runtime` functions. Subclasses provide the hooks below, which hold only framework
    calls; the loops, batching, dtype handling and empty-input results live here.
    """

    name: str = ""
    weights_file: str = ""

    # ------------------------------------------------------------------ hooks

    def device(self, model: Any) -> Any:
        """Where ``model``'s batches go (None where the framework places them itself)."""
        return None

    def images_batch(self, images: np.ndarray, device: Any) -> Any:
        """uint8 N,H,W,C numpy -> the framework's float32 batch in [0, 1] (its layout) on ``device``."""
        raise NotImplementedError

    def image_batches(self, images: np.ndarray, device: Any, batch_size: int) -> Iterator[Any]:
        """:meth:`images_batch` of each consecutive ``batch_size`` chunk (a runtime may prefetch the next one)."""
        for part in spans(len(images), batch_size):
            yield self.images_batch(images[part], device)

    def float_batch(self, images: np.ndarray, device: Any) -> Any:
        """float32 N,H,W,C numpy in [0, 1] -> the framework's float32 batch (its layout) on ``device``."""
        raise NotImplementedError

    def labels_batch(self, labels: np.ndarray, device: Any) -> Any:
        """Integer labels -> the framework's label tensor (what attacks take as ``y``)."""
        raise NotImplementedError

    def inference(self, model: Any) -> Any:
        """Context manager for forward passes without gradients, model in inference mode."""
        return contextlib.nullcontext()

    def gradient_mode(self, model: Any) -> Any:
        """Context manager for gradient computations with the model in inference mode."""
        return contextlib.nullcontext()

    def forward(self, model: Any, x: Any) -> np.ndarray:
        """float32 numpy logits of one batch (inside :meth:`inference`)."""
        raise NotImplementedError

    def gradient(self, model: Any, images: np.ndarray, targets: np.ndarray, device: Any, objective: str) -> np.ndarray:
        """float32 N,H,W,C gradient wrt float N,H,W,C ``images`` of the summed cross-entropy against labels
        ``targets`` (objective "loss") or of the summed logits ``targets`` (objective "logit"); zeros where the
        objective does not depend on the input."""
        raise NotImplementedError

    def to_nhwc(self, x: Any) -> np.ndarray:
        """A framework batch -> float32 N,H,W,C numpy on the host."""
        raise NotImplementedError

    def from_uint8(self, images: np.ndarray, like: Any) -> Any:
        """uint8 N,H,W,C numpy -> a float32 batch in [0, 1] shaped, laid out and placed like batch ``like``."""
        raise NotImplementedError

    def seeded_generator(self, seed: int) -> Any:
        """A new framework generator seeded with ``seed``."""
        raise NotImplementedError

    def numpy_seed(self, generator: Any) -> int:
        """A seed drawn from framework ``generator`` (for a numpy generator of framework-neutral augmentations)."""
        raise NotImplementedError

    # ------------------------------------------------------------------ the loops

    def batching_functions(self) -> tuple[Callable[..., Any], ...]:
        """The bound methods named in :data:`BATCHING_FUNCTIONS`, in that order (a runtime module's functions)."""
        return tuple(getattr(self, name) for name in BATCHING_FUNCTIONS)

    def to_uint8(self, x: Any) -> np.ndarray:
        """A float [0, 1] framework batch -> uint8 N,H,W,C numpy (rounded to the nearest grey level)."""
        return np.clip(np.rint(self.to_nhwc(x) * 255.0), 0, 255).astype(np.uint8)

    def _batched_logits(self, model: Any, batches: Callable[[Any], Iterable[Any]]) -> np.ndarray:
        """Logits of every batch ``batches(device)`` yields, concatenated."""
        device = self.device(model)
        outputs = []
        with self.inference(model):
            for x in batches(device):
                outputs.append(self.forward(model, x))
        if not outputs:
            return np.zeros((0, 0), dtype=np.float32)
        return np.concatenate(outputs).astype(np.float32, copy=False)

    def predict_logits(self, model: Any, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """float32 (N, classes) logits for uint8 N,H,W,C images (model in inference mode)."""
        return self._batched_logits(model, lambda device: self.image_batches(images, device, batch_size))

    def predict_logits_float(self, model: Any, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """float32 (N, classes) logits for float32 N,H,W,C images in [0, 1] (e.g. adversarial ones)."""
        return self._batched_logits(model, lambda device: (self.float_batch(images[start : start + batch_size], device)
                                                           for start in range(0, len(images), batch_size)))

    def adversarial_images(self, model: Any, images: np.ndarray, labels: np.ndarray | None, attack: Any,
                           batch_size: int = 256) -> np.ndarray:
        """float32 N,H,W,C adversarial images in [0, 1] made by an attack plugin of this framework."""
        device = self.device(model)
        outputs = []
        for start in range(0, len(images), batch_size):
            x = self.images_batch(images[start : start + batch_size], device)
            y = None if labels is None else self.labels_batch(np.asarray(labels[start : start + batch_size]), device)
            outputs.append(self.to_nhwc(attack(model, x, y)))
        return np.concatenate(outputs).astype(np.float32, copy=False) if outputs else np.zeros((0,), np.float32)

    def augment_images(self, augmentations: list[Any], images: np.ndarray, seed: int,
                       batch_size: int = 256, generator: Any = None) -> np.ndarray:
        """uint8 images after ``augmentations`` (applied in order, batch by batch, from one generator seeded
        with ``seed``); this framework's augmentations and framework-neutral ones (see :mod:`harness.augment`).
        ``generator``: draw from this framework generator instead (it runs on: successive calls on consecutive
        chunks of whole batches give the images of one call, :class:`harness.augment.AugmentStream`)."""
        from .augment import augment_batch

        generator = self.seeded_generator(int(seed)) if generator is None else generator
        outputs = []
        for start in range(0, len(images), batch_size):
            x = self.images_batch(images[start : start + batch_size], None)
            x = augment_batch(augmentations, x, framework=self.name, generator=generator)
            outputs.append(self.to_uint8(x))
        return np.concatenate(outputs) if outputs else np.asarray(images).copy()

    def _gradients(self, model: Any, images: np.ndarray, targets: np.ndarray, objective: str,
                   batch_size: int) -> np.ndarray:
        device = self.device(model)
        outputs = []
        with self.gradient_mode(model):
            for start in range(0, len(images), batch_size):
                t = np.asarray(targets[start : start + batch_size], dtype=np.int64)
                outputs.append(self.gradient(model, images[start : start + batch_size], t, device, objective))
        return np.concatenate(outputs).astype(np.float32, copy=False) if outputs else np.zeros((0,), np.float32)

    def input_gradients(self, model: Any, images: np.ndarray, labels: np.ndarray,
                        batch_size: int = 256) -> np.ndarray:
        """float32 N,H,W,C gradient of the summed cross-entropy wrt float [0, 1] N,H,W,C ``images``."""
        return self._gradients(model, images, labels, "loss", batch_size)

    def class_gradients(self, model: Any, images: np.ndarray, class_ids: np.ndarray,
                        batch_size: int = 256) -> np.ndarray:
        """float32 N,H,W,C gradient of logit ``class_ids[i]`` of image i wrt float [0, 1] N,H,W,C ``images``."""
        return self._gradients(model, images, class_ids, "logit", batch_size)


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
