"""PyTorch backbones: a small CNN and torchvision ImageNet architectures with a 512 head.

Every model is an :class:`ImageClassifier`: it takes float32 N,C,H,W in [0, 1]
and does its own preprocessing (upsampling of tiny images, normalization) with
buffers, so attacks and evaluation work in pixel space.

Torchvision nets accept any input size and channel count:

- inputs smaller than ``min_size`` (default 32) are upsampled bilinearly inside
  the model, so 8x8 digits survive the five stride-2 stages of a ResNet;
- a first convolution meant for 3 channels is adapted to C channels (timm's
  rule: for 1 channel the RGB filters are summed, which equals feeding the grey
  image to all three; otherwise they are tiled and scaled by 3 / C), keeping
  pretrained filters useful.

``pretrained=True`` downloads torchvision's default ImageNet weights into
``$TORCH_HOME/hub/checkpoints``; ``weights=PATH`` loads a local state dict
instead (a torchvision backbone checkpoint, or a harness model / checkpoint).

Each model lists its unfreezing stages, head first, for progressive fine-tuning:
see :func:`unfreezing_stages`.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Callable, Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from harness.errors import DownloadError, UsageError
from harness.framework_specs import application_factory

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
DEFAULT_MIN_SIZE = 32
STAGE_NAMES = ("head", "upper backbone", "lower backbone")


# --------------------------------------------------------------------------- building blocks


class Normalize(nn.Module):
    """(x - mean) / std per channel; mean and std are buffers (saved with the model)."""

    def __init__(self, mean: Sequence[float], std: Sequence[float]):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class MinSize(nn.Module):
    """Upsample (bilinear) so both sides are at least ``min_size``; larger inputs pass unchanged."""

    def __init__(self, min_size: int):
        super().__init__()
        self.min_size = int(min_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        if min(h, w) >= self.min_size:
            return x
        scale = self.min_size / min(h, w)
        size = (max(self.min_size, round(h * scale)), max(self.min_size, round(w * scale)))
        return F.interpolate(x, size=size, mode="bilinear", align_corners=False)

    def extra_repr(self) -> str:
        return f"min_size={self.min_size}"


def channel_stats(channels: int, mean: Sequence[float], std: Sequence[float]) -> tuple[list[float], list[float]]:
    """Per-channel mean/std for ``channels`` inputs from 3-channel stats (grey: their average)."""
    if channels == len(mean):
        return list(mean), list(std)
    return [sum(mean) / len(mean)] * channels, [sum(std) / len(std)] * channels


def make_head(features: int, num_classes: int, hidden: int = 512, dropout: float = 0.0) -> nn.Sequential:
    """Linear(features, hidden) -> ReLU -> Dropout -> Linear(hidden, classes); hidden=0: one Linear."""
    layers: list[nn.Module] = []
    if hidden:
        layers += [nn.Linear(features, hidden), nn.ReLU(inplace=True)]
        features = hidden
    if dropout:
        layers.append(nn.Dropout(dropout))
    layers.append(nn.Linear(features, num_classes))
    return nn.Sequential(*layers)


class ImageClassifier(nn.Module):
    """preprocess -> body (pooled features) -> head.

    ``stages`` maps unfreezing stages, head first, to submodule names (see
    :func:`unfreezing_stages`). ``input_shape`` is (H, W, C).
    """

    def __init__(
        self,
        preprocess: nn.Module,
        body: nn.Module,
        head: nn.Module,
        stages: Mapping[str, Sequence[str]],
        input_shape: tuple[int, int, int],
        num_classes: int,
        arch: str,
    ):
        super().__init__()
        self.preprocess = preprocess
        self.body = body
        self.head = head
        self.stages = {name: list(modules) for name, modules in stages.items()}
        self.input_shape = tuple(int(v) for v in input_shape)
        self.num_classes = int(num_classes)
        self.arch = arch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(self.preprocess(x)))

    def extra_repr(self) -> str:
        return f"arch={self.arch!r}, input_shape={self.input_shape}, num_classes={self.num_classes}"


def unfreezing_stages(model: nn.Module) -> list[tuple[str, list[nn.Module]]]:
    """Ordered (stage name, modules) for progressive unfreezing: head, upper, lower backbone.

    Modules without a stage map (any other nn.Module) form one stage, ``"all"``.
    Parameters not named by any stage (e.g. preprocessing, which has none) join
    the last stage, so unfreezing every stage unfreezes everything.
    """
    stage_map = getattr(model, "stages", None)
    if not stage_map:
        return [("all", [model])]
    stages = [(name, [model.get_submodule(path) for path in paths]) for name, paths in stage_map.items()]
    claimed = {id(p) for _, modules in stages for m in modules for p in m.parameters()}
    rest = [m for _, m in model.named_children() if any(id(p) not in claimed for p in m.parameters())]
    if rest:
        stages[-1][1].extend(rest)
    return stages


def param_groups_for_unfreezing(model: nn.Module) -> list[tuple[str, list[nn.Parameter]]]:
    """Ordered (stage name, parameters), head first; each parameter in exactly one stage."""
    seen: set[int] = set()
    groups = []
    for name, modules in unfreezing_stages(model):
        params = []
        for module in modules:
            for p in module.parameters():
                if id(p) not in seen:
                    seen.add(id(p))
                    params.append(p)
        groups.append((name, params))
    return groups


# --------------------------------------------------------------------------- small CNN


def small_cnn(
    num_classes: int,
    input_shape: tuple[int, int, int] = (8, 8, 1),
    width: int = 32,
    hidden: int = 128,
    dropout: float = 0.0,
) -> ImageClassifier:
    """Two 3x3 conv layers (width, 2*width) with max pooling, then a hidden layer.

    Features are average-pooled to at most 4x4, so the head stays small for any
    input size; normalization is (x - 0.5) / 0.5.
    """
    h, w, c = _check_shape(input_shape)
    pooled = (min(4, max(1, h // 2)), min(4, max(1, w // 2)))
    body = nn.Sequential(
        nn.Conv2d(c, width, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(2) if min(h, w) >= 2 else nn.Identity(),
        nn.Conv2d(width, 2 * width, 3, padding=1),
        nn.ReLU(inplace=True),
        nn.AdaptiveAvgPool2d(pooled),
        nn.Flatten(),
    )
    preprocess = Normalize([0.5] * c, [0.5] * c)
    head = make_head(2 * width * pooled[0] * pooled[1], num_classes, hidden, dropout)
    stages = {"head": ["head"], "upper backbone": ["body.3"], "lower backbone": ["body.0"]}
    return ImageClassifier(preprocess, body, head, stages, (h, w, c), num_classes, "small-cnn")


# --------------------------------------------------------------------------- torchvision nets


def _resnet_stages(body_attr: str = "body") -> dict[str, list[str]]:
    return {
        "head": ["head"],
        "upper backbone": [f"{body_attr}.layer4"],
        "lower backbone": [f"{body_attr}.{n}" for n in ("conv1", "bn1", "layer1", "layer2", "layer3")],
    }


def _features_stages(split: int, total: int) -> dict[str, list[str]]:
    return {
        "head": ["head"],
        "upper backbone": [f"body.features.{i}" for i in range(split, total)],
        "lower backbone": [f"body.features.{i}" for i in range(split)],
    }


#: name -> (head attribute replaced by Identity, first conv path, stages(body) builder)
_TORCHVISION = {
    "resnet50": ("fc", "conv1", lambda body: _resnet_stages()),
    "resnext50_32x4d": ("fc", "conv1", lambda body: _resnet_stages()),
    "wide_resnet50_2": ("fc", "conv1", lambda body: _resnet_stages()),
    # MobileNetV2 features: 0 stem, 1-17 inverted residuals, 18 last 1x1 conv; upper = last 4 blocks + conv
    "mobilenet_v2": ("classifier", "features.0.0", lambda body: _features_stages(14, len(body.features))),
    # EfficientNet-B0 features: 0 stem, 1-7 MBConv stages, 8 last 1x1 conv; upper = stages 6-7 + conv
    "efficientnet_b0": ("classifier", "features.0.0", lambda body: _features_stages(6, len(body.features))),
}


def _torchvision_classifier(
    arch: str,
    num_classes: int,
    input_shape: tuple[int, int, int],
    pretrained: bool,
    weights: str | os.PathLike | None,
    head_hidden: int,
    dropout: float,
    min_size: int,
) -> ImageClassifier:
    import torchvision

    h, w, c = _check_shape(input_shape)
    head_attr, first_conv, stage_builder = _TORCHVISION[arch]
    body = torchvision.models.get_model(arch, weights=None)
    features = _head_in_features(getattr(body, head_attr))
    setattr(body, head_attr, nn.Identity())

    file_state = _read_state_dict(weights) if weights is not None else None
    full_model_file = file_state is not None and any(k.startswith(("body.", "head.")) for k in file_state)
    if pretrained and file_state is None:
        _load_backbone_state(body, download_pretrained(arch), arch, "torchvision's pretrained weights")
    elif file_state is not None and not full_model_file:
        _load_backbone_state(body, file_state, arch, str(weights))

    if c != 3:
        _replace_module(body, first_conv, adapt_input_conv(body.get_submodule(first_conv), c))
    mean, std = channel_stats(c, IMAGENET_MEAN, IMAGENET_STD)
    preprocess = nn.Sequential(MinSize(min_size), Normalize(mean, std))
    head = make_head(features, num_classes, head_hidden, dropout)
    model = ImageClassifier(preprocess, body, head, stage_builder(body), (h, w, c), num_classes, arch)
    if full_model_file:
        _load_full_state(model, file_state, str(weights))
    return model


def _head_in_features(head: nn.Module) -> int:
    if isinstance(head, nn.Linear):
        return head.in_features
    linears = [m for m in head.modules() if isinstance(m, nn.Linear)]
    return linears[0].in_features


def adapt_input_conv(conv: nn.Conv2d, in_channels: int) -> nn.Conv2d:
    """A copy of ``conv`` taking ``in_channels`` inputs, filters adapted from the 3-channel ones."""
    new = nn.Conv2d(
        in_channels,
        conv.out_channels,
        conv.kernel_size,
        stride=conv.stride,
        padding=conv.padding,
        dilation=conv.dilation,
        groups=conv.groups,
        bias=conv.bias is not None,
        padding_mode=conv.padding_mode,
    )
    with torch.no_grad():
        weight = conv.weight
        if in_channels == 1:
            new.weight.copy_(weight.sum(dim=1, keepdim=True))
        else:
            repeats = math.ceil(in_channels / weight.shape[1])
            new.weight.copy_(weight.repeat(1, repeats, 1, 1)[:, :in_channels] * (weight.shape[1] / in_channels))
        if conv.bias is not None:
            new.bias.copy_(conv.bias)
    return new


def _replace_module(root: nn.Module, path: str, module: nn.Module) -> None:
    parent_path, _, name = path.rpartition(".")
    setattr(root.get_submodule(parent_path) if parent_path else root, name, module)


def _check_shape(input_shape: Sequence[int]) -> tuple[int, int, int]:
    if len(input_shape) != 3 or min(int(v) for v in input_shape) < 1:
        raise UsageError(f"input_shape must be (height, width, channels), got {tuple(input_shape)}")
    h, w, c = (int(v) for v in input_shape)
    return h, w, c


# --------------------------------------------------------------------------- weights


def download_pretrained(arch: str) -> dict[str, torch.Tensor]:
    """Torchvision's default ImageNet weights for ``arch`` (cached under ``$TORCH_HOME``).

    Raises :class:`DownloadError` with the offline route when the download fails.
    """
    import torch.hub
    import torchvision

    weights_enum = torchvision.models.get_model_weights(arch).DEFAULT
    try:
        return weights_enum.get_state_dict(progress=True, check_hash=True)
    except Exception as exc:  # noqa: BLE001 - network, HTTP, SSL or hash failures all mean "no weights"
        cache = Path(torch.hub.get_dir()) / "checkpoints"
        raise DownloadError(
            f"Cannot download pretrained weights for backbone '{arch}' ({weights_enum.url}): "
            f"{type(exc).__name__}: {exc}",
            hint=(
                f"copy the file to another machine's {cache} (torchvision caches under $TORCH_HOME/hub/checkpoints) "
                f"or pass weights=PATH to a local state dict (e.g. {Path(weights_enum.url).name})"
            ),
        ) from exc


def _read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Tensors from a state-dict file, unwrapping harness checkpoints ({'model': ...})."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise UsageError(f"weights file not found: {path}", hint="pass weights=PATH to a saved state dict")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - pickle / zip errors: the file is not a state dict
        raise UsageError(f"cannot read weights file {path}: {type(exc).__name__}: {exc}") from exc
    for key in ("model", "state_dict", "model_state_dict"):
        if isinstance(data, Mapping) and isinstance(data.get(key), Mapping):
            data = data[key]
            break
    if not isinstance(data, Mapping) or not all(isinstance(v, torch.Tensor) for v in data.values()):
        raise UsageError(f"weights file {path} does not hold a state dict of tensors")
    return {str(k).removeprefix("module."): v for k, v in data.items()}


def _load_backbone_state(body: nn.Module, state: Mapping[str, torch.Tensor], arch: str, origin: str) -> None:
    """Load a torchvision checkpoint into ``body`` (its ImageNet classifier is dropped)."""
    expected = set(body.state_dict())
    state = {k: v for k, v in state.items() if k in expected or not k.startswith(("fc.", "classifier."))}
    try:
        body.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise UsageError(f"weights from {origin} do not fit backbone '{arch}': {_first_line(exc)}") from exc


def _load_full_state(model: nn.Module, state: Mapping[str, torch.Tensor], origin: str) -> None:
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise UsageError(
            f"weights from {origin} do not fit this model ({model.arch}, {model.num_classes} classes, "
            f"input {model.input_shape}): {_first_line(exc)}"
        ) from exc


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return " ".join(lines[:2])


def _make_factory(arch: str) -> Callable[..., ImageClassifier]:
    return application_factory(arch, _torchvision_classifier, (
        f"torchvision {arch} with its classifier replaced by a head_hidden head (0: one Linear).\n\n"
        "pretrained=True loads torchvision's ImageNet weights; weights=PATH a local state dict "
        "(torchvision backbone or full harness model). Inputs below min_size are upsampled."))


mobilenet_v2 = _make_factory("mobilenet_v2")
resnet50 = _make_factory("resnet50")
resnext50_32x4d = _make_factory("resnext50_32x4d")
wide_resnet50_2 = _make_factory("wide_resnet50_2")
efficientnet_b0 = _make_factory("efficientnet_b0")

__all__ = [
    "ImageClassifier",
    "MinSize",
    "Normalize",
    "adapt_input_conv",
    "download_pretrained",
    "efficientnet_b0",
    "make_head",
    "mobilenet_v2",
    "param_groups_for_unfreezing",
    "resnet50",
    "resnext50_32x4d",
    "small_cnn",
    "unfreezing_stages",
    "wide_resnet50_2",
]
