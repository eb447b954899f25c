"""Accuracy of a torch model on uint8 NHWC images, clean or under an attack plugin."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch

from harness.training import topk_correct

from .attacks import eval_mode
from .train import images_to_tensor


def accuracy(
    model: torch.nn.Module,
    images: np.ndarray,
    labels: np.ndarray,
    attack: Callable[..., torch.Tensor] | None = None,
    batch_size: int = 256,
) -> dict[str, Any]:
    """Top-1/top-5 of ``model`` on ``images`` (uint8 NHWC), attacked batch by batch when ``attack`` is given."""
    device = next(model.parameters()).device
    top1 = top5 = 0
    with eval_mode(model):
        for start in range(0, len(labels), batch_size):
            x = images_to_tensor(np.asarray(images[start : start + batch_size]), device)
            y = torch.from_numpy(np.array(labels[start : start + batch_size], dtype=np.int64)).to(device)
            if attack is not None:
                x = attack(model, x, y)
            with torch.no_grad():
                scores = model(x).float().cpu().numpy()
            top1 += topk_correct(scores, y.cpu().numpy(), 1)
            top5 += topk_correct(scores, y.cpu().numpy(), 5)
    n = len(labels)
    return {"top1": top1 / n, "top5": top5 / n, "count": n}
