"""Seeded, stratified train/val/test splitting shared by the datasets that need it."""

from __future__ import annotations

import numpy as np

from ..errors import UsageError


def split_indices(labels: np.ndarray, val_fraction: float, test_fraction: float, seed: int) -> dict[str, np.ndarray]:
    """Stratified index sets {'train', 'val', 'test'} (empty ones left out), fixed by ``seed``."""
    for field, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0.0 <= value < 1.0:
            raise UsageError(f"{field} must be in [0, 1), got {value}")
    if val_fraction + test_fraction >= 1.0:
        raise UsageError(f"val_fraction + test_fraction must be below 1, got {val_fraction + test_fraction}")
    rng = np.random.default_rng(seed)
    parts: dict[str, list[np.ndarray]] = {"train": [], "val": [], "test": []}
    for label in np.unique(labels):
        members = np.flatnonzero(labels == label)
        rng.shuffle(members)
        n_test = int(round(len(members) * test_fraction))
        n_val = int(round(len(members) * val_fraction))
        parts["test"].append(members[:n_test])
        parts["val"].append(members[n_test : n_test + n_val])
        parts["train"].append(members[n_test + n_val :])
    result = {name: np.sort(np.concatenate(chunks)) for name, chunks in parts.items()}
    return {name: idx for name, idx in result.items() if len(idx) or name == "train"}
