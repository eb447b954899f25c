"""Augmentations on batched float tensors (N, C, H, W) in [0, 1], on the tensor's device.

Every augmentation is a class whose constructor is its factory::

    aug = Rotation(severity=3, p=1.0, degrees=None, seed=None)
    x_aug = aug(x, generator=None)   # same shape, float32, values in [0, 1]

Each image is augmented with probability ``p`` and gets its own random
parameters. Parameters left at ``None`` come from the severity table in
:mod:`harness.perturb.severity`; explicit values win. Randomness comes from the
``generator`` passed to the call, else from the augmentation's own generator
(built from ``seed``, advancing between calls), else from torch's global RNG.
Geometry and colour use ``torchvision.transforms.v2.functional`` with
parameters drawn here, per image; the noises use :mod:`harness.perturb.noise`.
"""

from __future__ import annotations

from typing import Any, Callable, ClassVar, Sequence

import torch
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as F

from harness.errors import UsageError
from harness.perturb import noise as _noise
from harness.perturb.severity import (
    AUGMENTATION_PARAMS,
    check_augmentation_params,
    check_number,
    check_severity,
    resolve,
)

from .noise import TorchOps

AugmentFn = Callable[..., torch.Tensor]

__all__ = [
    "AUGMENTATIONS",
    "Affine",
    "Augmentation",
    "ColorJitter",
    "Compose",
    "GaussianNoise",
    "Grayscale",
    "HFlip",
    "OneOf",
    "Perspective",
    "RandomCrop",
    "Rotation",
    "SaltAndPepper",
    "ShotNoise",
    "VFlip",
    "check_images",
    "make",
]


