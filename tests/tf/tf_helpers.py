"""Helpers for the TensorFlow tests (import after conftest has selected Keras 2)."""

from __future__ import annotations

import numpy as np
import tensorflow as tf
import tf_keras as keras

#: a fast training budget for nsl-cnn on digits
FAST = {"batch_size": 64, "progress": False, "device": "cpu"}


def subset(split, n, seed=0):
    """``n`` images and labels of a split, picked with a fixed seed."""
    index = np.sort(np.random.default_rng(seed).permutation(len(split.labels))[:n])
    return split.images[index], split.labels[index]


def nsl_cnn(seed=0, **params):
    """The nsl-cnn backbone for digits, initialised from ``seed``."""
    from harness.registry import create_backbone

    keras.utils.set_random_seed(seed)
    return create_backbone("nsl-cnn", framework="tf", num_classes=10, input_shape=(8, 8, 1), **params)


def to_float(images) -> tf.Tensor:
    """uint8 NHWC -> float32 tensor in [0, 1]."""
    return tf.constant(np.asarray(images, np.float32) / 255.0)


def train_standard(splits, seed=0, epochs=10, **params):
    """nsl-cnn trained with the standard defense (Adam) on the digits train split."""
    from harness.registry import create_defense

    model = nsl_cnn(seed)
    trainer = create_defense("standard", framework="tf", epochs=epochs, optimizer="adam", lr=3e-3, weight_decay=0.0,
                             seed=seed, **{**FAST, **params})
    trainer.fit(model, splits.train)
    return model
