"""Loss and accuracy of a torch model on uint8 NHWC images, clean or under an attack plugin.

Batches reach the model through :mod:`harness_torch.batches` (the data boundary; :func:`images_to_tensor`
is re-exported here).
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

from harness.chunks import spans
from harness.metrics import topk_correct

from .attacks import eval_mode
from .batches import device_batches, images_to_tensor  # noqa: F401 - images_to_tensor re-exported
from .device import model_device


def accuracy(
    model: torch.nn.Module,
    images: np.ndarray,
    labels: np.ndarray,
    attack: Callable[..., torch.Tensor] | None = None,
    batch_size: int = 256,
) -> dict[str, Any]:
    """Loss, top-1 and top-5 of ``model`` on ``images``, attacked batch by batch when ``attack`` is given."""
    device = model_device(model)
    total_loss, top1, top5 = 0.0, 0, 0
    labels = np.asarray(labels, dtype=np.int64)
    with eval_mode(model):
        for x, y in device_batches(images, spans(len(labels), batch_size), device, labels):
            if attack is not None:
                x = attack(model, x, y)
            with torch.no_grad():
                logits = model(x).float()
            total_loss += float(F.cross_entropy(logits, y, reduction="sum"))
            scores, y_numpy = logits.cpu().numpy(), y.cpu().numpy()
            top1 += topk_correct(scores, y_numpy, 1)
            top5 += topk_correct(scores, y_numpy, 5)
    n = max(1, len(labels))
    return {"loss": total_loss / n, "top1": top1 / n, "top5": top5 / n, "count": len(labels)}
