"""Severity tables (1 = mild ... 5 = strong) shared by every framework's augmentations.

Each augmentation has named parameters; a parameter left at ``None`` takes its
value from the table row of the chosen ``severity``, an explicit value wins.
:data:`AUGMENTATION_PARAMS` lists every parameter of every augmentation with
its default, so the torch and TensorFlow plugins register identical specs.
"""

from __future__ import annotations

import math
from numbers import Integral, Real
from typing import Any, Mapping

from ..errors import UsageError

SEVERITIES = (1, 2, 3, 4, 5)

#: p for augmentations whose strength is all-or-nothing: the share of images changed
_SHARE = (0.1, 0.3, 0.5, 0.7, 0.9)
_JITTER = (0.1, 0.2, 0.3, 0.4, 0.5)

#: Noise tables; sigma and lam follow Tiny-ImageNet-C (Hendrycks & Dietterich, 2019).
NOISE_SEVERITY: dict[str, dict[str, tuple[float, ...]]] = {
    "gaussian-noise": {"sigma": (0.04, 0.08, 0.12, 0.15, 0.18)},
    "shot-noise": {"lam": (500.0, 250.0, 100.0, 75.0, 50.0)},
    "salt-and-pepper": {"amount": (0.01, 0.02, 0.03, 0.05, 0.07)},
}

AUGMENTATION_SEVERITY: dict[str, dict[str, tuple[float, ...]]] = {
    "hflip": {"p": _SHARE},
    "vflip": {"p": _SHARE},
    "grayscale": {"p": _SHARE},
    # padding as a fraction of the shorter image side (2..12 pixels at 64x64)
    "random-crop": {"padding_fraction": (1 / 32, 2 / 32, 3 / 32, 4 / 32, 6 / 32)},
    "color-jitter": {"brightness": _JITTER, "contrast": _JITTER, "saturation": _JITTER,
                     "hue": (0.02, 0.04, 0.06, 0.08, 0.1)},
    "rotation": {"degrees": (3.0, 6.0, 10.0, 15.0, 20.0)},
    # translate: fraction of the image size; scale: +- deviation from 1; shear: degrees
    "affine": {"translate": (0.02, 0.04, 0.06, 0.08, 0.12), "scale": (0.05, 0.1, 0.15, 0.2, 0.25),
               "shear": (2.0, 4.0, 8.0, 12.0, 16.0)},
    "perspective": {"distortion": (0.1, 0.2, 0.3, 0.4, 0.5)},
    **NOISE_SEVERITY,
}

_GEOMETRY = {"interpolation": "bilinear", "fill": 0.0}
INTERPOLATIONS = ("nearest", "bilinear", "bicubic")
PADDING_MODES = ("constant", "edge", "reflect", "symmetric")

#: Every parameter of every augmentation with its default (None: from the severity table).
AUGMENTATION_PARAMS: dict[str, dict[str, Any]] = {
    "hflip": {"severity": 3, "p": None, "seed": None},
    "vflip": {"severity": 3, "p": None, "seed": None},
    "grayscale": {"severity": 3, "p": None, "seed": None},
    "random-crop": {"severity": 3, "p": 1.0, "padding": None, "padding_mode": "constant", "fill": 0.0,
                    "seed": None},
    "color-jitter": {"severity": 3, "p": 1.0, "brightness": None, "contrast": None, "saturation": None,
                     "hue": None, "seed": None},
    "rotation": {"severity": 3, "p": 1.0, "degrees": None, **_GEOMETRY, "seed": None},
    "affine": {"severity": 3, "p": 1.0, "translate": None, "scale": None, "shear": None, **_GEOMETRY,
               "seed": None},
    "perspective": {"severity": 3, "p": 1.0, "distortion": None, **_GEOMETRY, "seed": None},
    "gaussian-noise": {"severity": 3, "p": 1.0, "sigma": None, "seed": None},
    "shot-noise": {"severity": 3, "p": 1.0, "lam": None, "seed": None},
    "salt-and-pepper": {"severity": 3, "p": 1.0, "amount": None, "salt_vs_pepper": 0.5, "seed": None},
}

