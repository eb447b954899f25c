"""Augmentations on batched float tensors (N, C, H, W) in [0, 1], on the tensor's device.

The classes are :mod:`harness.perturb.augmentations`' (written once for every
framework) over :class:`TorchAugmentOps`, which holds only torch calls::

    aug = Rotation(severity=3, p=1.0, degrees=None, seed=None)
    x_aug = aug(x, generator=None)   # same shape, float32, values in [0, 1]

Each image is augmented with probability ``p`` and gets its own random
parameters. Parameters left at ``None`` come from the severity table in
:mod:`harness.perturb.severity`; explicit values win. Randomness comes from the
``generator`` passed to the call (a ``torch.Generator``), else from the
augmentation's own generator (built from ``seed``, advancing between calls), else
from torch's global RNG. Geometry and colour use
``torchvision.transforms.v2.functional`` with parameters drawn per image; the
noises use :mod:`harness.perturb.noise`.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as F
from torchvision.transforms.v2.functional import _geometry as _tv_geometry

from harness.errors import UsageError
from harness.perturb.augmentations import AUGMENTATION_CLASS_NAMES, augmentation_classes

from .noise import TorchOps

__all__ = ["AUGMENTATIONS", *AUGMENTATION_CLASS_NAMES, "TorchAugmentOps", "check_images", "make"]


def check_images(x: Any, name: str = "augmentations") -> torch.Tensor:
    """``x`` as a float32 (N, C, H, W) tensor; UsageError naming ``name`` for anything else."""
    if not isinstance(x, torch.Tensor):
        raise UsageError(f"{name}: torch augmentations take a torch.Tensor batch (N, C, H, W), "
                         f"got {type(x).__name__}")
    if x.dim() != 4:
        raise UsageError(f"{name}: torch augmentations take a batch shaped (N, C, H, W), got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise UsageError(f"{name}: torch augmentations take float images in [0, 1], got dtype {x.dtype}")
    return x.to(torch.float32)


def _rand(shape: Sequence[int] | int, generator: torch.Generator | None) -> torch.Tensor:
    """Uniform [0, 1) samples on the generator's device (CPU for the global RNG)."""
    shape = (shape,) if isinstance(shape, int) else tuple(shape)
    device = generator.device if generator is not None else torch.device("cpu")
    return torch.rand(shape, generator=generator, device=device)


def _interpolation(value: str) -> InterpolationMode:
    try:
        return InterpolationMode(value)
    except ValueError:
        raise UsageError(f"interpolation must be 'nearest', 'bilinear' or 'bicubic', got {value!r}") from None


_ADJUST = {"brightness": F.adjust_brightness, "contrast": F.adjust_contrast,
           "saturation": F.adjust_saturation, "hue": F.adjust_hue}


#: interpolations torchvision's tensor warps take; these run on the whole batch at once (below)
_GRID_MODES = ("nearest", "bilinear")


def _grid_points(height: int, width: int, centred: bool, x: torch.Tensor) -> torch.Tensor:
    """torchvision's sampling points, (1, H*W, 3) rows (x, y, 1): centred on the image (its affine grid)
    or from the top-left corner (its perspective grid), as in ``_affine_grid`` / ``_perspective_grid``."""
    base = torch.empty(1, height, width, 3, dtype=x.dtype, device=x.device)
    if centred:
        xs = torch.linspace((1.0 - width) * 0.5, (width - 1.0) * 0.5, steps=width, device=x.device)
        ys = torch.linspace((1.0 - height) * 0.5, (height - 1.0) * 0.5, steps=height, device=x.device)
    else:
        d = 0.5
        xs = torch.linspace(d, width + d - 1.0, steps=width, device=x.device, dtype=x.dtype)
        ys = torch.linspace(d, height + d - 1.0, steps=height, device=x.device, dtype=x.dtype)
    base[..., 0].copy_(xs)
    base[..., 1].copy_(ys.unsqueeze_(-1))
    base[..., 2].fill_(1)
    return base.view(1, height * width, 3)


