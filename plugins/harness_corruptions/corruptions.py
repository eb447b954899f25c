"""The 15 ImageNet-C corruptions and the 4 held-out ones, batched in numpy.

Each corruption is a :class:`Corruption` (the factory of its registry entry)::

    corrupt = Corruption("fog", severity=3)
    out = corrupt(images, generator=np.random.default_rng(0))  # uint8 (N, H, W, C), C = 1 or 3 -> same

Formulas and severities follow Hendrycks & Dietterich's ``make_tinyimagenet_c.py``
(see :mod:`.tables`); OpenCV, ImageMagick and scikit-image calls are reproduced
with numpy, scipy and Pillow (:mod:`.filters`); frost uses synthesised textures
(:mod:`.frost`). Pixel lengths are for 64-px images and are multiplied by
``size_scale`` (default ``sqrt(min(H, W) / 64)``: 1 for Tiny ImageNet). Colour
corruptions (snow, frost, spatter, saturate) run on grey images as RGB and come
back as their luma. Every random draw comes from the ``numpy.random.Generator``
given to the call (else from one seeded with the factory's ``seed``, fresh for each
call; None draws fresh randomness): ``aug(images, generator=np.random.default_rng(s))``
equals the former ``aug(images, seed=s)``. Framework trainers reach corruptions
through :mod:`harness.augment`, which converts their float batches.
"""

from __future__ import annotations

import io
import math
from numbers import Integral, Real
from types import SimpleNamespace
from typing import Any, Callable

import numpy as np
from PIL import Image

from harness.errors import UsageError
from harness.perturb import noise
from harness.perturb.noise import NumpyOps
from harness.perturb.severity import check_severity

from . import filters
from .frost import frost_layers
from .tables import LENGTHS, SEVERITY

#: size whose pixel lengths the tables give
REFERENCE_SIZE = 64
#: images corrupted per step (bounds memory; the random stream runs on across steps)
CHUNK = 256
#: corruptions defined on colour images: grey ones go through RGB and back
COLOUR = frozenset({"snow", "frost", "spatter", "saturate"})
#: corruptions done by Pillow on uint8 images, which also take and return uint8 arrays
PIXEL_EXACT = frozenset({"pixelate", "jpeg-compression"})


def default_size_scale(height: int, width: int) -> float:
    """``sqrt(min(H, W) / 64)``: 1 at 64 px, 0.71 at 32 px (close to CIFAR-10-C's own blur tables), 0.35 at 8 px."""
    return math.sqrt(min(height, width) / REFERENCE_SIZE)


def _by_blocks(step: Callable[..., np.ndarray], x: np.ndarray, *per_image: np.ndarray) -> np.ndarray:
    """``step(x[b], *(a[b] for a in per_image))`` for each block ``b`` of images (:func:`filters.blocks`),
    gathered in one array. The callers draw their random numbers for the whole batch first, in their
    usual order, so the result is that of one call; the blocks keep the temporaries in cache."""
    out = None
    for block in filters.blocks(x):
        part = step(x[block], *(a[block] for a in per_image))
        if out is None:
            out = np.empty(x.shape[:1] + part.shape[1:], dtype=part.dtype)
        out[block] = part
    return np.empty_like(x) if out is None else out  # None: no images


# --------------------------------------------------------------------------- noise


# Each noise makes one draw shaped like its input; numpy's generators give the same stream drawn in
# consecutive parts, so a block of images at a time gives the numbers, and images, of one call.


def gaussian_noise(x, rng, sigma):
    return _by_blocks(lambda x: noise.gaussian_noise(x, NumpyOps(rng), sigma), x)


def shot_noise(x, rng, lam):
    return _by_blocks(lambda x: noise.shot_noise(x, NumpyOps(rng), lam), x)


def impulse_noise(x, rng, amount):
    return _by_blocks(lambda x: noise.salt_and_pepper(x, NumpyOps(rng), amount), x)


def speckle_noise(x, rng, sigma):
    return _by_blocks(lambda x: noise.speckle_noise(x, NumpyOps(rng), sigma), x)


# --------------------------------------------------------------------------- blur


def gaussian_blur(x, rng, sigma):
    return filters.gaussian(x, sigma)


def defocus_blur(x, rng, radius, alias_blur):
    return filters.filter2d(x, filters.disk(radius, alias_blur))


