"""Keras backbones (Keras 2 via ``tf_keras``): the NSL tutorial CNN and Keras applications with a 512 head.

Every model is a functional ``keras.Model`` named after its architecture, with one
input called ``image`` (the feature key NSL is fed) that takes float32 N,H,W,C in
[0, 1]; preprocessing (upsampling of small images, grey to RGB, the application's
own normalization) happens inside the model, so attacks work in pixel space.
Models output **logits** (no softmax layer): the harness's losses use
``from_logits=True``, NSL's adversarial loss differentiates them, and gradient-based
robustness checks need them (a saturated softmax hides gradients).

Keras applications (MobileNetV2, EfficientNetB0, DenseNet121, NASNetMobile):

- inputs smaller than ``min_size`` (default and minimum 32, Keras's limit) are
  resized bilinearly inside the model, like the PyTorch plugins' ``MinSize``;
- 1-channel images are repeated to 3 channels (which equals summing the RGB
  filters of the first convolution, so pretrained filters stay useful);
- ``pretrained=True`` uses ``weights="imagenet"`` (downloaded into
  ``~/.keras/models``); ``weights=PATH`` loads a local HDF5 file instead: Keras's
  no-top application weights, or the weights of a whole harness model.

:func:`unfreezing_stages` lists each model's stages, head first, for progressive
fine-tuning.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import tf_keras as keras

from harness.errors import DownloadError, UsageError
from harness.framework_specs import application_factory

from . import device  # noqa: F401 - honours HARNESS_DEVICE=cpu before TensorFlow starts GPUs

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DEFAULT_MIN_SIZE = 32
#: BatchNorm moving-average momentum in Keras terms (PyTorch's default momentum 0.1)
BN_MOMENTUM = 0.9
#: the head every backbone ends with (absent layers are skipped)
HEAD_LAYERS = ("head_hidden", "head_dropout", "logits")
INPUT_NAME = "image"

__all__ = [
    "densenet121",
    "efficientnet_b0",
    "load_model_weights",
    "mobilenet_v2",
    "nasnet_mobile",
    "nsl_cnn",
    "trainable_stages",
    "unfreezing_stages",
]


def _check_shape(input_shape: Sequence[int]) -> tuple[int, int, int]:
    if len(input_shape) != 3 or min(int(v) for v in input_shape) < 1:
        raise UsageError(f"input_shape must be (height, width, channels), got {tuple(input_shape)}")
    h, w, c = (int(v) for v in input_shape)
    return h, w, c


def _head(x: Any, num_classes: int, hidden: int, dropout: float) -> Any:
    """Dense(hidden, relu) -> Dropout -> Dense(classes) logits; hidden=0: one Dense."""
    if hidden:
        x = keras.layers.Dense(int(hidden), activation="relu", name="head_hidden")(x)
    if dropout:
        x = keras.layers.Dropout(float(dropout), name="head_dropout")(x)
    return keras.layers.Dense(int(num_classes), name="logits")(x)


# --------------------------------------------------------------------------- NSL tutorial CNN


def nsl_cnn(
    num_classes: int,
    input_shape: tuple[int, int, int] = (8, 8, 1),
    filters: Sequence[int] = (16, 32, 32),
    kernel_size: int = 3,
    pool_size: int = 2,
    hidden: int = 64,
    dropout: float = 0.0,
) -> keras.Model:
    """The NSL adversarial-regularization tutorial's CNN, as the seed configured it.

    3x3 convolutions with ``filters`` (16-32-32), ReLU, max-pooling after every one
    but the last (skipped once the feature map is smaller than ``pool_size``), then
    Dense(``hidden``) and a logits layer. Convolutions pad ("same") so 8x8 digits
    fit; normalization is (x - 0.5) / 0.5.
    """
    h, w, c = _check_shape(input_shape)
    if not filters or any(int(f) < 1 for f in filters):
        raise UsageError(f"filters must be a list of positive channel counts, got {filters!r}")
    inputs = keras.Input(shape=(h, w, c), name=INPUT_NAME)
    x = keras.layers.Rescaling(2.0, offset=-1.0, name="normalize")(inputs)
    size = min(h, w)
    for i, count in enumerate(filters, start=1):
        x = keras.layers.Conv2D(int(count), int(kernel_size), padding="same", activation="relu", name=f"conv{i}")(x)
        if i < len(filters) and size >= pool_size:
            x = keras.layers.MaxPooling2D(int(pool_size), name=f"pool{i}")(x)
            size //= pool_size
    x = keras.layers.Flatten(name="flatten")(x)
    return keras.Model(inputs, _head(x, num_classes, hidden, dropout), name="nsl-cnn")


# --------------------------------------------------------------------------- Keras applications


def _upper_start_by_prefix(prefix: str) -> Callable[[list[str]], int]:
    return lambda names: next(i for i, name in enumerate(names) if name.startswith(prefix))


def _after_last(suffix: str) -> Callable[[list[str]], int]:
    return lambda names: 1 + max(i for i, name in enumerate(names) if name.endswith(suffix))


#: arch -> (keras.applications class, input scaling, index of the first "upper backbone" layer of the body)
_APPLICATIONS: dict[str, tuple[str, str, Callable[[list[str]], int]]] = {
    # upper backbone = the last 4 inverted-residual blocks and the final 1x1 conv (as in harness_torch)
    "mobilenet_v2": ("MobileNetV2", "symmetric", _upper_start_by_prefix("block_13_")),
    # upper = MBConv stages 6-7 and the top conv
    "efficientnet_b0": ("EfficientNetB0", "0-255", _upper_start_by_prefix("block6a_")),
    # upper = the last dense block and the final norm
    "densenet121": ("DenseNet121", "imagenet-mean-std", _upper_start_by_prefix("conv5_block1_")),
    # upper = the normal cells after the last reduction cell
    "nasnet_mobile": ("NASNetMobile", "symmetric", _after_last("reduce_8")),
}


def _normalize(kind: str) -> keras.layers.Layer:
    """[0, 1] -> what the application's ImageNet weights expect."""
    if kind == "symmetric":  # [-1, 1]
        return keras.layers.Rescaling(2.0, offset=-1.0, name="normalize")
    if kind == "0-255":  # EfficientNet normalizes inside itself
        return keras.layers.Rescaling(255.0, name="normalize")
    return keras.layers.Normalization(mean=list(IMAGENET_MEAN), variance=[s * s for s in IMAGENET_STD],
                                      name="normalize")


