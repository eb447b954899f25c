"""Augmentation contract, for every registered augmentation and framework variant: aug(x, *, generator)
returns the type, shape and dtype of x, in range, and the same output for the same generator seed."""

from __future__ import annotations

import numpy as np
import pytest
from contract_helpers import float_batch, require, to_numpy, uint8_batch, variant_cases

from harness import registry


def _batch_and_generators(framework: str):
    """A batch in ``framework``'s augmentation layout and a function making seeded generators."""
    if framework == "any":
        return uint8_batch(), np.random.default_rng
    if framework == "torch":
        import torch

        return float_batch("torch"), lambda seed: torch.Generator().manual_seed(seed)
    import tensorflow as tf

    return float_batch("tf"), tf.random.Generator.from_seed


@pytest.mark.parametrize("name, framework", variant_cases("augmentation"))
def test_augmentation_keeps_type_shape_dtype_range_and_is_seeded(name, framework):
    require(framework)
    aug = registry.create_augmentation(name, framework=framework)
    x, generator = _batch_and_generators(framework)
    first, second = aug(x, generator=generator(5)), aug(x, generator=generator(5))
    assert type(first) is type(x) or framework == "tf"
    out, original = to_numpy(first, framework), to_numpy(x, framework)
    assert out.shape == original.shape and out.dtype == original.dtype
    if framework != "any":
        assert out.min() >= 0.0 and out.max() <= 1.0
    assert np.array_equal(out, to_numpy(second, framework)), f"{name}: same generator seed, different output"