def glass_blur(x, rng, sigma, max_delta, iterations):
    """Blur, replace each pixel by a random neighbour's (bottom-right to top-left, in order), blur again.

    The original meant to swap the two pixels, but its ``a[p], a[q] = a[q], a[p]`` on numpy
    views of RGB pixels copies ``a[q]`` into ``a[p]`` and leaves ``a[q]``: Tiny-ImageNet-C was
    made that way, so this does the same.
    """
    x = np.floor(np.clip(filters.gaussian(x, sigma), 0, 1) * 255.0)  # the original's np.uint8(...)
    n, h, w = x.shape[:3]
    index = np.arange(n)
    for _ in range(iterations):
        for row in range(h - max_delta, max_delta, -1):
            for col in range(w - max_delta, max_delta, -1):
                dy, dx = rng.integers(-max_delta, max_delta, size=(2, n))
                x[:, row, col] = x[index, row + dy, col + dx]
    return filters.gaussian(x / 255.0, sigma).astype(np.float32)


def motion_blur(x, rng, radius, sigma):
    return filters.motion_blur(x, radius, sigma, rng.uniform(-45, 45, len(x)))


def zoom_blur(x, rng, end, step=0.01):
    """Mean of the image and its centre zooms by ``np.arange(1, end, step)`` (the tables' step is 0.01;
    ImageNet-C's 224-px severities 3-5 use 0.02 and 0.03)."""
    factors = np.arange(1, end, step)
    out = filters.zoom_sum(x, factors, identity=True)
    out /= len(factors) + 1
    return out


# --------------------------------------------------------------------------- weather


def snow(x, rng, loc, scale, zoom, threshold, radius, sigma, blend):
    n, h, w = x.shape[:3]
    layer = rng.normal(loc, scale, (n, h, w, 1)).astype(np.float32)
    angles = rng.uniform(-135, -45, n)
    return _by_blocks(lambda *a: _snow(*a, zoom, threshold, radius, sigma, blend), x, layer, angles)


def _snow(x, layer, angles, zoom, threshold, radius, sigma, blend):
    layer = filters.clipped_zoom(layer, zoom)
    layer[layer < threshold] = 0
    layer = np.floor(np.clip(layer, 0, 1) * 255.0) / 255.0  # the original's uint8 PNG round trip
    layer = filters.motion_blur(layer, radius, sigma, angles)
    out = np.maximum(x, filters.luma(x) * 1.5 + 0.5)
    out *= 1 - blend
    out += blend * x
    out += layer + layer[:, ::-1, ::-1]  # both flake layers in one broadcast over the channels
    return out


def frost(x, rng, image_weight, frost_weight, size_scale):
    n, h, w = x.shape[:3]
    out = frost_layers(n, h, w, size_scale, rng)
    for block in filters.blocks(x):  # in place, a block at a time: no whole-batch temporaries
        out[block] *= frost_weight
        out[block] += image_weight * x[block]
    return out


def fog(x, rng, strength, wibble_decay, size_scale):
    """Plasma fog; the fractal is drawn at the 64-px scale and resized by ``size_scale``."""
    n, h, w = x.shape[:3]
    span_h, span_w = math.ceil(h / size_scale), math.ceil(w / size_scale)
    mapsize = 1 << max(1, math.ceil(math.log2(max(span_h, span_w))))
    field = filters.plasma_fractal(n, mapsize, wibble_decay, rng)[:, :span_h, :span_w]
    if (span_h, span_w) != (h, w):
        field = _resize(field, h, w)
    peak = x.max(axis=(1, 2, 3), keepdims=True)
    return (x + strength * field[..., None].astype(np.float32)) * peak / (peak + strength)


def _resize(field: np.ndarray, h: int, w: int) -> np.ndarray:
    """Bilinear resize of (N, h0, w0) maps to (N, h, w), pixel centres aligned."""
    n, h0, w0 = field.shape
    rows = np.broadcast_to(((np.arange(h) + 0.5) * h0 / h - 0.5)[None, :, None], (n, h, w))
    cols = np.broadcast_to(((np.arange(w) + 0.5) * w0 / w - 0.5)[None, None, :], (n, h, w))
    return filters.bilinear(field[..., None], rows, cols, mode="reflect")[..., 0]


# --------------------------------------------------------------------------- digital


def _channel_max(x):
    """Max over the channel axis, kept (elementwise over the channels: far faster than a reduction over 3)."""
    return np.maximum.reduce([x[..., i : i + 1] for i in range(x.shape[-1])])


def _channel_min(x):
    return np.minimum.reduce([x[..., i : i + 1] for i in range(x.shape[-1])])


def brightness(x, rng, delta):
    """HSV value + ``delta``: every channel scales with the new value (black becomes grey)."""
    value = _channel_max(x)
    shifted = np.clip(value + delta, 0, 1)
    out = x * (shifted / np.maximum(value, np.float32(1e-12)))  # per-pixel maths first, one broadcast
    black = value[..., 0] == 0
    if black.any():
        out[black] = shifted[black]
    return out


