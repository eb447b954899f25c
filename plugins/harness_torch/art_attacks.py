"""APGD-CE, APGD-T and Square (adversarial-robustness-toolbox) for torch models: the layout conversion
at ART's boundary; the attacks themselves are :mod:`harness.attacks.art`. Registered as ``art-apgd-ce``,
``art-apgd-t``, ``art-square`` (the plain names are the native :mod:`harness_torch.autoattack`)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from harness.attacks.art import art_attack_classes

__all__ = ["APGDCE", "APGDT", "Square", "TorchLayout"]


class TorchLayout:
    """float32 N,C,H,W tensors (any device) <-> float32 N,H,W,C numpy."""

    def images_to_numpy(self, x: Any) -> np.ndarray:
        if isinstance(x, torch.Tensor):
            return x.detach().permute(0, 2, 3, 1).cpu().numpy()
        return np.asarray(x, dtype=np.float32).transpose(0, 2, 3, 1)

    def labels_to_numpy(self, y: Any) -> np.ndarray:
        y = y.detach().cpu().numpy() if isinstance(y, torch.Tensor) else np.asarray(y)
        return y.astype(np.int64, copy=False)

    def images_from_numpy(self, images: np.ndarray, like: Any) -> torch.Tensor:
        out = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2)
        return out.to(like.device) if isinstance(like, torch.Tensor) else out


APGDCE, APGDT, Square = art_attack_classes("torch", TorchLayout(), __name__)
