"""The TensorFlow side of the workflow (:class:`harness.frameworks.Runtime`).

The batching loops are :class:`harness.frameworks.RuntimeBase`'s; :class:`TFRuntime` holds the
TensorFlow calls, and its bound methods are this module's functions.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import tensorflow as tf
import tf_keras as keras

from harness.errors import PluginError
from harness.frameworks import RUNTIME_FUNCTIONS, RuntimeBase

from .backbones import load_model_weights
from .device import auto_device
from .evaluate import accuracy  # noqa: F401 - exported: a runtime function (RUNTIME_FUNCTIONS)
from .evaluate import images_to_tensor, predict

name = "tf"
#: Keras 2 HDF5 weights (layers matched by order, so layer-name counters don't matter)
weights_file = "weights.h5"

__all__ = list(RUNTIME_FUNCTIONS)


def configure(threads: int | None = None, seed: int | None = None) -> None:
    """Intra-op threads (only before TensorFlow has started; later it keeps its pool) and the global seed."""
    if threads is not None:
        try:
            tf.config.threading.set_intra_op_parallelism_threads(max(1, int(threads)))
        except RuntimeError:  # the runtime is initialised: TensorFlow cannot resize its pool any more
            pass
    if seed is not None:
        keras.utils.set_random_seed(int(seed))  # python, numpy and TensorFlow: Keras initializers draw from all
        # same seed, same model: scores and hidden splits must be reproducible (costs some GPU speed)
        tf.config.experimental.enable_op_determinism()
        # with determinism on, TensorFlow refuses an unseeded global generator (seedless attacks use it)
        tf.random.set_global_generator(tf.random.Generator.from_seed(int(seed)))


def device_name() -> str:
    return auto_device().lstrip("/")


def save_weights(model: keras.Model, path: Path) -> None:
    model.save_weights(str(path), save_format="h5")


def load_weights(model: keras.Model, path: Path) -> keras.Model:
    return load_model_weights(model, path)


class TFRuntime(RuntimeBase):
    """The hooks of :class:`harness.frameworks.RuntimeBase` in TensorFlow (batches N,H,W,C)."""

    name = name
    weights_file = weights_file

    def images_batch(self, images: np.ndarray, device: Any) -> tf.Tensor:
        return images_to_tensor(images)

    def float_batch(self, images: np.ndarray, device: Any) -> tf.Tensor:
        return _float_batch(images)

    def labels_batch(self, labels: np.ndarray, device: Any) -> tf.Tensor:
        return tf.constant(np.asarray(labels, dtype=np.int64))

    def forward(self, model: keras.Model, x: tf.Tensor) -> np.ndarray:
        return predict(model, x)

    def gradient(self, model, images, targets, device, objective):
        x = _float_batch(images)
        t = tf.constant(targets)
        with tf.GradientTape() as tape:
            tape.watch(x)
            logits = tf.cast(model(x, training=False), tf.float32)
            if objective == "loss":
                value = tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=t, logits=logits))
            else:
                value = tf.reduce_sum(tf.gather(logits, t, axis=1, batch_dims=1))
        grad = tape.gradient(value, x)
        return np.zeros(x.shape, np.float32) if grad is None else grad.numpy()

    def to_nhwc(self, x: Any) -> np.ndarray:
        return np.asarray(x, dtype=np.float32)

    def from_uint8(self, images: np.ndarray, like: Any) -> tf.Tensor:
        return images_to_tensor(images)

    def seeded_generator(self, seed: int) -> tf.random.Generator:
        return tf.random.Generator.from_seed(int(seed))

    def numpy_seed(self, generator: tf.random.Generator) -> int:
        return int(generator.uniform([], minval=0, maxval=2**62, dtype=tf.int64))


def _float_batch(images: np.ndarray) -> tf.Tensor:
    """float32 N,H,W,C numpy in [0, 1] -> tensor."""
    return tf.convert_to_tensor(np.asarray(images, dtype=np.float32))


#: the runtime object whose hooks and loops these functions are
RUNTIME = TFRuntime()
(predict_logits, predict_logits_float, adversarial_images, augment_images, input_gradients,
 class_gradients) = RUNTIME.batching_functions()


def art_classifier(model: keras.Model, num_classes: int, input_shape: tuple[int, int, int]) -> Any:
    """An ART ``TensorFlowV2Classifier`` of ``model``: float32 N,H,W,C in [0, 1] (clip_values (0, 1)), logits."""
    try:
        from art.estimators.classification import TensorFlowV2Classifier
    except ImportError as exc:
        raise PluginError("the attack needs adversarial-robustness-toolbox, which is not installed",
                          hint="pip install 'harness[robust]'") from exc
    return TensorFlowV2Classifier(
        model=model,
        nb_classes=int(num_classes),
        input_shape=tuple(int(v) for v in input_shape),
        loss_object=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        clip_values=(0.0, 1.0),
        channels_first=False,
    )


def _conv_layers(model: Any) -> dict[str, Any]:
    """Every Conv2D layer by name, in order, looking inside nested models (e.g. Keras applications)."""
    found: dict[str, Any] = {}
    for layer in getattr(model, "layers", []):
        if isinstance(layer, keras.layers.Conv2D):
            found[layer.name] = layer
        elif hasattr(layer, "layers"):
            found.update(_conv_layers(layer))
    return found


def gradcam(model: keras.Model, images: np.ndarray, class_ids: np.ndarray, layer: str | None = None,
            batch_size: int = 64) -> np.ndarray:
    """The conv layer's output is caught by wrapping its ``call`` for the duration (works in nested models)."""
    from harness.errors import UsageError

    convs = _conv_layers(model)
    if layer is None and not convs:
        raise UsageError("Grad-CAM: the model has no Conv2D layer")
    if layer is not None and layer not in convs:
        raise UsageError(f"Grad-CAM: no Conv2D layer '{layer}' (layers: {', '.join(convs) or 'none'})")
    conv = convs[layer] if layer is not None else list(convs.values())[-1]
    captured: list[tf.Tensor] = []
    tapes: list[tf.GradientTape] = []

    def keep(output: tf.Tensor) -> None:
        tapes[-1].watch(output)  # also when the layer's weights are frozen
        captured.append(output)

    outputs = []
    with _outputs_of(conv, keep):
        for start in range(0, len(images), batch_size):
            captured.clear()
            x = _float_batch(images[start : start + batch_size])
            ids = tf.constant(np.asarray(class_ids[start : start + batch_size], dtype=np.int64))
            with tf.GradientTape() as tape:
                tapes[:] = [tape]
                logits = tf.cast(model(x, training=False), tf.float32)
                score = tf.reduce_sum(tf.gather(logits, ids, axis=1, batch_dims=1))
            activation = captured[-1]
            grad = tape.gradient(score, activation)
            activation = tf.cast(activation, tf.float32)
            grad = tf.zeros_like(activation) if grad is None else tf.cast(grad, tf.float32)
            cam = tf.nn.relu(tf.reduce_sum(tf.reduce_mean(grad, axis=(1, 2), keepdims=True) * activation, axis=-1,
                                           keepdims=True))
            cam = tf.image.resize(cam, tf.shape(x)[1:3], method="bilinear")[..., 0]
            peak = tf.reduce_max(cam, axis=(1, 2), keepdims=True)
            peak = tf.where(peak > 0, peak, tf.ones_like(peak))  # an all-zero map stays zero
            outputs.append((cam / peak).numpy())
    if not outputs:
        return np.zeros((0,) + tuple(np.shape(images)[1:3]), np.float32)
    return np.concatenate(outputs).astype(np.float32, copy=False)


