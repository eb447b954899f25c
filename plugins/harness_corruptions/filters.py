"""Batched image operations the corruptions are built from, in numpy and scipy.

Images are float arrays (N, H, W) or (N, H, W, C); every operation works on the
whole batch and treats each image on its own. Where the original ImageNet-C code
called OpenCV, ImageMagick or scikit-image, the function says which call it
reproduces (border modes included).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage, signal

#: ITU-R 601 luma weights (OpenCV's RGB2GRAY, Pillow's "L")
LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def _spatial(x: np.ndarray, value: float) -> tuple[float, ...]:
    """A per-axis parameter acting on H and W only."""
    return (0.0, value, value) + (0.0,) * (x.ndim - 3)


def gaussian(x: np.ndarray, sigma: float, mode: str = "nearest", truncate: float = 4.0) -> np.ndarray:
    """Gaussian blur over H and W (skimage.filters.gaussian's defaults: nearest border, truncate 4)."""
    if sigma <= 0:
        return x
    return ndimage.gaussian_filter(x, _spatial(x, sigma), mode=mode, truncate=truncate)


def _trim(kernel: np.ndarray) -> np.ndarray:
    """Drop all-zero outer rings of a centred kernel (the result is unchanged)."""
    while kernel.shape[0] > 1 and not kernel[[0, -1]].any() and not kernel[:, [0, -1]].any():
        kernel = kernel[1:-1, 1:-1]
    return kernel


def filter2d(x: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Correlation with a centred 2-D kernel, border reflect-101 (cv2.filter2D), via FFT."""
    kernel = _trim(np.asarray(kernel, dtype=np.float64))
    kh, kw = kernel.shape
    pad = [(0, 0), (kh // 2, kh - 1 - kh // 2), (kw // 2, kw - 1 - kw // 2)] + [(0, 0)] * (x.ndim - 3)
    padded = np.pad(x, pad, mode="reflect")
    flipped = kernel[::-1, ::-1].reshape((1, kh, kw) + (1,) * (x.ndim - 3))
    return signal.fftconvolve(padded, flipped, mode="valid", axes=(1, 2)).astype(x.dtype, copy=False)


def _gaussian_taps(size: int, sigma: float) -> np.ndarray:
    """cv2.getGaussianKernel(size, sigma)."""
    taps = np.arange(size) - (size - 1) / 2
    weights = np.exp(-(taps**2) / (2 * max(sigma, 1e-12) ** 2))
    return weights / weights.sum()


def disk(radius: float, alias_blur: float) -> np.ndarray:
    """ImageNet-C's anti-aliased disk kernel (defocus blur): a normalised disk, then a small Gaussian."""
    half = 8 if radius <= 8 else int(np.ceil(radius))
    size = 3 if radius <= 8 else 5
    grid = np.arange(-half, half + 1)
    xx, yy = np.meshgrid(grid, grid)
    kernel = (xx**2 + yy**2 <= radius**2).astype(np.float64)
    kernel /= kernel.sum()
    taps = _gaussian_taps(size, alias_blur)
    kernel = ndimage.correlate1d(kernel, taps, axis=0, mode="mirror")
    return ndimage.correlate1d(kernel, taps, axis=1, mode="mirror")


def motion_blur(x: np.ndarray, radius: float, sigma: float, angles: np.ndarray) -> np.ndarray:
    """ImageMagick's MotionBlurImage: a one-sided Gaussian trail at ``angles`` (degrees, one per image).

    The kernel has ``2 * ceil(radius) + 1`` taps ``exp(-i^2 / 2 sigma^2)``; tap ``i`` reads
    the pixel ``i`` steps along the angle (rounded), edges repeating.
    """
    width = 2 * int(np.ceil(radius)) + 1
    taps = np.arange(width)
    weights = np.exp(-(taps**2) / (2 * sigma**2)) if sigma > 0 else (taps == 0).astype(np.float64)
    weights /= weights.sum()
    radians = np.deg2rad(np.asarray(angles, dtype=np.float64))[:, None]
    dy = np.ceil(taps * np.sin(radians) - 0.5).astype(np.int64)
    dx = np.ceil(taps * np.cos(radians) - 0.5).astype(np.int64)
    n, h, w = x.shape[:3]
    index = np.arange(n)[:, None, None]
    out = np.zeros_like(x)
    for i in range(width):
        rows = np.clip(np.arange(h)[None, :] + dy[:, i, None], 0, h - 1)
        cols = np.clip(np.arange(w)[None, :] + dx[:, i, None], 0, w - 1)
        out += (weights[i] * x[index, rows[:, :, None], cols[:, None, :]]).astype(x.dtype, copy=False)
    return out


def _linear_weights(size_in: int, size_out: int) -> np.ndarray:
    """(size_out, size_in) linear-interpolation matrix of scipy.ndimage.zoom (order 1, corners aligned)."""
    weights = np.zeros((size_out, size_in))
    if size_in == 1 or size_out == 1:
        weights[:, 0] = 1.0
        return weights
    coords = np.arange(size_out) * (size_in - 1) / (size_out - 1)
    low = np.minimum(np.floor(coords).astype(np.int64), size_in - 2)
    frac = coords - low
    rows = np.arange(size_out)
    weights[rows, low] = 1 - frac
    weights[rows, low + 1] += frac
    return weights


def clipped_zoom(x: np.ndarray, factor: float) -> np.ndarray:
    """Zoom into the centre by ``factor`` (bilinear, as scipy.ndimage.zoom) and crop back to size."""
    h, w = x.shape[1:3]
    ch, cw = int(np.ceil(h / factor)), int(np.ceil(w / factor))
    top, left = (h - ch) // 2, (w - cw) // 2
    crop = x[:, top : top + ch, left : left + cw]
    out_h, out_w = int(round(ch * factor)), int(round(cw * factor))
    trim_top, trim_left = (out_h - h) // 2, (out_w - w) // 2
    rows = _linear_weights(ch, out_h)[trim_top : trim_top + h].astype(x.dtype)
    cols = _linear_weights(cw, out_w)[trim_left : trim_left + w].astype(x.dtype)
    zoomed = np.moveaxis(np.tensordot(rows, crop, axes=(1, 1)), 0, 1)  # (n, h, cw, ...)
    return np.moveaxis(np.tensordot(cols, zoomed, axes=(1, 2)), 0, 2)


def plasma_fractal(n: int, mapsize: int, wibble_decay: float, rng: np.random.Generator) -> np.ndarray:
    """``n`` diamond-square height maps in [0, 1], shape (n, mapsize, mapsize) (ImageNet-C's fog).

    ``mapsize`` must be a power of two; a larger ``wibble_decay`` makes smoother maps.
    """
    if mapsize & (mapsize - 1):
        raise ValueError(f"mapsize must be a power of two, got {mapsize}")
    maps = np.zeros((n, mapsize, mapsize))
    step, wibble = mapsize, 100.0

    def wibbled_mean(array: np.ndarray) -> np.ndarray:
        return array / 4 + wibble * rng.uniform(-wibble, wibble, array.shape)

    while step >= 2:
        half = step // 2
        corners = maps[:, 0:mapsize:step, 0:mapsize:step]
        squares = corners + np.roll(corners, -1, axis=1)
        squares += np.roll(squares, -1, axis=2)
        maps[:, half:mapsize:step, half:mapsize:step] = wibbled_mean(squares)
        centres = maps[:, half:mapsize:step, half:mapsize:step]
        corners = maps[:, 0:mapsize:step, 0:mapsize:step]
        left = centres + np.roll(centres, 1, axis=1) + corners + np.roll(corners, -1, axis=2)
        maps[:, 0:mapsize:step, half:mapsize:step] = wibbled_mean(left)
        top = centres + np.roll(centres, 1, axis=2) + corners + np.roll(corners, -1, axis=1)
        maps[:, half:mapsize:step, 0:mapsize:step] = wibbled_mean(top)
        step //= 2
        wibble /= wibble_decay
    maps -= maps.min(axis=(1, 2), keepdims=True)
    return maps / np.maximum(maps.max(axis=(1, 2), keepdims=True), 1e-12)


def _fold(index: np.ndarray, size: int, mode: str) -> np.ndarray:
    """Indices outside [0, size) folded back: ``reflect`` (scipy, d c b a | a b c d) or
    ``mirror`` (OpenCV's reflect-101, d c b | a b c d)."""
    if size == 1:
        return np.zeros_like(index)
    if mode == "reflect":
        index = np.mod(index, 2 * size)
        return np.where(index >= size, 2 * size - 1 - index, index)
    period = 2 * (size - 1)
    index = np.mod(index, period)
    return np.where(index >= size, period - index, index)


def bilinear(x: np.ndarray, rows: np.ndarray, cols: np.ndarray, mode: str) -> np.ndarray:
    """Bilinear samples of (N, H, W, C) images at per-image float coordinates ``rows``, ``cols`` (N, H, W)."""
    h, w = x.shape[1:3]
    r0, c0 = np.floor(rows), np.floor(cols)
    fr, fc = (rows - r0)[..., None].astype(x.dtype), (cols - c0)[..., None].astype(x.dtype)
    r0, c0 = r0.astype(np.int64), c0.astype(np.int64)
    index = np.arange(len(x))[:, None, None]
    out = np.zeros(rows.shape + x.shape[3:], dtype=x.dtype)
    for dr, wr in ((0, 1 - fr), (1, fr)):
        rr = _fold(r0 + dr, h, mode)
        for dc, wc in ((0, 1 - fc), (1, fc)):
            out += wr * wc * x[index, rr, _fold(c0 + dc, w, mode)]
    return out


def luma(x: np.ndarray) -> np.ndarray:
    """Grey (N, H, W, 1) from RGB (N, H, W, 3)."""
    return (x @ LUMA.astype(x.dtype))[..., None]


def canny(image: np.ndarray, low: float, high: float) -> np.ndarray:
    """Boolean edges of uint8 (N, H, W) images: cv2.Canny with 3x3 Sobel and L1 gradient magnitude."""
    f = image.astype(np.float64)
    derivative, smooth = np.array([-1.0, 0.0, 1.0]), np.array([1.0, 2.0, 1.0])
    gx = ndimage.correlate1d(ndimage.correlate1d(f, derivative, axis=2, mode="nearest"), smooth, axis=1,
                             mode="nearest")
    gy = ndimage.correlate1d(ndimage.correlate1d(f, derivative, axis=1, mode="nearest"), smooth, axis=2,
                             mode="nearest")
    magnitude = np.abs(gx) + np.abs(gy)
    padded = np.pad(magnitude, ((0, 0), (1, 1), (1, 1)))
    h, w = magnitude.shape[1:]

    def neighbour(dr: int, dc: int) -> np.ndarray:
        return padded[:, 1 + dr : 1 + dr + h, 1 + dc : 1 + dc + w]

    ax, ay = np.abs(gx), np.abs(gy)
    tan22, tan67 = np.tan(np.deg2rad(22.5)), np.tan(np.deg2rad(67.5))
    horizontal = ay < tan22 * ax
    vertical = ay > tan67 * ax
    diagonal = ~horizontal & ~vertical
    same_sign = (gx * gy) >= 0
    peak = horizontal & (magnitude > neighbour(0, -1)) & (magnitude >= neighbour(0, 1))
    peak |= vertical & (magnitude > neighbour(-1, 0)) & (magnitude >= neighbour(1, 0))
    # OpenCV is strict on both sides of a diagonal
    peak |= diagonal & same_sign & (magnitude > neighbour(-1, -1)) & (magnitude > neighbour(1, 1))
    peak |= diagonal & ~same_sign & (magnitude > neighbour(-1, 1)) & (magnitude > neighbour(1, -1))
    weak = peak & (magnitude > low)
    structure = np.zeros((3, 3, 3), dtype=bool)
    structure[1] = True  # 8-connected within an image, never across images
    labels, count = ndimage.label(weak, structure=structure)
    strong = np.zeros(count + 1, dtype=bool)
    strong[np.unique(labels[weak & (magnitude > high)])] = True
    strong[0] = False
    return strong[labels]


def equalize_hist(image: np.ndarray) -> np.ndarray:
    """cv2.equalizeHist of each uint8 (H, W) image in a (N, H, W) batch."""
    n = len(image)
    flat = image.reshape(n, -1).astype(np.int64)
    hist = np.stack([np.bincount(row, minlength=256) for row in flat])
    first = np.argmax(hist > 0, axis=1)
    base = hist[np.arange(n), first]
    total = flat.shape[1]
    cdf = np.cumsum(hist, axis=1) - base[:, None]
    scale = 255.0 / np.maximum(total - base, 1)
    lut = np.clip(np.rint(cdf * scale[:, None]), 0, 255)
    lut = np.where(np.arange(256)[None, :] <= first[:, None], 0, lut)
    lut = np.where((base == total)[:, None], first[:, None], lut)
    return np.take_along_axis(lut, flat, axis=1).reshape(image.shape).astype(np.uint8)