def contrast(x, rng, factor):
    n, h, w, c = x.shape
    # channel means as a matrix product: numpy's mean over the middle axes of (N, H, W, 3) is several times slower
    means = np.ones(h * w, dtype=x.dtype) @ x.reshape(n, h * w, c) / (h * w)  # (N, C)
    out = x * factor
    out += ((1 - factor) * means)[:, None, None, :]
    return out


def saturate(x, rng, factor, offset):
    """HSV saturation ``S * factor + offset`` with hue and value kept (grey pixels have hue 0, red)."""
    value = _channel_max(x)
    spread = value - _channel_min(x)
    tiny = np.float32(1e-12)
    new_sat = np.clip(spread / np.maximum(value, tiny) * factor + offset, 0, 1)
    # each channel keeps its place between max and min, (max - x) / spread, fixed by the hue: the new
    # channel is max - new_sat * max * place, one per-pixel scale times (max - x) (per-pixel maths
    # first: broadcasting a (N, H, W, 1) array over three channels is the slow part)
    out = value - x
    out *= new_sat * value / np.maximum(spread, tiny)
    np.subtract(value, out, out=out)
    grey = spread[..., 0] == 0
    if offset and grey.any():  # no hue: red, so green and blue fall to max * (1 - new_sat)
        out[grey, 1:] = (value * (1 - new_sat))[grey]
    return out


def elastic_transform(x, rng, alpha, sigma, affine):
    """Random affine (three jittered points, reflect-101 border), then a smooth random displacement field.

    A stage that is the identity (no jitter, or no displacement) draws its random numbers but skips
    its resampling: the result is the same and the random stream runs on as always.
    """
    n, h, w = x.shape[:3]
    jitter = rng.uniform(-affine, affine, size=(n, 3, 2))
    noise_x, noise_y = rng.uniform(-1, 1, size=(n, h, w)), rng.uniform(-1, 1, size=(n, h, w))
    return _by_blocks(lambda *a: _elastic(*a, alpha, sigma, affine), x, jitter, noise_x, noise_y)