@contextlib.contextmanager
def _outputs_of(layer: Any, keep: Callable[[tf.Tensor], None]) -> Iterator[None]:
    """Inside, every output of ``layer`` is passed to ``keep`` (its ``call`` wrapped for the duration: works in
    nested models, where Keras offers no hook); afterwards the layer's own ``call`` is back."""
    original, patched = layer.call, "call" in vars(layer)

    def capture(*args: Any, **kwargs: Any) -> Any:
        output = original(*args, **kwargs)
        keep(output)
        return output

    layer.call = capture
    try:
        yield
    finally:
        if patched:
            layer.call = original
        else:
            del layer.call  # back to the class's method


def activations(model: keras.Model, images: np.ndarray, count: int = 2,
                batch_size: int = 64) -> list[tuple[str, np.ndarray]]:
    """(name, float32 N,h,w,c output) of the first ``count`` Conv2D layers (nested models included; a Keras
    Conv2D's output includes its fused activation) for float [0, 1] N,H,W,C ``images``."""
    from harness.errors import UsageError

    convs = list(_conv_layers(model).items())[: max(1, int(count))]
    if not convs:
        raise UsageError("activations: the model has no Conv2D layer")
    batch: dict[str, np.ndarray] = {}  # a layer called twice in one forward pass keeps its first output
    captured: dict[str, list[np.ndarray]] = {name: [] for name, _ in convs}
    with contextlib.ExitStack() as stack:
        for name, layer in convs:
            stack.enter_context(_outputs_of(layer, lambda output, name=name: batch.setdefault(
                name, np.asarray(tf.cast(output, tf.float32)))))
        for start in range(0, len(images), batch_size):
            batch.clear()
            model(_float_batch(images[start : start + batch_size]), training=False)
            for name in [n for n in captured if n not in batch]:  # in the model but not run: not a map
                del captured[name]
            for name, parts in captured.items():
                parts.append(batch[name])
    return [(name, np.concatenate(parts).astype(np.float32, copy=False) if parts
             else np.zeros((0, 0, 0, 0), np.float32)) for name, parts in captured.items()]
