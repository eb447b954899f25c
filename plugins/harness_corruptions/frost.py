"""Synthesised frost textures for the frost corruption.

ImageNet-C blends each image with a crop of one of six photographs of frost on a
window (``frost1.png`` ... ``frost6.jpg``, shrunk to 0.3x for Tiny-ImageNet-C).
Those files are not redistributed with any package we can depend on, so frost
here uses :data:`TEXTURES` textures drawn deterministically instead: branching ice
crystals (dendrites with side needles at +-60 degrees) over a soft plasma haze,
tinted blue-white like the photographs. They are fixed: the same textures on
every machine, whatever seed the corruption gets (the seed picks texture and crop).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from PIL import Image, ImageDraw

from .filters import gaussian, plasma_fractal

#: number of distinct textures (the original has six photographs)
TEXTURES = 6
#: crystals per 64-px-pixel of area, and crystal length (64-px pixels), per texture
_DENSITY = (0.010, 0.014, 0.018, 0.012, 0.022, 0.016)
_LENGTH = ((6, 18), (4, 12), (5, 14), (8, 24), (3, 10), (6, 16))
#: blue-white tint of ice (RGB)
_TINT = np.array([0.84, 0.92, 1.0], dtype=np.float32)
_SEED = 20190402  # fixed: textures never depend on the caller's seed


@lru_cache(maxsize=64)
def frost_texture(index: int, size: int, scale: float = 1.0) -> np.ndarray:
    """Texture ``index`` as float32 (size, size, 3) in [0, 1]; crystals sized for 64-px images times ``scale``.

    Cached: the evaluation asks for the same few textures again and again.
    """
    rng = np.random.default_rng([_SEED, index])
    supersample = 2
    canvas = Image.new("L", (size * supersample, size * supersample), 0)
    draw = ImageDraw.Draw(canvas)
    unit = scale * supersample
    low, high = _LENGTH[index % len(_LENGTH)]
    count = int(_DENSITY[index % len(_DENSITY)] * (size / scale) ** 2) + 1
    for _ in range(count):
        x, y = rng.uniform(0, size * supersample, 2)
        angle = rng.uniform(0, 2 * np.pi)
        length = rng.uniform(low, high) * unit
        shade = int(rng.uniform(110, 255))
        end = (x + length * np.cos(angle), y + length * np.sin(angle))
        draw.line([(x, y), end], fill=shade, width=max(1, round(unit * 0.6)))
        for t in np.linspace(0.2, 0.9, 4):  # side needles at +-60 degrees
            bx, by = x + t * length * np.cos(angle), y + t * length * np.sin(angle)
            for side in (-1, 1):
                branch = angle + side * np.pi / 3
                blen = (1 - t) * length * rng.uniform(0.25, 0.55)
                draw.line([(bx, by), (bx + blen * np.cos(branch), by + blen * np.sin(branch))],
                          fill=int(shade * 0.8), width=max(1, round(unit * 0.4)))
    needles = np.asarray(canvas.resize((size, size), Image.Resampling.BOX), dtype=np.float32) / 255.0
    needles = gaussian(needles[None], 0.35 * scale)[0]
    mapsize = 1 << max(1, int(np.ceil(np.log2(size))))
    haze = plasma_fractal(1, mapsize, 2.0, rng)[0, :size, :size].astype(np.float32)
    # base level 0.45: crops then match the mean brightness of ImageNet-C's frost photographs as
    # Tiny-ImageNet-C uses them (0.3x; mean RGB about 0.58, 0.65, 0.70; ours 0.59, 0.65, 0.70)
    texture = np.clip(0.45 + 0.3 * haze + 0.85 * needles, 0.0, 1.0)
    return texture[..., None] * _TINT


def frost_layers(n: int, height: int, width: int, scale: float, rng: np.random.Generator) -> np.ndarray:
    """``n`` random crops (float32 (n, H, W, 3)) of random textures, as the original crops its photos."""
    margin = int(np.ceil(64 * scale))
    size = max(height, width) + margin
    choice = rng.integers(0, TEXTURES, n)
    tops = rng.integers(0, size - height + 1, n)
    lefts = rng.integers(0, size - width + 1, n)
    out = np.empty((n, height, width, 3), dtype=np.float32)
    for i in range(n):
        texture = frost_texture(int(choice[i]), size, round(scale, 6))
        out[i] = texture[tops[i] : tops[i] + height, lefts[i] : lefts[i] + width]
    return out
