"""Noise models on float images in [0, 1], written once over a tiny array interface.

The maths (:func:`gaussian_noise`, :func:`shot_noise`, :func:`salt_and_pepper`)
only calls the five methods of :class:`ArrayOps` plus ``+ - * / < >= &`` on
arrays, so one implementation serves numpy (:class:`NumpyOps`, here), torch
(``harness_torch.noise.TorchOps``) and TensorFlow (``harness_tf.noise.TFOps``). A new framework
needs a class with the same five methods and nothing else.

Formulas follow ImageNet-C / Tiny-ImageNet-C (Hendrycks & Dietterich, 2019):
gaussian ``clip(x + N(0, sigma^2))``, shot ``clip(Poisson(x * lam) / lam)``,
impulse ``x`` replaced by 1 (salt) or 0 (pepper) with probability ``amount``,
speckle ``clip(x + x * N(0, sigma^2))`` (used by the corruption suite).
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np

from ..errors import UsageError
from .severity import NOISE_SEVERITY, check_number, resolve

NOISE_NAMES = tuple(NOISE_SEVERITY)

__all__ = [
    "NOISE_NAMES",
    "NOISE_SEVERITY",
    "NOISES",
    "ArrayOps",
    "NumpyOps",
    "apply_noise",
    "gaussian_noise",
    "noise_params",
    "numpy_noise",
    "salt_and_pepper",
    "shot_noise",
    "speckle_noise",
]


@runtime_checkable
class ArrayOps(Protocol):
    """The random and elementwise operations the noise maths needs from a framework.

    Samples take shape, dtype and device from ``like``; randomness comes from the
    generator the implementation was built with, so results are reproducible.
    """

    def normal(self, like: Any) -> Any:
        """Standard normal samples shaped like ``like``."""

    def uniform(self, like: Any) -> Any:
        """Uniform samples in [0, 1) shaped like ``like``."""

    def poisson(self, rate: Any) -> Any:
        """Poisson samples with mean ``rate`` (elementwise), in ``rate``'s float dtype."""

    def clip(self, x: Any, low: float, high: float) -> Any:
        """``x`` clipped to [low, high]."""

    def where(self, condition: Any, a: Any, b: Any) -> Any:
        """``a`` where ``condition`` else ``b``; ``a`` or ``b`` may be a Python float."""


class NumpyOps:
    """:class:`ArrayOps` over numpy, driven by a ``numpy.random.Generator``."""

    def __init__(self, seed: int | np.random.Generator | None = None):
        self.rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)

    @staticmethod
    def _float_dtype(like: np.ndarray) -> np.dtype:
        dtype = np.asarray(like).dtype
        return dtype if dtype in (np.float32, np.float64) else np.dtype(np.float32)

    def normal(self, like: np.ndarray) -> np.ndarray:
        return self.rng.standard_normal(np.shape(like), dtype=self._float_dtype(like))

    def uniform(self, like: np.ndarray) -> np.ndarray:
        return self.rng.random(np.shape(like), dtype=self._float_dtype(like))

    def poisson(self, rate: np.ndarray) -> np.ndarray:
        return self.rng.poisson(rate).astype(self._float_dtype(rate))

    def clip(self, x: np.ndarray, low: float, high: float) -> np.ndarray:
        return np.clip(x, low, high)

    def where(self, condition: np.ndarray, a: Any, b: Any) -> np.ndarray:
        dtype = next((v.dtype for v in (a, b) if isinstance(v, np.ndarray)), np.float32)
        return np.where(condition, a, b).astype(dtype, copy=False)


def gaussian_noise(x: Any, ops: ArrayOps, sigma: float) -> Any:
    """Additive Gaussian noise with standard deviation ``sigma``, clipped to [0, 1]."""
    return ops.clip(x + ops.normal(x) * sigma, 0.0, 1.0)


def shot_noise(x: Any, ops: ArrayOps, lam: float) -> Any:
    """Poisson (shot) noise: ``lam`` photons at full intensity; smaller ``lam`` is noisier."""
    return ops.clip(ops.poisson(ops.clip(x, 0.0, 1.0) * lam) / lam, 0.0, 1.0)


def salt_and_pepper(x: Any, ops: ArrayOps, amount: float, salt_vs_pepper: float = 0.5) -> Any:
    """Replace each value with probability ``amount``: by 1 (salt) with probability
    ``salt_vs_pepper``, else by 0 (pepper). Channels are hit independently, as in skimage."""
    u = ops.uniform(x)
    salt_below = amount * salt_vs_pepper
    out = ops.where(u < salt_below, 1.0, x)
    return ops.where((u >= salt_below) & (u < amount), 0.0, out)


def speckle_noise(x: Any, ops: ArrayOps, sigma: float) -> Any:
    """Multiplicative Gaussian (speckle) noise ``x + x * N(0, sigma^2)``, clipped to [0, 1]."""
    return ops.clip(x + x * ops.normal(x) * sigma, 0.0, 1.0)


#: noise name -> function(x, ops, **params)
NOISES = {"gaussian-noise": gaussian_noise, "shot-noise": shot_noise, "salt-and-pepper": salt_and_pepper}


def noise_params(name: str, severity: int = 3, **overrides: Any) -> dict[str, float]:
    """Validated parameters of noise ``name`` for ``severity``; explicit values win over the table."""
    if name not in NOISES:
        raise UsageError(f"Unknown noise '{name}'. Available: {', '.join(NOISE_NAMES)}")
    allowed = set(NOISE_SEVERITY[name]) | ({"salt_vs_pepper"} if name == "salt-and-pepper" else set())
    unknown = sorted(set(overrides) - allowed)
    if unknown:
        raise UsageError(f"{name} has no parameter {', '.join(map(repr, unknown))}. Parameters: "
                         f"{', '.join(sorted(allowed))}")
    params = resolve(name, severity, NOISE_SEVERITY, **overrides)
    if name == "gaussian-noise":
        params["sigma"] = check_number("sigma", params["sigma"], 0.0)
    elif name == "shot-noise":
        params["lam"] = check_number("lam", params["lam"], 0.0, low_open=True)
    else:
        params["amount"] = check_number("amount", params["amount"], 0.0, 1.0)
        params["salt_vs_pepper"] = check_number("salt_vs_pepper", params.get("salt_vs_pepper", 0.5), 0.0, 1.0)
    return params


def apply_noise(name: str, x: Any, ops: ArrayOps, severity: int = 3, **params: Any) -> Any:
    """Noise ``name`` at ``severity`` (or explicit parameters) on float images ``x`` in [0, 1]."""
    return NOISES[name](x, ops, **noise_params(name, severity, **params))


def numpy_noise(name: str, images: np.ndarray, severity: int = 3,
                seed: int | np.random.Generator | None = 0, **params: Any) -> np.ndarray:
    """Noise on a numpy batch: float in [0, 1] keeps its dtype; uint8 (0..255) comes back as uint8."""
    images = np.asarray(images)
    if images.dtype == np.uint8:
        noisy = apply_noise(name, images.astype(np.float32) / 255.0, NumpyOps(seed), severity, **params)
        return np.round(noisy * 255.0).astype(np.uint8)
    if not np.issubdtype(images.dtype, np.floating):
        raise UsageError(f"noise expects uint8 or float images in [0, 1], got dtype {images.dtype}")
    return apply_noise(name, images, NumpyOps(seed), severity, **params)
