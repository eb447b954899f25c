"""Top-k accuracy in numpy: what trainers report per batch and scoring reports per submission."""

from __future__ import annotations

from typing import Iterable

import numpy as np


def topk_correct(scores: np.ndarray, labels: np.ndarray, k: int) -> int:
    """How many rows of ``scores`` (N, classes) have their label among the top ``k``.

    ``k`` larger than the number of classes counts every row as correct.
    """
    scores = np.asarray(scores)
    labels = np.asarray(labels).reshape(-1)
    if scores.ndim != 2 or len(scores) != len(labels):
        raise ValueError(f"scores must be (N, classes) matching {len(labels)} labels, got {scores.shape}")
    if k >= scores.shape[1]:
        return int(len(labels))
    top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    return int((top == labels[:, None]).any(axis=1).sum())


def topk_accuracy(scores: np.ndarray, labels: np.ndarray, ks: Iterable[int] = (1, 5)) -> dict[int, float]:
    """{k: fraction of rows whose label is among the top k scores}."""
    n = max(1, len(np.asarray(labels).reshape(-1)))
    return {k: topk_correct(scores, labels, k) / n for k in ks}