AUGMENTATION_DESCRIPTIONS: dict[str, str] = {
    "hflip": "Horizontal flip; severity sets the share of images flipped",
    "vflip": "Vertical flip; severity sets the share of images flipped",
    "grayscale": "Grayscale keeping the channel count; severity sets the share of images changed",
    "random-crop": "Random crop back to size after padding (2..12 px at 64x64 by severity)",
    "color-jitter": "Brightness, contrast, saturation and hue jitter (hue/saturation skipped on 1 channel)",
    "rotation": "Small random rotation (3..20 degrees by severity)",
    "affine": "Random translation, scaling and shear",
    "perspective": "Random perspective distortion",
    "gaussian-noise": "Additive Gaussian noise (Tiny-ImageNet-C sigmas)",
    "shot-noise": "Poisson shot noise (Tiny-ImageNet-C photon counts)",
    "salt-and-pepper": "Salt-and-pepper (impulse) noise on a share of pixel values",
}


def check_severity(severity: Any) -> int:
    """Return ``severity`` as an int in 1..5, or raise :class:`UsageError`."""
    if isinstance(severity, bool) or not isinstance(severity, Integral) or not 1 <= int(severity) <= 5:
        raise UsageError(f"severity must be an integer from 1 to 5, got {severity!r}")
    return int(severity)


def check_number(name: str, value: Any, low: float = -math.inf, high: float = math.inf,
                 *, low_open: bool = False) -> float:
    """Return ``value`` as a float in [low, high] (``(low, high]`` with low_open), else UsageError."""
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(float(value)):
        raise UsageError(f"{name} must be a finite number, got {value!r}")
    value = float(value)
    if value < low or value > high or (low_open and value == low):
        left = "(" if low_open else "["
        raise UsageError(f"{name} must be in {left}{low:g}, {high:g}], got {value!r}")
    return value


def resolve(name: str, severity: int = 3, table: Mapping[str, Mapping[str, tuple]] | None = None,
            **overrides: Any) -> dict[str, Any]:
    """Parameters of augmentation ``name``: table row for ``severity``, explicit values winning.

    ``None`` overrides are ignored; keys not in the table pass through unchanged.
    """
    table = AUGMENTATION_SEVERITY if table is None else table
    if name not in table:
        raise UsageError(f"No severity table for '{name}'. Known: {', '.join(table)}")
    severity = check_severity(severity)
    params = {key: values[severity - 1] for key, values in table[name].items()}
    params.update({key: value for key, value in overrides.items() if value is not None})
    return params


#: allowed range of each numeric augmentation parameter (inclusive)
_RANGES: dict[str, dict[str, tuple[float, float]]] = {
    "color-jitter": {"brightness": (0.0, math.inf), "contrast": (0.0, math.inf), "saturation": (0.0, math.inf),
                     "hue": (0.0, 0.5)},
    "rotation": {"degrees": (0.0, 180.0)},
    "affine": {"translate": (0.0, 1.0), "scale": (0.0, 1.0), "shear": (0.0, 80.0)},
    "perspective": {"distortion": (0.0, 1.0)},
}
_WARPS = ("rotation", "affine", "perspective")


def check_augmentation_params(name: str, severity: int, params: dict[str, Any]) -> dict[str, Any]:
    """Validate and normalise the resolved parameters of augmentation ``name``; every framework uses this.

    ``params`` come from :func:`resolve`; numbers become floats, a bad value raises
    :class:`UsageError` naming the parameter.
    """
    if name in NOISE_SEVERITY:
        from .noise import noise_params

        return noise_params(name, severity, **params)
    for key, (low, high) in _RANGES.get(name, {}).items():
        params[key] = check_number(key, params[key], low, high)
    if name == "affine" and params["scale"] >= 1.0:
        raise UsageError(f"scale must be below 1 (images scaled by 1 +- scale), got {params['scale']!r}")
    if name == "random-crop":
        if "padding" in params:
            padding = params["padding"]
            if isinstance(padding, bool) or not isinstance(padding, Integral) or padding < 0:
                raise UsageError(f"padding must be a whole number of pixels >= 0, got {padding!r}")
            params["padding"] = int(padding)
        if params["padding_mode"] not in PADDING_MODES:
            raise UsageError(f"padding_mode must be {', '.join(PADDING_MODES[:-1])} or {PADDING_MODES[-1]}, "
                             f"got {params['padding_mode']!r}")
    if name in _WARPS and params["interpolation"] not in INTERPOLATIONS:
        raise UsageError(f"interpolation must be 'nearest', 'bilinear' or 'bicubic', got {params['interpolation']!r}")
    if name in (*_WARPS, "random-crop"):
        params["fill"] = check_number("fill", params["fill"], 0.0, 1.0)
    return params