def keras_cache_dir() -> Path:
    """Where Keras keeps downloaded application weights."""
    return Path(os.environ.get("KERAS_HOME", Path.home() / ".keras")).expanduser() / "models"


@contextlib.contextmanager
def _imagenet_weights_from(path: str) -> Iterator[None]:
    """Make Keras's ImageNet download hand back a local file.

    The applications build a slightly different graph for ``weights="imagenet"``
    (EfficientNet adds an input scaling its weights were trained with), so a local
    copy of those weights must go through the same code path, not ``weights=PATH``.
    """
    from tf_keras.src.utils import data_utils

    download = data_utils.get_file
    data_utils.get_file = lambda *args, **kwargs: path
    try:
        yield
    finally:
        data_utils.get_file = download


def _body(arch: str, input_shape: tuple[int, int, int], weights: Any) -> keras.Model:
    """The application without its top, average-pooled; ``weights``: None, "imagenet" or a local file."""
    cls_name = _APPLICATIONS[arch][0]
    application = getattr(keras.applications, cls_name)
    if weights is None:
        return application(input_shape=input_shape, include_top=False, weights=None, pooling="avg")
    if weights != "imagenet":
        with _imagenet_weights_from(str(weights)):
            return application(input_shape=input_shape, include_top=False, weights="imagenet", pooling="avg")
    try:
        return application(input_shape=input_shape, include_top=False, weights="imagenet", pooling="avg")
    except Exception as exc:  # noqa: BLE001 - network, HTTP or hash failures all mean "no weights"
        raise DownloadError(
            f"Cannot download pretrained weights for backbone '{arch}': {type(exc).__name__}: {_first_line(exc)}",
            hint=(f"on a machine that is online, keras.applications.{cls_name}(include_top=False, "
                  f"weights='imagenet') caches the file in {keras_cache_dir()}: copy it to the same folder here, "
                  "or pass weights=PATH to that .h5 file"),
        ) from exc


def _h5_layer_names(path: Path) -> list[str]:
    """Top-level layer names of a Keras HDF5 weights file (UsageError when it is not one)."""
    import h5py

    if not path.is_file():
        raise UsageError(f"weights file not found: {path}", hint="pass weights=PATH to a Keras .h5 weights file")
    try:
        with h5py.File(path, "r") as f:
            group = f["model_weights"] if "layer_names" not in f.attrs and "model_weights" in f else f
            names = group.attrs["layer_names"]
    except (OSError, KeyError) as exc:
        raise UsageError(f"cannot read weights file {path}: not a Keras HDF5 weights file ({exc})") from exc
    return [n.decode() if isinstance(n, bytes) else str(n) for n in names]


def load_model_weights(model: keras.Model, path: str | os.PathLike) -> keras.Model:
    """Load a Keras HDF5 weights file (``model.save_weights(..., save_format="h5")``) into ``model``."""
    path = Path(path).expanduser()
    _h5_layer_names(path)
    try:
        model.load_weights(str(path))
    except ValueError as exc:
        raise UsageError(f"weights from {path} do not fit this model ({model.name}, {model.output_shape[-1]} "
                         f"classes, input {tuple(model.input_shape[1:])}): {_first_line(exc)}") from exc
    return model


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return " ".join(lines[:2])


