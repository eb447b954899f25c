"""harness.training.batches: the data boundary, batch order and derived seeds."""

from __future__ import annotations

import numpy as np
import pytest

from harness.errors import UsageError
from harness.training import batch_indices, check_labels, derive_seed, split_arrays


class Split:
    def __init__(self, images, labels):
        self.images, self.labels = images, labels


def test_split_arrays_accepts_splits_and_pairs_and_checks_them():
    images, labels = np.zeros((6, 4, 4, 1), np.uint8), np.arange(6) % 3
    got_images, got_labels = split_arrays(Split(images, labels))
    assert got_images.dtype == np.uint8 and got_labels.dtype == np.int64
    assert split_arrays((images[:5], labels[:5].tolist()))[1].dtype == np.int64
    with pytest.raises(UsageError, match="uint8"):
        split_arrays((images.astype(np.float32), labels))
    with pytest.raises(UsageError, match="labels"):
        split_arrays((images, labels[:3]))
    with pytest.raises(UsageError, match="pair"):
        split_arrays(images)


def test_check_labels_wants_class_indices_of_the_model():
    check_labels(np.array([0, 9]), 10)
    check_labels(np.array([0, 12]), None)  # a model that does not say: unchecked
    with pytest.raises(UsageError, match=r"labels must be in \[0, 10\), got 0..12"):
        check_labels(np.array([0, 12]), 10)


def test_batches_cover_the_order_and_never_end_with_one_image():
    order = np.random.default_rng(0).permutation(11)
    assert [len(b) for b in batch_indices(order, 5)] == [5, 6]
    assert [len(b) for b in batch_indices(order, 4)] == [4, 4, 3]
    assert [len(b) for b in batch_indices(order[:5], 4)] == [5]  # one batch of 4 + 1
    assert np.array_equal(np.concatenate(batch_indices(order, 5)), order)
    assert [len(b) for b in batch_indices(order[:1], 4)] == [1]


def test_derived_seeds_are_stable_63_bit_and_distinct_per_stream():
    seeds = {derive_seed(3, epoch, stream) for epoch in range(4) for stream in range(3)}
    assert len(seeds) == 12 and all(0 <= s < 2**63 for s in seeds)
    assert derive_seed(3, 1, 2) == derive_seed(3, 1, 2)