def _warp(x: torch.Tensor, grid: torch.Tensor, interpolation: str, fill: float) -> torch.Tensor:
    """Sample every image of ``x`` at its own grid (N, H, W, 2) in one call, with torchvision's fill handling."""
    return _tv_geometry._apply_grid_transform(x, grid, interpolation, fill=fill)


def _affine_warp(x: torch.Tensor, matrices: list[list[float]], interpolation: str, fill: float) -> torch.Tensor:
    """Each image warped by its inverse affine matrix (torchvision's 6 numbers): its ``_affine_grid`` on a batch."""
    n, _, height, width = x.shape
    theta = torch.tensor(matrices, dtype=x.dtype, device=x.device).reshape(n, 2, 3)
    scale = torch.tensor([0.5 * width, 0.5 * height], dtype=x.dtype, device=x.device)
    grid = _grid_points(height, width, True, x).expand(n, -1, -1).bmm(theta.transpose(1, 2).div_(scale))
    return _warp(x, grid.view(n, height, width, 2), interpolation, fill)


class TorchAugmentOps:
    """:class:`harness.perturb.augmentations.AugmentOps` over torch tensors (N, C, H, W)."""

    framework = "torch"
    interpolations = ("nearest", "bilinear", "bicubic")

    def check_images(self, x: Any, name: str) -> torch.Tensor:
        return check_images(x, name)

    def seeded(self, seed: int) -> torch.Generator:
        return torch.Generator().manual_seed(seed)

    def generator(self, generator: Any, name: str) -> torch.Generator | None:
        if generator is not None and not isinstance(generator, torch.Generator):
            raise UsageError(f"{name}: torch augmentations draw from a torch.Generator, "
                             f"got {type(generator).__name__}")
        return generator

    def shape(self, x: torch.Tensor) -> tuple[int, int, int, int]:
        n, channels, height, width = x.shape
        return n, height, width, channels

    def choose(self, n: int, p: float, generator: torch.Generator | None) -> list[int]:
        return (_rand(n, generator) < p).nonzero().flatten().tolist()

    def uniform(self, n: int, low: float, high: float, generator: torch.Generator | None) -> list[float]:
        return (low + (high - low) * _rand(n, generator)).tolist()

    def randint(self, n: int, high: int, generator: torch.Generator | None) -> list[int]:
        return (_rand(n, generator) * high).long().clamp_(max=high - 1).tolist()

    def replace(self, x: torch.Tensor, indices: list[int], fn) -> torch.Tensor:
        out = x.clone()
        if indices:
            index = torch.tensor(indices, device=x.device)
            out.index_copy_(0, index, fn(x[index]).to(torch.float32))  # index_put_ is 5x slower on permuted x
        return out

    def clip01(self, x: torch.Tensor) -> torch.Tensor:
        return x.clamp_(0.0, 1.0)

    def hflip(self, x: torch.Tensor) -> torch.Tensor:
        return F.horizontal_flip(x)

    def vflip(self, x: torch.Tensor) -> torch.Tensor:
        return F.vertical_flip(x)

    def grayscale(self, x: torch.Tensor) -> torch.Tensor:
        return F.rgb_to_grayscale(x, num_output_channels=3)

    def crop(self, x, pad, tops, lefts, padding_mode, fill):
        # the loop makes views only; stack is one copy (a batched gather measured 1.5x slower on the CPU)
        height, width = x.shape[2:]
        padded = F.pad(x, [pad], fill=fill, padding_mode=padding_mode)
        return torch.stack([padded[i, :, t:t + height, l:l + width] for i, (t, l) in enumerate(zip(tops, lefts))])

    def color_jitter(self, x, names, factors, generator):
        out = []
        for i in range(x.shape[0]):
            image = x[i]
            for k in _rand(len(names), generator).argsort().tolist():
                image = _ADJUST[names[k]](image, factors[names[k]][i]).clamp(0.0, 1.0)
            out.append(image)
        return torch.stack(out)

    @staticmethod
    def _warp_kwargs(interpolation: str, fill: float) -> dict[str, Any]:
        return {"interpolation": _interpolation(interpolation), "fill": fill}

    # The warps run on the whole batch: each image's matrix or coefficients come from torchvision's own
    # (Python float) helpers, then one grid and one grid_sample for the batch; bit for bit what
    # F.rotate / F.affine / F.perspective give image by image (checked in tests/augmentations).

    def rotate(self, x, angles, interpolation, fill):
        kwargs = self._warp_kwargs(interpolation, fill)
        if interpolation not in _GRID_MODES:  # torchvision raises its own error for these
            return torch.stack([F.rotate(image, angle, **kwargs) for image, angle in zip(x, angles)])
        angles = [angle % 360 for angle in angles]
        out = _affine_warp(x, [_tv_geometry._get_inverse_affine_matrix([0.0, 0.0], -angle, [0.0, 0.0], 1.0, [0.0, 0.0])
                               for angle in angles], interpolation, fill)
        for i in [i for i, angle in enumerate(angles) if angle in (0, 90, 180, 270)]:
            out[i] = F.rotate(x[i], angles[i], **kwargs)  # torchvision copies or rot90s these exactly
        return out

    def affine(self, x, tx, ty, scale, shear_x, shear_y, interpolation, fill):
        kwargs = self._warp_kwargs(interpolation, fill)
        if interpolation not in _GRID_MODES:
            return torch.stack([
                F.affine(x[i], 0.0, translate=[tx[i], ty[i]], scale=scale[i], shear=[shear_x[i], shear_y[i]],
                         **kwargs) for i in range(x.shape[0])])
        matrices = []
        for i in range(x.shape[0]):
            angle, translate, shear, _ = _tv_geometry._affine_parse_args(
                0.0, [tx[i], ty[i]], scale[i], [shear_x[i], shear_y[i]], kwargs["interpolation"], None)
            matrices.append(_tv_geometry._get_inverse_affine_matrix([0.0, 0.0], angle, [float(t) for t in translate],
                                                                    scale[i], shear))
        return _affine_warp(x, matrices, interpolation, fill)

    def perspective(self, x, dx, dy, interpolation, fill):
        n, _, height, width = x.shape
        kwargs = self._warp_kwargs(interpolation, fill)
        start = [[0, 0], [width - 1, 0], [width - 1, height - 1], [0, height - 1]]
        ends = [[[dx[0][i], dy[0][i]], [width - 1 - dx[1][i], dy[1][i]],
                 [width - 1 - dx[2][i], height - 1 - dy[2][i]], [dx[3][i], height - 1 - dy[3][i]]] for i in range(n)]
        if interpolation not in _GRID_MODES:
            return torch.stack([F.perspective(x[i], start, ends[i], **kwargs) for i in range(n)])
        coeffs = torch.tensor([_tv_geometry._perspective_coefficients(start, end, None) for end in ends],
                              dtype=x.dtype, device=x.device)  # n, 8 (torchvision's _perspective_grid, batched)
        ones = torch.ones(n, 1, dtype=x.dtype, device=x.device)
        theta1 = coeffs[:, :6].reshape(n, 2, 3)
        theta2 = torch.cat([coeffs[:, 6:8], ones], dim=1)[:, None, :].expand(n, 2, 3)
        scale = torch.tensor([0.5 * width, 0.5 * height], dtype=x.dtype, device=x.device)
        points = _grid_points(height, width, False, x).expand(n, -1, -1)
        grid = points.bmm(theta1.transpose(1, 2).div_(scale)).div_(points.bmm(theta2.transpose(1, 2))).sub_(1.0)
        return _warp(x, grid.view(n, height, width, 2), interpolation, fill)

    def noise_ops(self, generator: torch.Generator | None) -> TorchOps:
        return TorchOps(generator)


(Augmentation, HFlip, VFlip, Grayscale, RandomCrop, ColorJitter, Rotation, Affine, Perspective, GaussianNoise,
 ShotNoise, SaltAndPepper, Compose, OneOf) = augmentation_classes(TorchAugmentOps(), __name__)

#: registered name -> class
AUGMENTATIONS: dict[str, type[Augmentation]] = Augmentation.table
make = Augmentation.make
