"""``digits``: scikit-learn's bundled 8x8 handwritten digits (1797 real images, no download).

Pixel values 0..16 are scaled to 0..255; the train/val/test split is stratified
and fixed by ``seed``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .plan import ArraySplit, DatasetPlan
from .splitting import split_indices


@dataclass
class DigitsSource:
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    seed: int = 0
    params: dict[str, Any] = field(init=False)

    def __post_init__(self) -> None:
        self.params = {"val_fraction": self.val_fraction, "test_fraction": self.test_fraction, "seed": self.seed}

    def plan(self, *, skip_bad: bool = False) -> DatasetPlan:
        from sklearn.datasets import load_digits

        digits = load_digits()
        images = np.round(digits.images * (255.0 / 16.0)).clip(0, 255).astype(np.uint8)[..., None]
        labels = digits.target.astype(np.int64)
        indices = split_indices(labels, self.val_fraction, self.test_fraction, self.seed)
        return DatasetPlan(
            class_ids=[str(d) for d in range(10)],
            class_names=[str(d) for d in range(10)],
            image_size=(8, 8),
            channels=1,
            splits={name: ArraySplit(images[idx], labels[idx]) for name, idx in indices.items()},
            info={"source": "sklearn.datasets.load_digits", "total_images": int(len(labels))},
        )


def digits(val_fraction: float = 0.15, test_fraction: float = 0.15, seed: int = 0) -> DigitsSource:
    return DigitsSource(val_fraction, test_fraction, seed)
