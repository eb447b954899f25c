"""A framework-neutral augmentation following the harness contract.

``aug(images, *, generator)``: images uint8 N,H,W,C numpy, generator a ``numpy.random.Generator``;
returns uint8 N,H,W,C of the same shape.
"""

import numpy as np


class InvertPatch:
    def __init__(self, severity: int = 3, p: float = 1.0):
        if not 1 <= severity <= 5:
            raise ValueError(f"severity must be 1..5, got {severity}")
        self.fraction = 0.15 * severity  # patch side as a fraction of the image side
        self.p = float(p)

    def __call__(self, images: np.ndarray, *, generator: np.random.Generator) -> np.ndarray:
        out = np.array(images, dtype=np.uint8, copy=True)
        n, height, width = out.shape[:3]
        side_h, side_w = max(1, round(height * self.fraction)), max(1, round(width * self.fraction))
        chosen = generator.random(n) < self.p
        tops = generator.integers(0, height - side_h + 1, size=n)
        lefts = generator.integers(0, width - side_w + 1, size=n)
        for i in np.flatnonzero(chosen):
            patch = out[i, tops[i]:tops[i] + side_h, lefts[i]:lefts[i] + side_w]
            out[i, tops[i]:tops[i] + side_h, lefts[i]:lefts[i] + side_w] = 255 - patch
        return out
