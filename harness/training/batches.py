"""The data boundary of every trainer: arrays from a split, labels checked, seeds derived, batches cut."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import UsageError


def split_arrays(split: Any) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 N,H,W,C images, int64 labels) from an ImageSplit-like object or a pair."""
    if hasattr(split, "images") and hasattr(split, "labels"):
        images, labels = split.images, split.labels
    elif isinstance(split, (tuple, list)) and len(split) == 2:
        images, labels = split
    else:
        raise UsageError("expected a split with .images/.labels or an (images, labels) pair, "
                         f"got {type(split).__name__}")
    images, labels = np.asarray(images), np.asarray(labels).astype(np.int64).reshape(-1)
    if images.dtype != np.uint8 or images.ndim != 4:
        raise UsageError(f"images must be uint8 N,H,W,C, got {images.dtype} with shape {images.shape}")
    if len(images) != len(labels):
        raise UsageError(f"{len(images)} images but {len(labels)} labels")
    return images, labels


def check_labels(labels: np.ndarray, num_classes: int | None) -> None:
    """UsageError unless every label is a class index of the model."""
    if num_classes is not None and len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        raise UsageError(f"labels must be in [0, {num_classes}), got {labels.min()}..{labels.max()}")


def derive_seed(*parts: int) -> int:
    """A 63-bit seed derived from integers (run seed, epoch, stream)."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1, dtype=np.uint64)[0] >> 1)


def batch_indices(order: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """Chunks of ``order``; a last chunk of one image joins the previous one (BatchNorm needs two)."""
    order = np.asarray(order)
    chunks = [order[start:start + batch_size] for start in range(0, len(order), batch_size)]
    if len(chunks) > 1 and len(chunks[-1]) == 1:
        last = chunks.pop()
        chunks[-1] = np.concatenate([chunks[-1], last])
    return chunks