def check_images(x: Any) -> torch.Tensor:
    """``x`` as a float32 (N, C, H, W) tensor; UsageError for anything else."""
    if not isinstance(x, torch.Tensor):
        raise UsageError(f"augmentations take a torch.Tensor batch (N, C, H, W), got {type(x).__name__}")
    if x.dim() != 4:
        raise UsageError(f"augmentations take a batch shaped (N, C, H, W), got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise UsageError(f"augmentations take float images in [0, 1], got dtype {x.dtype}")
    return x.to(torch.float32)


def _rand(shape: Sequence[int] | int, generator: torch.Generator | None) -> torch.Tensor:
    """Uniform [0, 1) samples on the generator's device (CPU for the global RNG)."""
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    device = generator.device if generator is not None else torch.device("cpu")
    return torch.rand(shape, generator=generator, device=device)


def _uniform(n: int, low: float, high: float, generator: torch.Generator | None) -> list[float]:
    """``n`` floats uniform in [low, high]."""
    return (low + (high - low) * _rand(n, generator)).tolist()


def _randint(n: int, high: int, generator: torch.Generator | None) -> list[int]:
    """``n`` ints uniform in [0, high)."""
    return (_rand(n, generator) * high).long().clamp_(max=high - 1).tolist()


def _interpolation(value: str) -> InterpolationMode:
    try:
        return InterpolationMode(value)
    except ValueError:
        raise UsageError(f"interpolation must be 'nearest', 'bilinear' or 'bicubic', got {value!r}") from None


class Augmentation:
    """Base class: applies :meth:`apply` to a random subset (probability ``p``) of the batch."""

    name: ClassVar[str] = ""

    def __init__(self, severity: int = 3, p: float | None = 1.0, seed: int | None = None, **params: Any):
        self.severity = check_severity(severity)
        self.params = self.check_params(resolve(self.name, self.severity, **params))
        table_p = self.params.pop("p", None)
        p = table_p if p is None else p
        self.p = check_number("p", 1.0 if p is None else p, 0.0, 1.0)
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise UsageError(f"seed must be an integer or None, got {seed!r}")
        self.seed = seed
        self._generator = torch.Generator().manual_seed(seed) if seed is not None else None

    def check_params(self, params: dict[str, Any]) -> dict[str, Any]:
        """Validate and normalise the resolved parameters (the checks every framework shares)."""
        return check_augmentation_params(self.name, self.severity, params)

    def apply(self, x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
        """Augment every image of ``x`` (already selected), each with its own random parameters."""
        raise NotImplementedError

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        x = check_images(x)
        generator = generator if generator is not None else self._generator
        chosen = (_rand(x.shape[0], generator) < self.p).nonzero().flatten().tolist()
        out = x.clone()
        if chosen:
            index = torch.tensor(chosen, device=x.device)
            out[index] = self.apply(x[index], generator).to(torch.float32)
        return out.clamp_(0.0, 1.0)

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"{type(self).__name__}(severity={self.severity}, p={self.p:g}{', ' if params else ''}{params})"


class _Flip(Augmentation):
    def __init__(self, severity: int = 3, p: float | None = None, seed: int | None = None):
        super().__init__(severity, p, seed)


class HFlip(_Flip):
    """Horizontal flip; severity sets the share of images flipped (p 0.1 ... 0.9)."""

    name = "hflip"

    def apply(self, x, generator):
        return F.horizontal_flip(x)


class VFlip(_Flip):
    """Vertical flip; severity sets the share of images flipped (p 0.1 ... 0.9)."""

    name = "vflip"

    def apply(self, x, generator):
        return F.vertical_flip(x)


class Grayscale(_Flip):
    """Grayscale that keeps the channel count; 1-channel images are left as they are."""

    name = "grayscale"

    def apply(self, x, generator):
        if x.shape[1] == 1:
            return x
        if x.shape[1] != 3:
            raise UsageError(f"grayscale needs 1 or 3 channels, got {x.shape[1]}")
        return F.rgb_to_grayscale(x, num_output_channels=3)


class RandomCrop(Augmentation):
    """Pad by ``padding`` pixels (default: a severity-scaled share of the image side), crop back at random."""

    name = "random-crop"

    def __init__(self, severity: int = 3, p: float = 1.0, padding: int | None = None,
                 padding_mode: str = "constant", fill: float = 0.0, seed: int | None = None):
        super().__init__(severity, p, seed, padding=padding, padding_mode=padding_mode, fill=fill)

    def padding_for(self, height: int, width: int) -> int:
        """Padding in pixels for an image of this size."""
        if "padding" in self.params:
            return self.params["padding"]
        return max(1, round(self.params["padding_fraction"] * min(height, width)))

    def apply(self, x, generator):
        n, _, height, width = x.shape
        pad = self.padding_for(height, width)
        if pad == 0:
            return x
        padded = F.pad(x, [pad], fill=self.params["fill"], padding_mode=self.params["padding_mode"])
        tops, lefts = _randint(n, 2 * pad + 1, generator), _randint(n, 2 * pad + 1, generator)
        return torch.stack([padded[i, :, t:t + height, l:l + width] for i, (t, l) in enumerate(zip(tops, lefts))])


class ColorJitter(Augmentation):
    """Random brightness, contrast, saturation and hue, in a random order per image.

    Factors are drawn from [1 - b, 1 + b] (hue: [-h, h], in turns); saturation and
    hue are skipped on 1-channel images.
    """

    name = "color-jitter"

    def __init__(self, severity: int = 3, p: float = 1.0, brightness: float | None = None,
                 contrast: float | None = None, saturation: float | None = None, hue: float | None = None,
                 seed: int | None = None):
        super().__init__(severity, p, seed, brightness=brightness, contrast=contrast,
                         saturation=saturation, hue=hue)

    def apply(self, x, generator):
        n, channels = x.shape[:2]
        if channels not in (1, 3):
            raise UsageError(f"color-jitter needs 1 or 3 channels, got {channels}")
        p = self.params
        factors = {
            "brightness": _uniform(n, max(0.0, 1 - p["brightness"]), 1 + p["brightness"], generator),
            "contrast": _uniform(n, max(0.0, 1 - p["contrast"]), 1 + p["contrast"], generator),
            "saturation": _uniform(n, max(0.0, 1 - p["saturation"]), 1 + p["saturation"], generator),
            "hue": _uniform(n, -p["hue"], p["hue"], generator),
        }
        adjust = {"brightness": F.adjust_brightness, "contrast": F.adjust_contrast,
                  "saturation": F.adjust_saturation, "hue": F.adjust_hue}
        names = [name for name in (adjust if channels == 3 else ("brightness", "contrast")) if p[name] > 0]
        out = []
        for i in range(n):
            image = x[i]
            for k in _rand(len(names), generator).argsort().tolist():
                image = adjust[names[k]](image, factors[names[k]][i]).clamp(0.0, 1.0)
            out.append(image)
        return torch.stack(out)


class _Geometric(Augmentation):
    def _warp_kwargs(self) -> dict[str, Any]:
        return {"interpolation": _interpolation(self.params["interpolation"]), "fill": self.params["fill"]}


class Rotation(_Geometric):
    """Rotation by an angle drawn from [-degrees, degrees] (3 ... 20 degrees by severity)."""

    name = "rotation"

    def __init__(self, severity: int = 3, p: float = 1.0, degrees: float | None = None,
                 interpolation: str = "bilinear", fill: float = 0.0, seed: int | None = None):
        super().__init__(severity, p, seed, degrees=degrees, interpolation=interpolation, fill=fill)

    def apply(self, x, generator):
        angles = _uniform(x.shape[0], -self.params["degrees"], self.params["degrees"], generator)
        return torch.stack([F.rotate(image, angle, **self._warp_kwargs()) for image, angle in zip(x, angles)])


class Affine(_Geometric):
    """Random translation (share of the size), scale (1 +- scale) and x/y shear (+- degrees)."""

    name = "affine"

    def __init__(self, severity: int = 3, p: float = 1.0, translate: float | None = None,
                 scale: float | None = None, shear: float | None = None, interpolation: str = "bilinear",
                 fill: float = 0.0, seed: int | None = None):
        super().__init__(severity, p, seed, translate=translate, scale=scale, shear=shear,
                         interpolation=interpolation, fill=fill)

    def apply(self, x, generator):
        n, _, height, width = x.shape
        p = self.params
        tx = _uniform(n, -p["translate"] * width, p["translate"] * width, generator)
        ty = _uniform(n, -p["translate"] * height, p["translate"] * height, generator)
        scale = _uniform(n, 1 - p["scale"], 1 + p["scale"], generator)
        sx, sy = _uniform(n, -p["shear"], p["shear"], generator), _uniform(n, -p["shear"], p["shear"], generator)
        return torch.stack([
            F.affine(x[i], 0.0, translate=[tx[i], ty[i]], scale=scale[i], shear=[sx[i], sy[i]],
                     **self._warp_kwargs())
            for i in range(n)
        ])


class Perspective(_Geometric):
    """Perspective warp moving each corner by up to ``distortion`` x half the image side."""

    name = "perspective"

    def __init__(self, severity: int = 3, p: float = 1.0, distortion: float | None = None,
                 interpolation: str = "bilinear", fill: float = 0.0, seed: int | None = None):
        super().__init__(severity, p, seed, distortion=distortion, interpolation=interpolation, fill=fill)

    def apply(self, x, generator):
        n, _, height, width = x.shape
        # like v2.RandomPerspective, but with sub-pixel offsets so small images still move
        bound_w, bound_h = self.params["distortion"] * (width / 2), self.params["distortion"] * (height / 2)
        dx = [_uniform(n, 0.0, bound_w, generator) for _ in range(4)]
        dy = [_uniform(n, 0.0, bound_h, generator) for _ in range(4)]
        start = [[0, 0], [width - 1, 0], [width - 1, height - 1], [0, height - 1]]
        out = []
        for i in range(n):
            end = [[dx[0][i], dy[0][i]], [width - 1 - dx[1][i], dy[1][i]],
                   [width - 1 - dx[2][i], height - 1 - dy[2][i]], [dx[3][i], height - 1 - dy[3][i]]]
            out.append(F.perspective(x[i], start, end, **self._warp_kwargs()))
        return torch.stack(out)


class _Noise(Augmentation):
    def apply(self, x, generator):
        return _noise.NOISES[self.name](x, TorchOps(generator), **self.params)


class GaussianNoise(_Noise):
    """Additive Gaussian noise, sigma 0.04 ... 0.18 by severity (Tiny-ImageNet-C)."""

    name = "gaussian-noise"

    def __init__(self, severity: int = 3, p: float = 1.0, sigma: float | None = None, seed: int | None = None):
        super().__init__(severity, p, seed, sigma=sigma)


class ShotNoise(_Noise):
    """Poisson shot noise, lam 500 ... 50 photons by severity (Tiny-ImageNet-C)."""

    name = "shot-noise"

    def __init__(self, severity: int = 3, p: float = 1.0, lam: float | None = None, seed: int | None = None):
        super().__init__(severity, p, seed, lam=lam)


class SaltAndPepper(_Noise):
    """Salt-and-pepper noise on a share ``amount`` (0.01 ... 0.07) of the pixel values."""

    name = "salt-and-pepper"

    def __init__(self, severity: int = 3, p: float = 1.0, amount: float | None = None,
                 salt_vs_pepper: float = 0.5, seed: int | None = None):
        super().__init__(severity, p, seed, amount=amount, salt_vs_pepper=salt_vs_pepper)


AUGMENTATIONS: dict[str, type[Augmentation]] = {
    cls.name: cls
    for cls in (HFlip, VFlip, RandomCrop, ColorJitter, Grayscale, Rotation, Affine, Perspective,
                GaussianNoise, ShotNoise, SaltAndPepper)
}
assert set(AUGMENTATIONS) == set(AUGMENTATION_PARAMS), "severity tables and classes disagree"


def make(name: str, severity: int = 3, **params: Any) -> Augmentation:
    """Build augmentation ``name`` (a registered name, e.g. ``"rotation"``)."""
    if name not in AUGMENTATIONS:
        raise UsageError(f"Unknown augmentation '{name}'. Available: {', '.join(AUGMENTATIONS)}")
    return AUGMENTATIONS[name](severity=severity, **params)


class Compose:
    """Apply augmentations one after the other, sharing the generator."""

    def __init__(self, augmentations: Sequence[AugmentFn]):
        self.augmentations = list(augmentations)

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        x = check_images(x)
        for augmentation in self.augmentations:
            x = augmentation(x, generator=generator)
        return x

    def __repr__(self) -> str:
        return f"Compose({self.augmentations!r})"


class OneOf:
    """Apply one augmentation per image, picked uniformly at random (the seed's augmented set)."""

    def __init__(self, augmentations: Sequence[AugmentFn], seed: int | None = None):
        if not augmentations:
            raise UsageError("OneOf needs at least one augmentation")
        self.augmentations = list(augmentations)
        self._generator = torch.Generator().manual_seed(seed) if seed is not None else None

    def __call__(self, x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        x = check_images(x)
        generator = generator if generator is not None else self._generator
        picks = torch.tensor(_randint(x.shape[0], len(self.augmentations), generator), device=x.device)
        out = x.clone()
        for k, augmentation in enumerate(self.augmentations):
            index = (picks == k).nonzero().flatten()
            if index.numel():
                out[index] = augmentation(x[index], generator=generator)
        return out

    def __repr__(self) -> str:
        return f"OneOf({self.augmentations!r})"
