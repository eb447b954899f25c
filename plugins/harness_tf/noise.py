"""TensorFlow implementation of :class:`harness.perturb.noise.ArrayOps`; the maths lives in harness."""

from __future__ import annotations

from typing import Any

import tensorflow as tf

from harness.perturb import noise as _noise

from . import device  # noqa: F401 - honours HARNESS_DEVICE=cpu before TensorFlow starts GPUs


class TFOps:
    """:class:`~harness.perturb.noise.ArrayOps` over TensorFlow tensors.

    Samples come from ``generator`` (a ``tf.random.Generator``; TensorFlow's global
    generator when None), so a seeded generator gives the same noise on every device.
    """

    def __init__(self, generator: tf.random.Generator | None = None):
        self.generator = generator

    @property
    def _rng(self) -> tf.random.Generator:
        return self.generator if self.generator is not None else tf.random.get_global_generator()

    def normal(self, like: tf.Tensor) -> tf.Tensor:
        return self._rng.normal(tf.shape(like), dtype=like.dtype)

    def uniform(self, like: tf.Tensor) -> tf.Tensor:
        return self._rng.uniform(tf.shape(like), dtype=like.dtype)

    def poisson(self, rate: tf.Tensor) -> tf.Tensor:
        seed = self._rng.make_seeds(1)[:, 0]
        return tf.random.stateless_poisson(tf.shape(rate), seed=seed, lam=rate, dtype=rate.dtype)

    def clip(self, x: tf.Tensor, low: float, high: float) -> tf.Tensor:
        return tf.clip_by_value(x, low, high)

    def where(self, condition: tf.Tensor, a: Any, b: Any) -> tf.Tensor:
        dtype = next((v.dtype for v in (a, b) if isinstance(v, tf.Tensor)), tf.float32)
        return tf.where(condition, tf.cast(a, dtype), tf.cast(b, dtype))


def tf_noise(name: str, x: tf.Tensor, severity: int = 3, generator: tf.random.Generator | None = None,
             **params: Any) -> tf.Tensor:
    """Noise ``name`` (see :data:`harness.perturb.NOISE_NAMES`) on a float tensor in [0, 1]."""
    return _noise.apply_noise(name, x, TFOps(generator), severity, **params)
