"""TFOps: the shared noise maths (harness.perturb.noise) runs on TensorFlow tensors."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from harness.perturb.noise import ArrayOps, apply_noise
from harness_tf.noise import TFOps, tf_noise


def test_tfops_implements_the_array_interface():
    assert isinstance(TFOps(), ArrayOps)
    ops = TFOps(tf.random.Generator.from_seed(0))
    like = tf.zeros([2, 3])
    assert ops.normal(like).shape == (2, 3) and ops.uniform(like).dtype == tf.float32
    assert ops.poisson(tf.fill([4], 3.0)).dtype == tf.float32
    out = ops.where(tf.constant([True, False]), 1.0, tf.constant([0.25, 0.5]))
    assert out.numpy().tolist() == [1.0, 0.5]


def test_noise_statistics_follow_the_shared_formulas():
    x = tf.fill([4, 32, 32, 3], 0.5)
    gaussian = tf_noise("gaussian-noise", x, sigma=0.1, generator=tf.random.Generator.from_seed(1))
    assert float(tf.math.reduce_std(gaussian - x)) == pytest.approx(0.1, rel=0.05)
    shot = tf_noise("shot-noise", x, lam=100.0, generator=tf.random.Generator.from_seed(2))
    assert float(tf.reduce_mean(shot)) == pytest.approx(0.5, abs=0.01)
    assert float(tf.math.reduce_variance(shot)) == pytest.approx(0.5 / 100.0, rel=0.1)
    impulse = tf_noise("salt-and-pepper", x, amount=0.2, generator=tf.random.Generator.from_seed(3)).numpy()
    assert np.mean(impulse == 1.0) == pytest.approx(0.1, abs=0.01)
    assert np.mean(impulse == 0.0) == pytest.approx(0.1, abs=0.01)


def test_noise_is_seeded_and_stays_in_the_unit_interval():
    x = tf.random.stateless_uniform([2, 8, 8, 1], seed=[1, 2])
    for name in ("gaussian-noise", "shot-noise", "salt-and-pepper"):
        a = apply_noise(name, x, TFOps(tf.random.Generator.from_seed(7)), severity=5)
        b = apply_noise(name, x, TFOps(tf.random.Generator.from_seed(7)), severity=5)
        assert np.array_equal(a.numpy(), b.numpy()), name
        assert float(tf.reduce_min(a)) >= 0.0 and float(tf.reduce_max(a)) <= 1.0
