"""The PyTorch side of the workflow (:class:`harness.frameworks.Runtime`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from harness.errors import PluginError

from .attacks import eval_mode
from .device import auto_device, model_device
from .evaluate import accuracy, images_to_tensor

name = "torch"
weights_file = "weights.pt"

__all__ = ["accuracy", "adversarial_images", "art_classifier", "augment_images", "class_gradients", "configure",
           "device_name", "gradcam", "input_gradients", "load_weights", "predict_logits", "predict_logits_float",
           "save_weights"]


def configure(threads: int | None = None, seed: int | None = None) -> None:
    """Intra-op threads and the global seeds (torch, and CUDA when present)."""
    if threads is not None:
        torch.set_num_threads(max(1, int(threads)))
    if seed is not None:
        torch.manual_seed(int(seed))


def device_name() -> str:
    return str(auto_device())


def save_weights(model: torch.nn.Module, path: Path) -> None:
    torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, path)


def load_weights(model: torch.nn.Module, path: Path) -> torch.nn.Module:
    state = torch.load(path, map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    model.to(auto_device())
    model.eval()
    return model


def _batched_logits(model: torch.nn.Module, images: np.ndarray, to_tensor, batch_size: int) -> np.ndarray:
    """float32 logits of ``images`` in eval mode, ``batch_size`` at a time; ``to_tensor(batch, device)`` makes
    each batch the model's N,C,H,W input."""
    device = model_device(model)
    outputs = []
    with eval_mode(model), torch.no_grad():
        for start in range(0, len(images), batch_size):
            outputs.append(model(to_tensor(images[start : start + batch_size], device)).float().cpu().numpy())
    if not outputs:
        return np.zeros((0, 0), dtype=np.float32)
    return np.concatenate(outputs).astype(np.float32, copy=False)


