"""Batched image operations the corruptions are built from, in numpy and scipy.

Images are float arrays (N, H, W) or (N, H, W, C); every operation works on the
whole batch and treats each image on its own. Where the original ImageNet-C code
called OpenCV, ImageMagick or scikit-image, the function says which call it
reproduces (border modes included).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy import fft as sfft
from scipy import ndimage, sparse

#: values (images x pixels x channels) per block in the hand-vectorised filters: 32 64x64 RGB images,
#: 1.5 MB of float32, stay in cache and reuse freed memory, where whole-batch temporaries (12 MB at 256
#: such images) go to main memory and, freshly allocated, cost page faults that outweigh the arithmetic
BLOCK_VALUES = 32 * 64 * 64 * 3


def blocks(x: np.ndarray) -> list[slice]:
    """Slices of the image axis of ``x``, about :data:`BLOCK_VALUES` values each (one image at least)."""
    step = max(1, BLOCK_VALUES // max(1, x[0].size)) if len(x) else 1
    return [slice(start, start + step) for start in range(0, len(x), step)]


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


def correlate_fft(x: np.ndarray, kernel: np.ndarray, origin: tuple[int, int], mode: str) -> np.ndarray:
    """``out[r, c] = sum_ij kernel[i, j] * x[r + i - origin[0], c + j - origin[1]]`` over H and W, by FFT.

    ``kernel`` is (kh, kw), shared by the batch, or (N, kh, kw), one per image; the border
    is ``mode`` (``np.pad``'s: "reflect" is OpenCV's reflect-101, "edge" repeats the edge).
    Each block of images (:func:`blocks`) is padded once and transformed at a fast FFT length:
    circular correlation over the padded size never wraps into the rows and columns kept.
    """
    kernel = np.asarray(kernel, dtype=x.dtype)
    kh, kw = kernel.shape[-2:]
    h, w = x.shape[1:3]
    size = (sfft.next_fast_len(h + kh - 1, real=True), sfft.next_fast_len(w + kw - 1, real=True))
    # padded straight to the FFT size: rows and columns past h + kh - 1 are never read, whatever they hold
    pad = [(0, 0)] * (x.ndim - 2) + [(origin[0], size[0] - h - origin[0]), (origin[1], size[1] - w - origin[1])]
    shared = np.conj(sfft.rfft2(kernel, s=size)) if kernel.ndim == 2 else None
    out = np.empty_like(x)
    for block in blocks(x):
        planes = np.moveaxis(x[block], (1, 2), (-2, -1))  # (n, [C,] H, W)
        spectrum = sfft.rfft2(np.pad(planes, pad, mode=mode))
        if shared is None:  # one kernel per image: broadcast over the channel axis
            kernel_spectrum = np.conj(sfft.rfft2(kernel[block], s=size))
            spectrum *= kernel_spectrum.reshape((len(spectrum),) + (1,) * (x.ndim - 3) + kernel_spectrum.shape[1:])
        else:
            spectrum *= shared
        result = sfft.irfft2(spectrum, s=size, overwrite_x=True)[..., :h, :w]
        out[block] = np.moveaxis(result, (-2, -1), (1, 2))
    return out


def filter2d(x: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Correlation with a centred 2-D kernel, border reflect-101 (cv2.filter2D), via FFT."""
    kernel = _trim(np.asarray(kernel, dtype=np.float64))
    kh, kw = kernel.shape
    return correlate_fft(x, kernel, (kh // 2, kw // 2), "reflect")


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
    n = len(x)
    # one kernel per image over the box every image's taps fall in (tap (dy, dx) at [dy - top, dx - left])
    top, left = int(dy.min()), int(dx.min())
    kernels = np.zeros((n, int(dy.max()) - top + 1, int(dx.max()) - left + 1))
    np.add.at(kernels, (np.arange(n)[:, None], dy - top, dx - left), np.broadcast_to(weights, dy.shape))
    return correlate_fft(x, kernels, (-top, -left), "edge")


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


def _zoom_matrix(size: int, factor: float) -> np.ndarray:
    """(size, size) matrix of :func:`clipped_zoom` along one axis: centre crop, linear zoom, centre trim."""
    crop = int(np.ceil(size / factor))
    top = (size - crop) // 2
    out = int(round(crop * factor))
    trim = (out - size) // 2
    matrix = np.zeros((size, size))
    matrix[:, top : top + crop] = _linear_weights(crop, out)[trim : trim + size]
    return matrix


@lru_cache(maxsize=32)
def _zoom_operator(height: int, width: int, factors: tuple[float, ...], identity: bool, dtype: str):
    """Sparse (H*W, H*W) matrix of ``sum(clipped_zoom(., f) for f in factors)`` (plus the identity) on raveled planes.

    Each zoom is ``kron(rows_f, cols_f)``, with two non-zero weights a row in each factor, so the sum has
    a few dozen non-zeros a pixel at most, where the dense products cost ``H + W`` multiplications each.
    """
    total = sparse.identity(height * width, format="csr") if identity else sparse.csr_matrix((height * width,) * 2)
    for factor in factors:
        rows = sparse.csr_matrix(_zoom_matrix(height, factor))
        cols = sparse.csr_matrix(_zoom_matrix(width, factor))
        total = total + sparse.kron(rows, cols, format="csr")
    return total.astype(dtype).tocsr()


def zoom_sum(x: np.ndarray, factors, identity: bool = False) -> np.ndarray:
    """``sum(clipped_zoom(x, f) for f in factors)``, plus ``x`` itself with ``identity``, in one sparse product.

    A block of images (:func:`blocks`) is laid out as (H*W, n*C), so one sparse-times-dense product
    covers its planes.
    """
    h, w = x.shape[1:3]
    operator = _zoom_operator(h, w, tuple(float(f) for f in factors), identity, x.dtype.str)
    out = np.empty_like(x)
    for block in blocks(x):
        part = x[block]
        n = len(part)
        # pixel-major (H*W, n, C): the channels of a pixel stay together, which keeps both copies cheap
        planes = np.ascontiguousarray(part.reshape(n, h * w, -1).swapaxes(0, 1)).reshape(h * w, -1)
        out[block].reshape(n, h * w, -1)[...] = (operator @ planes).reshape(h * w, n, -1).swapaxes(0, 1)
    return out


def clipped_zoom(x: np.ndarray, factor: float) -> np.ndarray:
    """Zoom into the centre by ``factor`` (bilinear, as scipy.ndimage.zoom) and crop back to size."""
    return zoom_sum(x, [factor])


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


#: np.pad's name for each border mode: ``reflect`` (scipy's, d c b a | a b c d) and ``mirror``
#: (OpenCV's reflect-101, d c b | a b c d); np.pad repeats the folding for borders wider than the image
_PAD_MODES = {"reflect": "symmetric", "mirror": "reflect"}


def bilinear(x: np.ndarray, rows: np.ndarray, cols: np.ndarray, mode: str) -> np.ndarray:
    """Bilinear samples of (N, H, W, C) images at per-image float coordinates ``rows``, ``cols`` (N, h, w).

    Hand-vectorised (scipy's map_coordinates would need a coordinate per channel and 8 corners in
    3-D): the images are padded (border ``mode``) to cover every coordinate and laid out a channel
    at a time, so each sample's four neighbours are fixed flat offsets from its top-left one, shared
    by the channels; then four gathers and three interpolations per channel, a block of images at a
    time (:func:`blocks`). The result is a (N, h, w, C) view of (C, N, h, w) memory.
    """
    out = np.empty((x.shape[-1],) + rows.shape, dtype=x.dtype)
    for block in blocks(x):
        _bilinear_block(x[block], rows[block], cols[block], mode, out[:, block])
    return np.moveaxis(out, 0, -1)


def _bilinear_block(x: np.ndarray, rows: np.ndarray, cols: np.ndarray, mode: str, out: np.ndarray) -> None:
    n, h, w = x.shape[:3]
    r0, c0 = np.floor(rows), np.floor(cols)
    fr, fc = (rows - r0).astype(x.dtype), (cols - c0).astype(x.dtype)
    top, left = min(int(r0.min()), 0), min(int(c0.min()), 0)
    bottom, right = max(int(r0.max()) + 2 - h, 0), max(int(c0.max()) + 2 - w, 0)
    planes = np.moveaxis(x, -1, 0)  # (C, N, H, W)
    planes = np.pad(planes, ((0, 0), (0, 0), (-top, bottom), (-left, right)), mode=_PAD_MODES[mode])
    hp, wp = planes.shape[2:]
    index_type = np.int32 if planes[0].size < 2**31 else np.int64
    base = (np.arange(n) * (hp * wp) - top * wp - left).reshape((n,) + (1,) * (rows.ndim - 1))
    top_left = (r0 * wp + c0 + base).astype(index_type)  # exact: whole numbers well inside float64's range
    corners = (top_left, top_left + 1, top_left + wp, top_left + (wp + 1))
    other, lower = np.empty_like(fr), np.empty_like(fr)
    for pixels, upper in zip(planes, out):
        pixels = pixels.reshape(-1)
        pixels.take(corners[0], out=upper)
        pixels.take(corners[1], out=other)
        other -= upper
        other *= fc
        upper += other
        pixels.take(corners[2], out=lower)
        pixels.take(corners[3], out=other)
        other -= lower
        other *= fc
        lower += other
        lower -= upper
        lower *= fr
        upper += lower


def luma(x: np.ndarray) -> np.ndarray:
    """Grey (N, H, W, 1) from RGB (N, H, W, 3)."""
    return (x @ LUMA.astype(x.dtype))[..., None]


def canny(image: np.ndarray, low: float, high: float) -> np.ndarray:
    """Boolean edges of uint8 (N, H, W) images: cv2.Canny with 3x3 Sobel and L1 gradient magnitude."""
    # Sobel by slices of the edge-padded batch (what ndimage.correlate1d with mode "nearest" gives, a few
    # times faster on small images); exact: sums of uint8 values are small integers
    f = np.pad(image.astype(np.float32), ((0, 0), (1, 1), (1, 1)), mode="edge")
    across = f[:, :, 2:] - f[:, :, :-2]  # (N, H + 2, W)
    gx = across[:, :-2] + 2 * across[:, 1:-1] + across[:, 2:]
    smooth = f[:, :, :-2] + 2 * f[:, :, 1:-1] + f[:, :, 2:]
    gy = smooth[:, 2:] - smooth[:, :-2]
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
    strong[labels[weak & (magnitude > high)]] = True
    strong[0] = False
    return strong[labels]


def truncated_distance(edges: np.ndarray, limit: int) -> np.ndarray:
    """``min(distance to the nearest True pixel, limit)`` in each boolean (N, H, W) image, Euclidean and exact.

    What ``np.minimum(scipy.ndimage.distance_transform_edt(~edges), limit)`` gives image by image (an image
    without edges gets ``limit``), in whole-batch numpy: the distance along each row to the nearest
    edge (running max/min of edge columns), then the minimum over the rows within ``limit`` of
    ``k^2 + row distance^2`` (Felzenszwalb and Huttenlocher's two passes, cut off at ``limit``).
    """
    n, h, w = edges.shape
    columns = np.arange(w, dtype=np.int32)
    far = np.int32(w + limit)
    left = np.maximum.accumulate(np.where(edges, columns, -far), axis=2)
    right = np.minimum.accumulate(np.where(edges, columns, far)[:, :, ::-1], axis=2)[:, :, ::-1]
    small = np.int16 if limit <= 128 else np.int32  # sums below 2 limit^2
    along = np.minimum(np.minimum(columns - left, right - columns), limit).astype(small)
    squared = along * along
    best, shifted = squared.copy(), np.empty_like(squared)
    for k in range(1, min(limit, h)):
        np.add(squared, k * k, out=shifted)  # row r + k or r - k seen from row r
        np.minimum(best[:, k:], shifted[:, :-k], out=best[:, k:])
        np.minimum(best[:, :-k], shifted[:, k:], out=best[:, :-k])
    return np.minimum(np.sqrt(best, dtype=np.float32), np.float32(limit))


def equalize_hist(image: np.ndarray) -> np.ndarray:
    """cv2.equalizeHist of each uint8 (H, W) image in a (N, H, W) batch."""
    n = len(image)
    flat = image.reshape(n, -1) + (np.arange(n, dtype=np.int32) * 256)[:, None]  # image i's values at 256 i ...
    hist = np.bincount(flat.ravel(), minlength=256 * n).reshape(n, 256)  # ... so one count covers the batch
    first = np.argmax(hist > 0, axis=1)
    base = hist[np.arange(n), first]
    total = flat.shape[1]
    cdf = np.cumsum(hist, axis=1) - base[:, None]
    scale = 255.0 / np.maximum(total - base, 1)
    lut = np.clip(np.rint(cdf * scale[:, None]), 0, 255)
    lut = np.where(np.arange(256)[None, :] <= first[:, None], 0, lut)
    lut = np.where((base == total)[:, None], first[:, None], lut)
    return lut.astype(np.uint8).ravel()[flat].reshape(image.shape)
