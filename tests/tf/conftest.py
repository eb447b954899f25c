"""TensorFlow test fixtures: digits as the harness hands them to trainers, tiny Keras models.

The whole directory is skipped when TensorFlow (with tf-keras and NSL) is not installed.
"""

from __future__ import annotations

from dataclasses import dataclass


import pytest
from helpers import tensorflow_for_tests

tf, keras = tensorflow_for_tests(module_level=True)


def pytest_configure(config):
    config.addinivalue_line("filterwarnings", "ignore:CUDA initialization:UserWarning")


@dataclass(frozen=True)
class DigitsSplits:
    """The ``digits`` dataset as the harness hands it to trainers: uint8 NHWC splits."""

    train: object  # ImageSplit: .images uint8 (N, 8, 8, 1), .labels int64
    test: object
    num_classes: int
    image_shape: tuple


@pytest.fixture(scope="session")
def digits_splits(_session_cache) -> DigitsSplits:
    """``load_dataset("digits")`` with a 1402 / 395 train/test split and no val split."""
    from harness.data import load_dataset

    ds = load_dataset("digits", val_fraction=0.0, test_fraction=0.22)
    return DigitsSplits(ds.split("train"), ds.split("test"), ds.num_classes, tuple(ds.image_shape))


@pytest.fixture(scope="session")
def digits_model(digits_splits):
    """nsl-cnn trained with the standard defense on digits (~96% test accuracy). Shared by the
    session: the reference model of the seed experiment and the target of the attack tests."""
    from tf_helpers import train_standard

    return train_standard(digits_splits, seed=0, epochs=10)


@pytest.fixture(scope="session")
def second_digits_model(digits_splits):
    """nsl-cnn trained like ``digits_model`` from another seed (1): the seed experiment's unregularized
    baseline and the robustness tests' transfer reference, a model independent of ``digits_model``."""
    from tf_helpers import train_standard

    return train_standard(digits_splits, seed=1, epochs=10)


@pytest.fixture(scope="session")
def digits_batch(digits_splits):
    """The first 200 test images as float32 NHWC in [0, 1], with int64 labels."""
    import numpy as np

    images, labels = digits_splits.test.images[:200], digits_splits.test.labels[:200]
    return tf.constant(np.asarray(images, np.float32) / 255.0), tf.constant(labels.astype(np.int64))
