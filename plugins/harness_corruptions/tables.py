"""Severity tables (1 = mild ... 5 = strong) of the corruptions, Tiny-ImageNet-C's 64-px values.

Values are those of Hendrycks & Dietterich's ``make_tinyimagenet_c.py`` (ICLR 2019).
Pixel lengths in them (blur sigmas and radii, shuffle distances, displacements) are
for 64-px images; :data:`LENGTHS` names them so :mod:`.corruptions` can rescale them
for other sizes. Elastic's lengths are fractions of the image side, as in the original.
"""

from __future__ import annotations

from typing import Any

#: corruption -> (parameter names, one row of values per severity)
SEVERITY: dict[str, tuple[tuple[str, ...], tuple[tuple[Any, ...], ...]]] = {
    "gaussian-noise": (("sigma",), ((0.04,), (0.08,), (0.12,), (0.15,), (0.18,))),
    "shot-noise": (("lam",), ((250,), (100,), (50,), (30,), (15,))),
    "impulse-noise": (("amount",), ((0.01,), (0.02,), (0.05,), (0.08,), (0.14,))),
    "defocus-blur": (("radius", "alias_blur"), ((0.5, 0.6), (1, 0.1), (1.5, 0.1), (2.5, 0.01), (3, 0.1))),
    "glass-blur": (("sigma", "max_delta", "iterations"),
                   ((0.1, 1, 1), (0.5, 1, 1), (0.6, 1, 2), (0.7, 2, 1), (0.9, 2, 2))),
    "motion-blur": (("radius", "sigma"), ((10, 1), (10, 1.5), (10, 2), (10, 2.5), (12, 3))),
    # zoom factors np.arange(1, end, 0.01), as in the original (float rounding included)
    "zoom-blur": (("end",), ((1.06,), (1.11,), (1.16,), (1.21,), (1.26,))),
    "snow": (("loc", "scale", "zoom", "threshold", "radius", "sigma", "blend"),
             ((0.1, 0.2, 1, 0.6, 8, 3, 0.8), (0.1, 0.2, 1, 0.5, 10, 4, 0.8), (0.15, 0.3, 1.75, 0.55, 10, 4, 0.7),
              (0.25, 0.3, 2.25, 0.6, 12, 6, 0.65), (0.3, 0.3, 1.25, 0.65, 14, 12, 0.6))),
    "frost": (("image_weight", "frost_weight"), ((1, 0.3), (0.9, 0.4), (0.8, 0.45), (0.75, 0.5), (0.7, 0.55))),
    "fog": (("strength", "wibble_decay"), ((0.4, 3), (0.7, 3), (1, 2.5), (1.5, 2), (2, 1.75))),
    "brightness": (("delta",), ((0.1,), (0.2,), (0.3,), (0.4,), (0.5,))),
    "contrast": (("factor",), ((0.4,), (0.3,), (0.2,), (0.1,), (0.05,))),
    # alpha, sigma and the affine jitter as fractions of the image side
    "elastic-transform": (("alpha", "sigma", "affine"),
                          ((0, 0, 0.08), (0.05, 0.3, 0.06), (0.1, 0.08, 0.06), (0.1, 0.03, 0.03), (0.16, 0.03, 0.02))),
    "pixelate": (("factor",), ((0.9,), (0.8,), (0.7,), (0.6,), (0.5,))),
    "jpeg-compression": (("quality",), ((65,), (58,), (50,), (40,), (25,))),
    # held out: the four validation corruptions of ImageNet-C
    "speckle-noise": (("sigma",), ((0.15,), (0.2,), (0.25,), (0.3,), (0.35,))),
    "gaussian-blur": (("sigma",), ((0.5,), (0.75,), (1,), (1.25,), (1.5,))),
    "spatter": (("loc", "scale", "sigma", "threshold", "intensity", "mud"),
                ((0.62, 0.1, 0.7, 0.7, 0.6, 0), (0.65, 0.1, 0.8, 0.7, 0.6, 0), (0.65, 0.3, 1, 0.69, 0.6, 0),
                 (0.65, 0.1, 0.7, 0.68, 0.6, 1), (0.65, 0.1, 0.5, 0.67, 0.6, 1))),
    "saturate": (("factor", "offset"), ((0.3, 0), (0.1, 0), (2, 0), (5, 0.1), (30, 0.2))),
}

#: parameters that are lengths in 64-px pixels, rescaled with the image size
LENGTHS: dict[str, tuple[str, ...]] = {
    "defocus-blur": ("radius", "alias_blur"),
    "glass-blur": ("sigma", "max_delta"),
    "motion-blur": ("radius", "sigma"),
    "snow": ("radius", "sigma"),
    "gaussian-blur": ("sigma",),
    "spatter": ("sigma",),  # and ``intensity`` in mud mode, where it is a blur sigma
}

DESCRIPTIONS: dict[str, str] = {
    "gaussian-noise": "ImageNet-C Gaussian noise (Tiny-ImageNet-C sigmas)",
    "shot-noise": "ImageNet-C Poisson shot noise",
    "impulse-noise": "ImageNet-C salt-and-pepper (impulse) noise",
    "defocus-blur": "ImageNet-C defocus blur (anti-aliased disk kernel)",
    "glass-blur": "ImageNet-C glass blur (blur, local pixel shuffling, blur)",
    "motion-blur": "ImageNet-C motion blur at a random angle (ImageMagick's kernel)",
    "zoom-blur": "ImageNet-C zoom blur (average of centre zooms)",
    "snow": "ImageNet-C snow (motion-blurred flakes, whitened image)",
    "frost": "ImageNet-C frost over synthesised frost textures (the original's photos are not shipped)",
    "fog": "ImageNet-C fog (plasma fractal)",
    "brightness": "ImageNet-C brightness (HSV value shift)",
    "contrast": "ImageNet-C contrast (towards each channel's mean)",
    "elastic-transform": "ImageNet-C elastic transform (affine jitter plus smooth displacement)",
    "pixelate": "ImageNet-C pixelate (box down- and up-sampling)",
    "jpeg-compression": "ImageNet-C JPEG compression (Pillow qualities 65 ... 25)",
    "speckle-noise": "Held-out ImageNet-C speckle (multiplicative Gaussian) noise",
    "gaussian-blur": "Held-out ImageNet-C Gaussian blur",
    "spatter": "Held-out ImageNet-C spatter (water drops, then mud)",
    "saturate": "Held-out ImageNet-C saturation change (HSV)",
}
