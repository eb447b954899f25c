"""Loss and accuracy of a torch model on uint8 NHWC images, clean or under an attack plugin.

Also the data boundary: :func:`images_to_tensor` turns harness arrays into model input.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

from harness.metrics import topk_correct

from .attacks import eval_mode
from .device import model_device


def images_to_tensor(images: np.ndarray, device: torch.device | str | None = None) -> torch.Tensor:
    """uint8 N,H,W,C numpy -> float32 N,C,H,W in [0, 1] on ``device`` (converted there).

    On the CPU numpy converts (one pass, one thread): torch's intra-op threads gain nothing on this
    memory-bound step and, where the cores are shared, spin at its barriers (epochs 7x slower).
    """
    array = np.ascontiguousarray(images)
    if device is None or torch.device(device).type == "cpu":
        return torch.from_numpy(np.divide(array, np.float32(255.0), dtype=np.float32)).permute(0, 3, 1, 2)
    if not array.flags.writeable:  # read-only memory-mapped cache: torch wants its own copy
        array = array.copy()
    tensor = torch.from_numpy(array).to(device, non_blocking=True)
    return tensor.permute(0, 3, 1, 2).float().div_(255.0)


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
    with eval_mode(model):
        for start in range(0, len(labels), batch_size):
            x = images_to_tensor(images[start : start + batch_size], device)
            y_numpy = np.array(labels[start : start + batch_size], dtype=np.int64)
            y = torch.from_numpy(y_numpy).to(device)
            if attack is not None:
                x = attack(model, x, y)
            with torch.no_grad():
                logits = model(x).float()
            total_loss += float(F.cross_entropy(logits, y, reduction="sum"))
            scores = logits.cpu().numpy()
            top1 += topk_correct(scores, y_numpy, 1)
            top5 += topk_correct(scores, y_numpy, 5)
    n = max(1, len(labels))
    return {"loss": total_loss / n, "top1": top1 / n, "top5": top5 / n, "count": len(labels)}