def predict_logits(model: torch.nn.Module, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
    return _batched_logits(model, images, images_to_tensor, batch_size)


def adversarial_images(model: torch.nn.Module, images: np.ndarray, labels: np.ndarray | None, attack: Any,
                       batch_size: int = 256) -> np.ndarray:
    device = model_device(model)
    outputs = []
    for start in range(0, len(images), batch_size):
        x = images_to_tensor(images[start : start + batch_size], device)
        y = None if labels is None else torch.as_tensor(np.asarray(labels[start : start + batch_size]), device=device)
        outputs.append(attack(model, x, y).detach().permute(0, 2, 3, 1).cpu().numpy())
    return np.concatenate(outputs).astype(np.float32, copy=False) if outputs else np.zeros((0,), np.float32)


def augment_images(augmentations: list[Any], images: np.ndarray, seed: int, batch_size: int = 256) -> np.ndarray:
    generator = torch.Generator().manual_seed(int(seed))
    outputs = []
    for start in range(0, len(images), batch_size):
        x = images_to_tensor(images[start : start + batch_size])
        for augmentation in augmentations:
            x = augmentation(x, generator=generator)
        outputs.append(np.clip(np.rint(x.permute(0, 2, 3, 1).numpy() * 255.0), 0, 255).astype(np.uint8))
    return np.concatenate(outputs) if outputs else np.asarray(images).copy()


def _float_batch(images: np.ndarray, device: torch.device) -> torch.Tensor:
    """float32 N,H,W,C numpy in [0, 1] -> N,H,W,C tensor on ``device`` (permuted by the caller)."""
    return torch.from_numpy(np.array(images, dtype=np.float32, copy=True)).to(device)


def predict_logits_float(model: torch.nn.Module, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
    return _batched_logits(model, images, lambda batch, device: _float_batch(batch, device).permute(0, 3, 1, 2),
                           batch_size)


def _input_gradients(model: torch.nn.Module, images: np.ndarray, targets: np.ndarray, objective,
                     batch_size: int) -> np.ndarray:
    """Gradient of ``objective(logits, targets)`` (a scalar per batch) w.r.t. float N,H,W,C inputs; zeros where none."""
    device = model_device(model)
    outputs = []
    with eval_mode(model):
        for start in range(0, len(images), batch_size):
            x = _float_batch(images[start : start + batch_size], device).requires_grad_(True)
            t = torch.as_tensor(np.asarray(targets[start : start + batch_size], dtype=np.int64), device=device)
            value = objective(model(x.permute(0, 3, 1, 2)).float(), t)
            (grad,) = torch.autograd.grad(value, x, allow_unused=True) if value.requires_grad else (None,)
            outputs.append(np.zeros(x.shape, np.float32) if grad is None else grad.detach().cpu().numpy())
    return np.concatenate(outputs).astype(np.float32, copy=False) if outputs else np.zeros((0,), np.float32)


def input_gradients(model: torch.nn.Module, images: np.ndarray, labels: np.ndarray,
                    batch_size: int = 256) -> np.ndarray:
    return _input_gradients(model, images, labels,
                            lambda logits, y: F.cross_entropy(logits, y, reduction="sum"), batch_size)


class _ChannelsLast(torch.nn.Module):
    """``model`` fed N,H,W,C: what ART hands over with channels_first=False."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x.permute(0, 3, 1, 2))


def art_classifier(model: torch.nn.Module, num_classes: int, input_shape: tuple[int, int, int]) -> Any:
    """ART ``PyTorchClassifier`` on float32 N,H,W,C in [0, 1]; ART runs the model in eval mode."""
    try:
        from art.estimators.classification import PyTorchClassifier
    except ImportError as exc:
        raise PluginError("the attack needs adversarial-robustness-toolbox, which is not installed",
                          hint="pip install 'harness[robust]'") from exc
    device = model_device(model)
    return PyTorchClassifier(model=_ChannelsLast(model), loss=torch.nn.CrossEntropyLoss(),
                             input_shape=tuple(int(d) for d in input_shape), nb_classes=int(num_classes),
                             clip_values=(0.0, 1.0), channels_first=False,
                             device_type="gpu" if device.type == "cuda" else "cpu")


def class_gradients(model: torch.nn.Module, images: np.ndarray, class_ids: np.ndarray,
                    batch_size: int = 256) -> np.ndarray:
    return _input_gradients(model, images, class_ids,
                            lambda logits, ids: logits.gather(1, ids[:, None]).sum(), batch_size)


def _conv_layer(model: torch.nn.Module, layer: str | None) -> torch.nn.Module:
    """The ``nn.Conv2d`` named ``layer`` (None: the last one registered)."""
    from harness.errors import UsageError

    convs = {name: module for name, module in model.named_modules() if isinstance(module, torch.nn.Conv2d)}
    if layer is None:
        if not convs:
            raise UsageError("Grad-CAM: the model has no nn.Conv2d layer")
        return list(convs.values())[-1]
    if layer not in convs:
        raise UsageError(f"Grad-CAM: no nn.Conv2d layer '{layer}' (layers: {', '.join(convs) or 'none'})")
    return convs[layer]


def gradcam(model: torch.nn.Module, images: np.ndarray, class_ids: np.ndarray, layer: str | None = None,
            batch_size: int = 64) -> np.ndarray:
    device = model_device(model)
    conv = _conv_layer(model, layer)
    captured: list[torch.Tensor] = []
    handle = conv.register_forward_hook(lambda _module, _inputs, output: captured.append(output))
    outputs = []
    try:
        with eval_mode(model):
            for start in range(0, len(images), batch_size):
                captured.clear()
                x = _float_batch(images[start : start + batch_size], device).permute(0, 3, 1, 2)
                ids = torch.as_tensor(np.asarray(class_ids[start : start + batch_size], dtype=np.int64), device=device)
                with torch.enable_grad():
                    x.requires_grad_(True)  # the activation has a gradient even with frozen weights
                    score = model(x).float().gather(1, ids[:, None]).sum()
                    activation = captured[-1]
                    (grad,) = torch.autograd.grad(score, activation)
                cam = F.relu((grad.mean(dim=(2, 3), keepdim=True) * activation).sum(dim=1, keepdim=True))
                cam = F.interpolate(cam.detach().float(), size=x.shape[2:], mode="bilinear", align_corners=False)[:, 0]
                peak = cam.flatten(1).amax(dim=1)[:, None, None]
                peak = torch.where(peak > 0, peak, torch.ones_like(peak))  # an all-zero map stays zero
                outputs.append((cam / peak).cpu().numpy())
    finally:
        handle.remove()
    if not outputs:
        return np.zeros((0,) + tuple(np.shape(images)[1:3]), np.float32)
    return np.concatenate(outputs).astype(np.float32, copy=False)
