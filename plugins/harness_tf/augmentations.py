"""Augmentations on batched float tensors (N, H, W, C) in [0, 1], in TensorFlow.

The same names, parameters, severity tables and checks as the PyTorch
augmentations (:mod:`harness.perturb.severity`); every class's constructor is
its factory::

    aug = Rotation(severity=3, p=1.0, degrees=None, seed=None)
    x_aug = aug(x, generator=None)   # same shape, float32, values in [0, 1]

Each image is augmented with probability ``p`` and gets its own random
parameters. Randomness comes from the ``generator`` passed to the call (a
``tf.random.Generator``), else from the augmentation's own generator (built from
``seed``, advancing between calls), else from TensorFlow's global generator.
The noises reuse :mod:`harness.perturb.noise` through :class:`~harness_tf.noise.TFOps`;
rotation, affine and perspective warps are one projective transform per image
(``ImageProjectiveTransformV3``), with the same parameter meaning as torchvision's.
Pixel values differ slightly from the PyTorch plugins (interpolation details),
and only ``nearest`` and ``bilinear`` interpolation exist here.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import tensorflow as tf

from harness.errors import UsageError
from harness.perturb import noise as _noise
from harness.perturb.severity import (
    AUGMENTATION_PARAMS,
    check_augmentation_params,
    check_number,
    check_severity,
    resolve,
)

from .noise import TFOps

__all__ = [
    "AUGMENTATIONS",
    "Affine",
    "Augmentation",
    "ColorJitter",
    "GaussianNoise",
    "Grayscale",
    "HFlip",
    "Perspective",
    "RandomCrop",
    "Rotation",
    "SaltAndPepper",
    "ShotNoise",
    "VFlip",
    "check_images",
]

#: torchvision's luma weights (ITU-R 601-2), as tf.image.rgb_to_grayscale uses
_LUMA = (0.2989, 0.587, 0.114)


def check_images(x: Any) -> tf.Tensor:
    """``x`` as a float32 (N, H, W, C) tensor; UsageError for anything else."""
    if not isinstance(x, (tf.Tensor, tf.Variable, np.ndarray)):
        raise UsageError(f"augmentations take a tf.Tensor batch (N, H, W, C), got {type(x).__name__}")
    x = tf.convert_to_tensor(x)
    if x.shape.rank != 4:
        raise UsageError(f"augmentations take a batch shaped (N, H, W, C), got shape {tuple(x.shape)}")
    if not x.dtype.is_floating:
        raise UsageError(f"augmentations take float images in [0, 1], got dtype {x.dtype.name}")
    return tf.cast(x, tf.float32)


def _uniform(n: int, low: float, high: float, rng: tf.random.Generator) -> tf.Tensor:
    """(n,) floats uniform in [low, high]."""
    return rng.uniform([n], minval=low, maxval=high) if high > low else tf.fill([n], float(low))


def _randint(n: int, high: int, rng: tf.random.Generator) -> tf.Tensor:
    """(n,) int32 uniform in [0, high)."""
    return tf.minimum(tf.cast(rng.uniform([n]) * high, tf.int32), high - 1)


def _per_image(values: tf.Tensor) -> tf.Tensor:
    """(n,) -> (n, 1, 1, 1), to broadcast over images."""
    return tf.reshape(values, [-1, 1, 1, 1])


def _luma(x: tf.Tensor) -> tf.Tensor:
    """(n, h, w, 1) grey level of RGB or grey images."""
    if x.shape[-1] == 1:
        return x
    return tf.reduce_sum(x * tf.constant(_LUMA, x.dtype), axis=-1, keepdims=True)


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
        self._generator = tf.random.Generator.from_seed(seed) if seed is not None else None

    def check_params(self, params: dict[str, Any]) -> dict[str, Any]:
        """Validate and normalise the resolved parameters (the checks every framework shares)."""
        return check_augmentation_params(self.name, self.severity, params)

    def apply(self, x: tf.Tensor, rng: tf.random.Generator) -> tf.Tensor:
        """Augment every image of ``x`` (already selected), each with its own random parameters."""
        raise NotImplementedError

    def __call__(self, x: Any, generator: tf.random.Generator | None = None) -> tf.Tensor:
        x = check_images(x)
        rng = generator if generator is not None else self._generator
        rng = rng if rng is not None else tf.random.get_global_generator()
        n = int(x.shape[0])
        if n == 0:
            return x
        chosen = tf.where(rng.uniform([n]) < self.p)[:, 0]
        if int(tf.size(chosen)) == n:
            out = self.apply(x, rng)
        elif int(tf.size(chosen)) == 0:
            out = x
        else:
            out = tf.tensor_scatter_nd_update(x, chosen[:, None], self.apply(tf.gather(x, chosen), rng))
        return tf.clip_by_value(tf.cast(out, tf.float32), 0.0, 1.0)

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"{type(self).__name__}(severity={self.severity}, p={self.p:g}{', ' if params else ''}{params})"


class _Flip(Augmentation):
    def __init__(self, severity: int = 3, p: float | None = None, seed: int | None = None):
        super().__init__(severity, p, seed)


class HFlip(_Flip):
    """Horizontal flip; severity sets the share of images flipped (p 0.1 ... 0.9)."""

    name = "hflip"

    def apply(self, x, rng):
        return tf.reverse(x, axis=[2])


class VFlip(_Flip):
    """Vertical flip; severity sets the share of images flipped (p 0.1 ... 0.9)."""

    name = "vflip"

    def apply(self, x, rng):
        return tf.reverse(x, axis=[1])


class Grayscale(_Flip):
    """Grayscale that keeps the channel count; 1-channel images are left as they are."""

    name = "grayscale"

    def apply(self, x, rng):
        if x.shape[-1] == 1:
            return x
        if x.shape[-1] != 3:
            raise UsageError(f"grayscale needs 1 or 3 channels, got {x.shape[-1]}")
        return tf.repeat(_luma(x), 3, axis=-1)


def _source_index(index: tf.Tensor, size: int, mode: str) -> tuple[tf.Tensor, tf.Tensor]:
    """Map indices into a padded axis back to the image: (source index, inside-the-image mask)."""
    inside = (index >= 0) & (index < size)
    if mode == "reflect" and size > 1:  # mirror without repeating the edge (numpy's "reflect")
        period = 2 * (size - 1)
        index = tf.math.floormod(index, period)
        index = tf.where(index >= size, period - index, index)
    elif mode == "symmetric":  # mirror repeating the edge
        period = 2 * size
        index = tf.math.floormod(index, period)
        index = tf.where(index >= size, period - 1 - index, index)
    return tf.clip_by_value(index, 0, size - 1), inside


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

    def apply(self, x, rng):
        n, height, width = (int(v) for v in x.shape[:3])
        pad = self.padding_for(height, width)
        if pad == 0:
            return x
        tops, lefts = _randint(n, 2 * pad + 1, rng), _randint(n, 2 * pad + 1, rng)
        mode = self.params["padding_mode"]
        rows, row_inside = _source_index(tf.range(height)[None, :] + tops[:, None] - pad, height, mode)
        cols, col_inside = _source_index(tf.range(width)[None, :] + lefts[:, None] - pad, width, mode)
        out = tf.gather(tf.gather(x, rows, axis=1, batch_dims=1), cols, axis=2, batch_dims=1)
        if mode == "constant":
            inside = row_inside[:, :, None, None] & col_inside[:, None, :, None]
            out = tf.where(inside, out, tf.cast(self.params["fill"], out.dtype))
        return out


class ColorJitter(Augmentation):
    """Random brightness, contrast, saturation and hue, in a random order per image.

    Factors are drawn from [1 - b, 1 + b] (hue: [-h, h], in turns); saturation and
    hue are skipped on 1-channel images. Brightness, contrast and saturation blend
    as torchvision does (with black, the mean grey level, the grey image).
    """

    name = "color-jitter"

    def __init__(self, severity: int = 3, p: float = 1.0, brightness: float | None = None,
                 contrast: float | None = None, saturation: float | None = None, hue: float | None = None,
                 seed: int | None = None):
        super().__init__(severity, p, seed, brightness=brightness, contrast=contrast,
                         saturation=saturation, hue=hue)

    @staticmethod
    def _blend(x: tf.Tensor, other: tf.Tensor, factor: tf.Tensor) -> tf.Tensor:
        return tf.clip_by_value(factor * x + (1.0 - factor) * other, 0.0, 1.0)

    @staticmethod
    def _hue(x: tf.Tensor, shift: tf.Tensor) -> tf.Tensor:
        hsv = tf.image.rgb_to_hsv(x)
        hue = tf.math.floormod(hsv[..., :1] + shift, 1.0)
        return tf.clip_by_value(tf.image.hsv_to_rgb(tf.concat([hue, hsv[..., 1:]], axis=-1)), 0.0, 1.0)

    def apply(self, x, rng):
        n, channels = int(x.shape[0]), int(x.shape[-1])
        if channels not in (1, 3):
            raise UsageError(f"color-jitter needs 1 or 3 channels, got {channels}")
        p = self.params
        factor = {
            "brightness": _per_image(_uniform(n, max(0.0, 1 - p["brightness"]), 1 + p["brightness"], rng)),
            "contrast": _per_image(_uniform(n, max(0.0, 1 - p["contrast"]), 1 + p["contrast"], rng)),
            "saturation": _per_image(_uniform(n, max(0.0, 1 - p["saturation"]), 1 + p["saturation"], rng)),
            "hue": _per_image(_uniform(n, -p["hue"], p["hue"], rng)),
        }
        adjust = {
            "brightness": lambda t: self._blend(t, tf.zeros_like(t), factor["brightness"]),
            "contrast": lambda t: self._blend(t, tf.reduce_mean(_luma(t), axis=[1, 2, 3], keepdims=True),
                                              factor["contrast"]),
            "saturation": lambda t: self._blend(t, _luma(t), factor["saturation"]),
            "hue": lambda t: self._hue(t, factor["hue"]),
        }
        names = [name for name in (adjust if channels == 3 else ("brightness", "contrast")) if p[name] > 0]
        if not names:
            return x
        order = tf.argsort(rng.uniform([n, len(names)]), axis=1)  # a random order of the adjustments per image
        for position in range(len(names)):
            for k, name in enumerate(names):
                x = tf.where(_per_image(order[:, position] == k), adjust[name](x), x)
        return x


# --------------------------------------------------------------------------- projective warps


def _centered(matrix: np.ndarray, height: int, width: int, shift: np.ndarray | None = None) -> np.ndarray:
    """``T(center + shift) @ matrix @ T(-center)`` for (n, 3, 3) maps about the image centre."""
    n = matrix.shape[0]
    cx, cy = (width - 1) / 2.0, (height - 1) / 2.0
    to_origin = np.tile(np.array([[1.0, 0, -cx], [0, 1.0, -cy], [0, 0, 1.0]]), (n, 1, 1))
    back = np.tile(np.eye(3), (n, 1, 1))
    back[:, 0, 2], back[:, 1, 2] = cx, cy
    if shift is not None:
        back[:, :2, 2] += shift
    return back @ matrix @ to_origin


def _transform(x: tf.Tensor, forward: np.ndarray, interpolation: str, fill: float) -> tf.Tensor:
    """Warp each image by its (3, 3) input->output map ``forward`` (the op wants output->input)."""
    inverse = np.linalg.inv(forward)
    inverse = inverse / inverse[:, 2:3, 2:3]
    return _projective(x, inverse.reshape(-1, 9)[:, :8], interpolation, fill)


def _projective(x: tf.Tensor, transforms: np.ndarray, interpolation: str, fill: float) -> tf.Tensor:
    height, width = int(x.shape[1]), int(x.shape[2])
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=x, transforms=tf.constant(transforms, tf.float32), output_shape=tf.constant([height, width]),
        fill_value=tf.constant(fill, tf.float32), interpolation=interpolation.upper(), fill_mode="CONSTANT")


class _Geometric(Augmentation):
    def check_params(self, params):
        params = super().check_params(params)
        if params["interpolation"] == "bicubic":
            raise UsageError("interpolation 'bicubic' is not available in TensorFlow's image warps",
                             hint="use 'bilinear' or 'nearest'")
        return params

    def _warp(self, x: tf.Tensor, forward: np.ndarray) -> tf.Tensor:
        return _transform(x, forward, self.params["interpolation"], self.params["fill"])


def _draw(n: int, low: float, high: float, rng: tf.random.Generator) -> np.ndarray:
    return _uniform(n, low, high, rng).numpy().astype(np.float64)


class Rotation(_Geometric):
    """Rotation by an angle drawn from [-degrees, degrees] (3 ... 20 degrees by severity)."""

    name = "rotation"

    def __init__(self, severity: int = 3, p: float = 1.0, degrees: float | None = None,
                 interpolation: str = "bilinear", fill: float = 0.0, seed: int | None = None):
        super().__init__(severity, p, seed, degrees=degrees, interpolation=interpolation, fill=fill)

    def apply(self, x, rng):
        angles = np.radians(_draw(int(x.shape[0]), -self.params["degrees"], self.params["degrees"], rng))
        cos, sin = np.cos(angles), np.sin(angles)
        # counter-clockwise on screen (y points down), as torchvision rotates
        rotation = np.stack([np.stack([cos, sin, 0 * cos], -1), np.stack([-sin, cos, 0 * cos], -1),
                             np.tile([0.0, 0.0, 1.0], (len(angles), 1))], axis=1)
        return self._warp(x, _centered(rotation, int(x.shape[1]), int(x.shape[2])))


class Affine(_Geometric):
    """Random translation (share of the size), scale (1 +- scale) and x/y shear (+- degrees)."""

    name = "affine"

    def __init__(self, severity: int = 3, p: float = 1.0, translate: float | None = None,
                 scale: float | None = None, shear: float | None = None, interpolation: str = "bilinear",
                 fill: float = 0.0, seed: int | None = None):
        super().__init__(severity, p, seed, translate=translate, scale=scale, shear=shear,
                         interpolation=interpolation, fill=fill)

    def apply(self, x, rng):
        n, height, width = (int(v) for v in x.shape[:3])
        p = self.params
        tx = _draw(n, -p["translate"] * width, p["translate"] * width, rng)
        ty = _draw(n, -p["translate"] * height, p["translate"] * height, rng)
        scale = _draw(n, 1 - p["scale"], 1 + p["scale"], rng)
        sx, sy = np.tan(np.radians(_draw(n, -p["shear"], p["shear"], rng))), np.tan(
            np.radians(_draw(n, -p["shear"], p["shear"], rng)))
        # torchvision's scale-shear matrix for angle 0: S(s) @ SHy(sy) @ SHx(sx)
        matrix = np.zeros((n, 3, 3))
        matrix[:, 0, 0], matrix[:, 0, 1] = scale, -scale * sx
        matrix[:, 1, 0], matrix[:, 1, 1] = -scale * sy, scale * (sy * sx + 1.0)
        matrix[:, 2, 2] = 1.0
        return self._warp(x, _centered(matrix, height, width, shift=np.stack([tx, ty], -1)))


def homography(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """(n, 3, 3) projective maps taking the 4 points ``src[i]`` to ``dst[i]`` (arrays (n, 4, 2))."""
    n = src.shape[0]
    a = np.zeros((n, 8, 8))
    b = np.zeros((n, 8))
    for k in range(4):
        x, y = src[:, k, 0], src[:, k, 1]
        u, v = dst[:, k, 0], dst[:, k, 1]
        a[:, 2 * k, :] = np.stack([x, y, np.ones(n), 0 * x, 0 * x, 0 * x, -u * x, -u * y], -1)
        a[:, 2 * k + 1, :] = np.stack([0 * x, 0 * x, 0 * x, x, y, np.ones(n), -v * x, -v * y], -1)
        b[:, 2 * k], b[:, 2 * k + 1] = u, v
    h = np.linalg.solve(a, b[..., None])[..., 0]
    return np.concatenate([h, np.ones((n, 1))], axis=1).reshape(n, 3, 3)


class Perspective(_Geometric):
    """Perspective warp moving each corner by up to ``distortion`` x half the image side."""

    name = "perspective"

    def __init__(self, severity: int = 3, p: float = 1.0, distortion: float | None = None,
                 interpolation: str = "bilinear", fill: float = 0.0, seed: int | None = None):
        super().__init__(severity, p, seed, distortion=distortion, interpolation=interpolation, fill=fill)

    def apply(self, x, rng):
        n, height, width = (int(v) for v in x.shape[:3])
        bound_w, bound_h = self.params["distortion"] * (width / 2), self.params["distortion"] * (height / 2)
        dx = [_draw(n, 0.0, bound_w, rng) for _ in range(4)]
        dy = [_draw(n, 0.0, bound_h, rng) for _ in range(4)]
        w, h = width - 1.0, height - 1.0
        start = np.tile(np.array([[0.0, 0.0], [w, 0.0], [w, h], [0.0, h]]), (n, 1, 1))
        end = np.stack([np.stack([dx[0], dy[0]], -1), np.stack([w - dx[1], dy[1]], -1),
                        np.stack([w - dx[2], h - dy[2]], -1), np.stack([dx[3], h - dy[3]], -1)], axis=1)
        return self._warp(x, homography(start, end))


# --------------------------------------------------------------------------- noise


class _Noise(Augmentation):
    def apply(self, x, rng):
        return _noise.NOISES[self.name](x, TFOps(rng), **self.params)


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
