"""harness.metrics: top-k accuracy in numpy."""

from __future__ import annotations

import numpy as np
import pytest

from harness.metrics import topk_accuracy, topk_correct


def test_topk_matches_a_brute_force_count():
    rng = np.random.default_rng(0)
    scores, labels = rng.normal(size=(200, 12)), rng.integers(0, 12, 200)
    ranks = (scores > scores[np.arange(200), labels][:, None]).sum(axis=1)
    for k in (1, 3, 5):
        assert topk_correct(scores, labels, k) == int((ranks < k).sum())
    assert topk_accuracy(scores, labels, (1, 12)) == {1: pytest.approx((ranks < 1).mean()), 12: 1.0}


def test_k_beyond_the_classes_counts_every_row_and_bad_shapes_are_refused():
    scores, labels = np.eye(3)[[0, 1, 2, 0]], np.array([1, 1, 2, 2])
    assert topk_correct(scores, labels, 1) == 2 and topk_correct(scores, labels, 5) == 4
    assert topk_accuracy(scores[:0], labels[:0]) == {1: 0.0, 5: 0.0}
    with pytest.raises(ValueError, match="labels"):
        topk_correct(scores, labels[:2], 1)
    with pytest.raises(ValueError):
        topk_correct(scores[0], labels[:1], 1)