def _keras_classifier(
    arch: str,
    num_classes: int,
    input_shape: tuple[int, int, int],
    pretrained: bool,
    weights: str | os.PathLike | None,
    head_hidden: int,
    dropout: float,
    min_size: int,
) -> keras.Model:
    h, w, c = _check_shape(input_shape)
    if c not in (1, 3):
        raise UsageError(f"Keras backbones take 1 or 3 channels, got {c}")
    if int(min_size) < DEFAULT_MIN_SIZE:
        raise UsageError(f"min_size must be at least {DEFAULT_MIN_SIZE} (Keras applications need inputs of "
                         f"{DEFAULT_MIN_SIZE} px or more), got {min_size}")
    weights_path = Path(weights).expanduser() if weights is not None else None
    full_model_file = weights_path is not None and "logits" in _h5_layer_names(weights_path)
    if weights_path is not None:
        body_weights = None if full_model_file else str(weights_path)
    else:
        body_weights = "imagenet" if pretrained else None

    inputs = keras.Input(shape=(h, w, c), name=INPUT_NAME)
    x = inputs
    if min(h, w) < min_size:
        scale = min_size / min(h, w)
        h, w = max(int(min_size), round(h * scale)), max(int(min_size), round(w * scale))
        x = keras.layers.Resizing(h, w, interpolation="bilinear", name="min_size")(x)
    if c == 1:
        x = keras.layers.Concatenate(name="grey_to_rgb")([x, x, x])
    x = _normalize(_APPLICATIONS[arch][1])(x)
    try:
        body = _body(arch, (h, w, 3), body_weights)
    except ValueError as exc:
        if body_weights not in (None, "imagenet"):
            raise UsageError(f"weights from {weights_path} do not fit backbone '{arch}': {_first_line(exc)}") from exc
        raise
    for layer in body.layers:  # Keras's 0.99-0.999 barely move in a short run; 0.9 is PyTorch's default (0.1)
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = BN_MOMENTUM
    outputs = _head(body(x), num_classes, head_hidden, dropout)
    model = keras.Model(inputs, outputs, name=arch)
    if full_model_file:
        load_model_weights(model, weights_path)
    return model


def _make_factory(arch: str) -> Callable[..., keras.Model]:
    return application_factory(arch, _keras_classifier, (
        f"keras.applications.{_APPLICATIONS[arch][0]} without its top, average-pooled, then a head_hidden head "
        "(0: one Dense) giving logits.\n\npretrained=True loads Keras's ImageNet weights; weights=PATH a local "
        "HDF5 file (Keras no-top application weights or a whole harness model). Inputs below min_size are resized."))


mobilenet_v2 = _make_factory("mobilenet_v2")
efficientnet_b0 = _make_factory("efficientnet_b0")
densenet121 = _make_factory("densenet121")
nasnet_mobile = _make_factory("nasnet_mobile")


# --------------------------------------------------------------------------- unfreezing stages


def unfreezing_stages(model: keras.Model) -> list[tuple[str, list[keras.layers.Layer]]]:
    """Ordered (stage name, layers) for progressive unfreezing: head, upper backbone, lower backbone.

    Known for the models built here (recognised by name); any other model is one
    stage, ``"all"``. Layers no stage names (e.g. preprocessing) join the last stage.
    """
    head = [layer for layer in model.layers if layer.name in HEAD_LAYERS]
    if not head or model.name not in ("nsl-cnn", *_APPLICATIONS):
        return [("all", [model])]
    if model.name == "nsl-cnn":
        upper = [layer for layer in model.layers if layer.name.startswith("conv")][-1:]
        rest = [layer for layer in model.layers if layer not in head and layer not in upper]
    else:  # the body's top layers; its other layers and the preprocessing form the lower backbone
        body = next(layer for layer in model.layers if isinstance(layer, keras.Model))
        split = _APPLICATIONS[model.name][2]([layer.name for layer in body.layers])
        upper = body.layers[split:]
        rest = [*body.layers[:split], *(layer for layer in model.layers if layer not in head and layer is not body)]
    return [("head", head), ("upper backbone", upper), ("lower backbone", rest)]


def trainable_stages(model: keras.Model, stages: list[tuple[str, list[keras.layers.Layer]]], count: int) -> None:
    """Make the first ``count`` stages trainable and freeze the rest (frozen BatchNorm runs in inference mode)."""
    model.trainable = True
    for _, layers in stages[count:]:
        for layer in layers:
            layer.trainable = False
