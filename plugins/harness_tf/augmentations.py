"""Augmentations on batched float tensors (N, H, W, C) in [0, 1], in TensorFlow.

The classes are :mod:`harness.perturb.augmentations`' (written once for every
framework: the same names, parameters, severity tables, checks and drawing order
as the PyTorch ones) over :class:`TFAugmentOps`, which holds only TensorFlow calls::

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

from typing import Any

import numpy as np
import tensorflow as tf

from harness.errors import UsageError
from harness.perturb.augmentations import AUGMENTATION_CLASS_NAMES, augmentation_classes

from .noise import TFOps

__all__ = ["AUGMENTATIONS", *AUGMENTATION_CLASS_NAMES, "TFAugmentOps", "homography", "check_images", "make"]

#: torchvision's luma weights (ITU-R 601-2), as tf.image.rgb_to_grayscale uses
_LUMA = (0.2989, 0.587, 0.114)


def check_images(x: Any, name: str = "augmentations") -> tf.Tensor:
    """``x`` as a float32 (N, H, W, C) tensor; UsageError naming ``name`` for anything else."""
    if not isinstance(x, (tf.Tensor, tf.Variable, np.ndarray)):
        raise UsageError(f"{name}: TensorFlow augmentations take a tf.Tensor batch (N, H, W, C), "
                         f"got {type(x).__name__}")
    x = tf.convert_to_tensor(x)
    if x.shape.rank != 4:
        raise UsageError(f"{name}: TensorFlow augmentations take a batch shaped (N, H, W, C), "
                         f"got shape {tuple(x.shape)}")
    if not x.dtype.is_floating:
        raise UsageError(f"{name}: TensorFlow augmentations take float images in [0, 1], got dtype {x.dtype.name}")
    return tf.cast(x, tf.float32)


def _per_image(values: tf.Tensor) -> tf.Tensor:
    """(n,) -> (n, 1, 1, 1), to broadcast over images."""
    return tf.reshape(values, [-1, 1, 1, 1])


def _luma(x: tf.Tensor) -> tf.Tensor:
    """(n, h, w, 1) grey level of RGB or grey images."""
    if x.shape[-1] == 1:
        return x
    return tf.reduce_sum(x * tf.constant(_LUMA, x.dtype), axis=-1, keepdims=True)


def _blend(x: tf.Tensor, other: tf.Tensor, factor: tf.Tensor) -> tf.Tensor:
    return tf.clip_by_value(factor * x + (1.0 - factor) * other, 0.0, 1.0)


def _hue(x: tf.Tensor, shift: tf.Tensor) -> tf.Tensor:
    hsv = tf.image.rgb_to_hsv(x)
    hue = tf.math.floormod(hsv[..., :1] + shift, 1.0)
    return tf.clip_by_value(tf.image.hsv_to_rgb(tf.concat([hue, hsv[..., 1:]], axis=-1)), 0.0, 1.0)


def _float64(values: tf.Tensor) -> np.ndarray:
    """Per-image values drawn by :meth:`TFAugmentOps.uniform` as a float64 numpy array (for the warp matrices)."""
    return values.numpy().astype(np.float64)


# --------------------------------------------------------------------------- crops


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


class TFAugmentOps:
    """:class:`harness.perturb.augmentations.AugmentOps` over TensorFlow tensors (N, H, W, C)."""

    framework = "tf"
    interpolations = ("nearest", "bilinear")

    def check_images(self, x: Any, name: str) -> tf.Tensor:
        return check_images(x, name)

    def seeded(self, seed: int) -> tf.random.Generator:
        return tf.random.Generator.from_seed(seed)

    def generator(self, generator: Any, name: str) -> tf.random.Generator:
        if generator is None:
            return tf.random.get_global_generator()
        if not isinstance(generator, tf.random.Generator):
            raise UsageError(f"{name}: TensorFlow augmentations draw from a tf.random.Generator, "
                             f"got {type(generator).__name__}")
        return generator

    def shape(self, x: tf.Tensor) -> tuple[int, int, int, int]:
        n, height, width, channels = (int(v) for v in x.shape)
        return n, height, width, channels

    def choose(self, n: int, p: float, rng: tf.random.Generator) -> list[int]:
        return tf.where(rng.uniform([n]) < p)[:, 0].numpy().tolist()

    def uniform(self, n: int, low: float, high: float, rng: tf.random.Generator) -> tf.Tensor:
        return rng.uniform([n], minval=low, maxval=high) if high > low else tf.fill([n], float(low))

    def randint(self, n: int, high: int, rng: tf.random.Generator) -> list[int]:
        return tf.minimum(tf.cast(rng.uniform([n]) * high, tf.int32), high - 1).numpy().tolist()

    def replace(self, x: tf.Tensor, indices: list[int], fn) -> tf.Tensor:
        if not indices:
            out = x
        elif len(indices) == int(x.shape[0]):
            out = fn(x)
        else:
            chosen = tf.constant(indices, tf.int64)
            out = tf.tensor_scatter_nd_update(x, chosen[:, None], fn(tf.gather(x, chosen)))
        return tf.cast(out, tf.float32)

    def clip01(self, x: tf.Tensor) -> tf.Tensor:
        return tf.clip_by_value(x, 0.0, 1.0)

    def hflip(self, x: tf.Tensor) -> tf.Tensor:
        return tf.reverse(x, axis=[2])

    def vflip(self, x: tf.Tensor) -> tf.Tensor:
        return tf.reverse(x, axis=[1])

    def grayscale(self, x: tf.Tensor) -> tf.Tensor:
        return tf.repeat(_luma(x), 3, axis=-1)

    def crop(self, x, pad, tops, lefts, padding_mode, fill):
        height, width = int(x.shape[1]), int(x.shape[2])
        tops, lefts = tf.constant(tops, tf.int32), tf.constant(lefts, tf.int32)
        rows, row_inside = _source_index(tf.range(height)[None, :] + tops[:, None] - pad, height, padding_mode)
        cols, col_inside = _source_index(tf.range(width)[None, :] + lefts[:, None] - pad, width, padding_mode)
        out = tf.gather(tf.gather(x, rows, axis=1, batch_dims=1), cols, axis=2, batch_dims=1)
        if padding_mode == "constant":
            inside = row_inside[:, :, None, None] & col_inside[:, None, :, None]
            out = tf.where(inside, out, tf.cast(fill, out.dtype))
        return out

    def color_jitter(self, x, names, factors, rng):
        if not names:
            return x
        factor = {name: _per_image(values) for name, values in factors.items()}
        adjust = {
            "brightness": lambda t: _blend(t, tf.zeros_like(t), factor["brightness"]),
            "contrast": lambda t: _blend(t, tf.reduce_mean(_luma(t), axis=[1, 2, 3], keepdims=True),
                                         factor["contrast"]),
            "saturation": lambda t: _blend(t, _luma(t), factor["saturation"]),
            "hue": lambda t: _hue(t, factor["hue"]),
        }
        n = int(x.shape[0])
        order = tf.argsort(rng.uniform([n, len(names)]), axis=1)  # a random order of the adjustments per image
        for position in range(len(names)):
            for k, name in enumerate(names):
                x = tf.where(_per_image(order[:, position] == k), adjust[name](x), x)
        return x

    def rotate(self, x, angles, interpolation, fill):
        angles = np.radians(_float64(angles))
        cos, sin = np.cos(angles), np.sin(angles)
        # counter-clockwise on screen (y points down), as torchvision rotates
        rotation = np.stack([np.stack([cos, sin, 0 * cos], -1), np.stack([-sin, cos, 0 * cos], -1),
                             np.tile([0.0, 0.0, 1.0], (len(angles), 1))], axis=1)
        return _transform(x, _centered(rotation, int(x.shape[1]), int(x.shape[2])), interpolation, fill)

    def affine(self, x, tx, ty, scale, shear_x, shear_y, interpolation, fill):
        n, height, width = (int(v) for v in x.shape[:3])
        tx, ty, scale = _float64(tx), _float64(ty), _float64(scale)
        sx, sy = np.tan(np.radians(_float64(shear_x))), np.tan(np.radians(_float64(shear_y)))
        # torchvision's scale-shear matrix for angle 0: S(s) @ SHy(sy) @ SHx(sx)
        matrix = np.zeros((n, 3, 3))
        matrix[:, 0, 0], matrix[:, 0, 1] = scale, -scale * sx
        matrix[:, 1, 0], matrix[:, 1, 1] = -scale * sy, scale * (sy * sx + 1.0)
        matrix[:, 2, 2] = 1.0
        return _transform(x, _centered(matrix, height, width, shift=np.stack([tx, ty], -1)), interpolation, fill)

    def perspective(self, x, dx, dy, interpolation, fill):
        n, height, width = (int(v) for v in x.shape[:3])
        dx, dy = [_float64(v) for v in dx], [_float64(v) for v in dy]
        w, h = width - 1.0, height - 1.0
        start = np.tile(np.array([[0.0, 0.0], [w, 0.0], [w, h], [0.0, h]]), (n, 1, 1))
        end = np.stack([np.stack([dx[0], dy[0]], -1), np.stack([w - dx[1], dy[1]], -1),
                        np.stack([w - dx[2], h - dy[2]], -1), np.stack([dx[3], h - dy[3]], -1)], axis=1)
        return _transform(x, homography(start, end), interpolation, fill)

    def noise_ops(self, rng: tf.random.Generator) -> TFOps:
        return TFOps(rng)


(Augmentation, HFlip, VFlip, Grayscale, RandomCrop, ColorJitter, Rotation, Affine, Perspective, GaussianNoise,
 ShotNoise, SaltAndPepper, Compose, OneOf) = augmentation_classes(TFAugmentOps(), __name__)

#: registered name -> class
AUGMENTATIONS: dict[str, type[Augmentation]] = Augmentation.table
make = Augmentation.make