def _elastic(x, jitter, noise_x, noise_y, alpha, sigma, affine):
    n, h, w = x.shape[:3]
    yy, xx = np.meshgrid(np.arange(h, dtype=np.float64), np.arange(w, dtype=np.float64), indexing="ij")
    if affine:
        centre = np.array([w // 2, h // 2], dtype=np.float64)
        half = min(h, w) // 3
        src = np.array([centre + half, [centre[0] + half, centre[1] - half], centre - half])
        dst = src[None] + jitter
        ones = np.ones((3, 1))
        # dst = [src 1] @ A  ->  A maps source (x, y) to destination; sample the source at A^-1(dst grid)
        forward = np.linalg.solve(np.broadcast_to(np.hstack([src, ones]), (n, 3, 3)), dst)  # (n, 3, 2)
        matrix = np.concatenate([forward.transpose(0, 2, 1), np.broadcast_to([[[0, 0, 1]]], (n, 1, 3))], axis=1)
        inverse = np.linalg.inv(matrix)
        cols = inverse[:, 0, 0, None, None] * xx + inverse[:, 0, 1, None, None] * yy + inverse[:, 0, 2, None, None]
        rows = inverse[:, 1, 0, None, None] * xx + inverse[:, 1, 1, None, None] * yy + inverse[:, 1, 2, None, None]
        x = filters.bilinear(x, rows, cols, mode="mirror")
    if not alpha:
        return x
    dx = filters.gaussian(noise_x, sigma, mode="reflect", truncate=3) * alpha
    dy = filters.gaussian(noise_y, sigma, mode="reflect", truncate=3) * alpha
    return filters.bilinear(x, yy[None] + dy, xx[None] + dx, mode="reflect")


def _pil_each(x: np.ndarray, step: Callable[[Image.Image], Image.Image]) -> np.ndarray:
    """Apply a Pillow step to each image (uint8, 'L' or 'RGB'); uint8 in, uint8 out (floats in, floats out)."""
    images = x if x.dtype == np.uint8 else np.rint(x * 255.0).astype(np.uint8)
    grey = images.shape[-1] == 1
    out = np.empty_like(images)
    for i, image in enumerate(images):
        result = np.asarray(step(Image.fromarray(image[..., 0] if grey else image, "L" if grey else "RGB")))
        out[i] = result[..., None] if grey else result
    return out if x.dtype == np.uint8 else out.astype(np.float32) / 255.0


def pixelate(x, rng, factor):
    h, w = x.shape[1:3]
    small = (max(1, int(w * factor)), max(1, int(h * factor)))
    box = Image.Resampling.BOX
    return _pil_each(x, lambda image: image.resize(small, box).resize((w, h), box))


def jpeg_compression(x, rng, quality):
    def step(image: Image.Image) -> Image.Image:
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=int(quality))
        return Image.open(buffer).convert(image.mode)

    return _pil_each(x, step)


def spatter(x, rng, loc, scale, sigma, threshold, intensity, mud):
    """Water drops (severities 1-3: pale turquoise liquid with edge shading) or mud (4-5: brown blots)."""
    n, h, w = x.shape[:3]
    drops = rng.normal(loc, scale, size=(n, h, w))
    return _by_blocks(lambda *a: _spatter(*a, sigma, threshold, intensity, mud), x, drops)


def _spatter(x, drops, sigma, threshold, intensity, mud):
    liquid = filters.gaussian(drops, sigma)
    liquid[liquid < threshold] = 0
    if not mud:
        layer = (np.clip(liquid, 0, 1) * 255).astype(np.uint8)
        # float32, like OpenCV's distanceTransform and blur
        dist = filters.truncated_distance(filters.canny(layer, 50, 150), 20)
        dist = filters.ndimage.uniform_filter(dist, size=(1, 3, 3), mode="mirror").astype(np.uint8)
        dist = filters.equalize_hist(dist).astype(np.float32)
        # cv2.filter2D with [[-2, -1, 0], [-1, 1, 1], [0, 1, 2]] (reflect-101) as shifted slices, faster than
        # ndimage.correlate on small images and exact on these integers
        padded = np.pad(dist, ((0, 0), (1, 1), (1, 1)), mode="reflect")
        h, w = dist.shape[1:]
        taps = {(-1, -1): -2, (-1, 0): -1, (0, -1): -1, (0, 0): 1, (0, 1): 1, (1, 0): 1, (1, 1): 2}
        dist = sum(weight * padded[:, 1 + dr : 1 + dr + h, 1 + dc : 1 + dc + w] for (dr, dc), weight in taps.items())
        dist = np.clip(np.rint(dist), 0, 255)
        dist = filters.ndimage.uniform_filter(dist, size=(1, 3, 3), mode="mirror")
        m = liquid * dist
        m = m / np.maximum(m.max(axis=(1, 2), keepdims=True), 1e-12) * intensity
        colour = np.array([175, 238, 238], dtype=np.float32) / 255.0
        out = m[..., None].astype(np.float32) * colour
        out += x
        return out
    m = filters.gaussian((liquid > threshold).astype(np.float32), intensity)
    m[m < 0.8] = 0
    colour = np.array([63, 42, 20], dtype=np.float32) / 255.0
    return x * (1 - m[..., None]) + colour * m[..., None]


#: corruption name -> function(x float (N, H, W, C) in [0, 1], rng, **parameters) -> float
FUNCTIONS: dict[str, Callable[..., np.ndarray]] = {
    "gaussian-noise": gaussian_noise,
    "shot-noise": shot_noise,
    "impulse-noise": impulse_noise,
    "defocus-blur": defocus_blur,
    "glass-blur": glass_blur,
    "motion-blur": motion_blur,
    "zoom-blur": zoom_blur,
    "snow": snow,
    "frost": frost,
    "fog": fog,
    "brightness": brightness,
    "contrast": contrast,
    "elastic-transform": elastic_transform,
    "pixelate": pixelate,
    "jpeg-compression": jpeg_compression,
    "speckle-noise": speckle_noise,
    "gaussian-blur": gaussian_blur,
    "spatter": spatter,
    "saturate": saturate,
}
assert set(FUNCTIONS) == set(SEVERITY), "corruption functions and tables disagree"


def check_images(images: Any, name: str = "corruptions") -> np.ndarray:
    """``images`` as a uint8 (N, H, W, C) numpy array with C = 1 or 3; UsageError naming ``name`` otherwise."""
    if not isinstance(images, np.ndarray):
        raise UsageError(f"corruption '{name}' takes a numpy array of uint8 images shaped (N, H, W, C), "
                         f"got {type(images).__name__}", hint="convert framework batches with harness.augment")
    if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise UsageError(f"corruption '{name}' takes uint8 images shaped (N, H, W, C) with C = 1 or 3, "
                         f"got {images.dtype} {images.shape}")
    return images


class Corruption:
    """Corruption ``name`` at ``severity``: ``corrupt(images, *, generator=None) -> images`` (uint8 NHWC in and out)."""

    #: framework-neutral: uint8 numpy (N, H, W, C) with a numpy.random.Generator (see harness.augment)
    layout = "any"

    def __init__(self, name: str, severity: int = 3, seed: int | None = None, size_scale: float | None = None):
        if name not in FUNCTIONS:
            raise UsageError(f"Unknown corruption '{name}'. Available: {', '.join(FUNCTIONS)}")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, Integral)):
            raise UsageError(f"seed must be an integer or None, got {seed!r}")
        if size_scale is not None and (isinstance(size_scale, bool) or not isinstance(size_scale, Real)
                                       or not 0 < float(size_scale) < math.inf):
            raise UsageError(f"size_scale must be a number > 0 or None, got {size_scale!r}")
        self.name = name
        self.severity = check_severity(severity)
        self.seed = seed
        self.size_scale = None if size_scale is None else float(size_scale)
        names, rows = SEVERITY[name]
        #: the severity's row of the 64-px table
        self.params: dict[str, Any] = dict(zip(names, rows[self.severity - 1]))

    def parameters(self, height: int, width: int) -> dict[str, Any]:
        """The table row with pixel lengths rescaled for (height, width) images."""
        scale = self.size_scale if self.size_scale is not None else default_size_scale(height, width)
        params = dict(self.params)
        lengths = LENGTHS.get(self.name, ())
        if self.name == "spatter" and params["mud"]:
            lengths = (*lengths, "intensity")  # in mud mode it is a blur sigma
        for key in lengths:
            params[key] = max(1, round(params[key] * scale)) if key == "max_delta" else params[key] * scale
        if self.name == "elastic-transform":
            side = REFERENCE_SIZE * scale
            params = {key: value * side for key, value in params.items()}
        if self.name in ("frost", "fog"):
            params["size_scale"] = scale
        return params

    def __call__(self, images: Any, *, generator: np.random.Generator | None = None) -> np.ndarray:
        if generator is not None and not isinstance(generator, np.random.Generator):
            raise UsageError(f"corruption '{self.name}' draws from a numpy.random.Generator, "
                             f"got {type(generator).__name__}", hint="convert framework batches with harness.augment")
        images = check_images(images, self.name)
        rng = generator if generator is not None else np.random.default_rng(self.seed)
        if len(images) == 0:
            return images.copy()
        params = self.parameters(*images.shape[1:3])
        out = np.empty_like(images)
        for start in range(0, len(images), CHUNK):
            out[start : start + CHUNK] = self._apply(images[start : start + CHUNK], rng, params)
        return out

    def _apply(self, images: np.ndarray, rng: np.random.Generator, params: dict[str, Any]) -> np.ndarray:
        if self.name in PIXEL_EXACT:  # Pillow works on uint8: no round trip through floats
            return FUNCTIONS[self.name](images, rng, **params)
        x = np.divide(images, np.float32(255.0), dtype=np.float32)
        grey = images.shape[-1] == 1 and self.name in COLOUR
        if grey:
            x = np.repeat(x, 3, axis=-1)
        out = FUNCTIONS[self.name](x, rng, **params)  # a new array (or x itself), never the caller's images
        np.clip(out, 0.0, 1.0, out=out)  # in place: each pass over the batch counts at this size
        if grey:
            out = np.clip(filters.luma(out), 0.0, 1.0)
        out *= 255.0
        return np.rint(out, out=out).astype(np.uint8)

    def __repr__(self) -> str:
        return f"Corruption({self.name!r}, severity={self.severity}, seed={self.seed}, size_scale={self.size_scale})"


def corrupt(name: str, images: Any, severity: int = 3, seed: int | None = 0, size_scale: float | None = None
            ) -> np.ndarray:
    """Corruption ``name`` at ``severity`` applied to uint8 NHWC ``images`` (seeded, 0 by default)."""
    return Corruption(name, severity, seed, size_scale)(np.asarray(images))


def _factory(name: str) -> Callable[..., Corruption]:
    def create(severity: int = 3, seed: int | None = None, size_scale: float | None = None) -> Corruption:
        return Corruption(name, severity, seed, size_scale)

    create.__name__ = create.__qualname__ = name.replace("-", "_")
    create.__doc__ = f"Corruption {name!r}: ``create(severity, seed, size_scale)(images, *, generator=None)``."
    return create


#: the registry's lazy factories: ``harness_corruptions.corruptions:FACTORIES.gaussian_noise`` and so on
FACTORIES = SimpleNamespace(**{name.replace("-", "_"): _factory(name) for name in FUNCTIONS})
