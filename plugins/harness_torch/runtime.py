"""The PyTorch side of the workflow (:class:`harness.frameworks.Runtime`).

The batching loops are :class:`harness.frameworks.RuntimeBase`'s; :class:`TorchRuntime` holds the
torch calls, and its bound methods are this module's functions.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
import torch.nn.functional as F

from harness.chunks import spans
from harness.errors import PluginError
from harness.frameworks import RUNTIME_FUNCTIONS, RuntimeBase

from .attacks import eval_mode
from .device import auto_device, model_device
from .evaluate import accuracy  # noqa: F401 - exported: a runtime function (RUNTIME_FUNCTIONS)
from .batches import device_batches, images_to_tensor

name = "torch"
weights_file = "weights.pt"

__all__ = list(RUNTIME_FUNCTIONS)


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


class TorchRuntime(RuntimeBase):
    """The hooks of :class:`harness.frameworks.RuntimeBase` in torch (batches N,C,H,W on the model's device)."""

    name = name
    weights_file = weights_file

    def device(self, model: torch.nn.Module) -> torch.device:
        return model_device(model)

    def images_batch(self, images: np.ndarray, device: torch.device | None) -> torch.Tensor:
        return images_to_tensor(images, device)

    def image_batches(self, images: np.ndarray, device: torch.device | None, batch_size: int) -> Iterator[torch.Tensor]:
        return (x for x, _ in device_batches(images, spans(len(images), batch_size), device))

    def float_batch(self, images: np.ndarray, device: torch.device) -> torch.Tensor:
        return _float_batch(images, device).permute(0, 3, 1, 2)

    def labels_batch(self, labels: np.ndarray, device: torch.device) -> torch.Tensor:
        return torch.as_tensor(labels, device=device)

    @contextlib.contextmanager
    def inference(self, model: torch.nn.Module) -> Iterator[None]:
        with eval_mode(model), torch.no_grad():
            yield

    def gradient_mode(self, model: torch.nn.Module) -> Any:
        return eval_mode(model)

    def forward(self, model: torch.nn.Module, x: torch.Tensor) -> np.ndarray:
        return model(x).float().cpu().numpy()

    def gradient(self, model, images, targets, device, objective):
        x = _float_batch(images, device).requires_grad_(True)
        t = torch.as_tensor(targets, device=device)
        logits = model(x.permute(0, 3, 1, 2)).float()
        if objective == "loss":
            value = F.cross_entropy(logits, t, reduction="sum")
        else:
            value = logits.gather(1, t[:, None]).sum()
        (grad,) = torch.autograd.grad(value, x, allow_unused=True) if value.requires_grad else (None,)
        return np.zeros(x.shape, np.float32) if grad is None else grad.detach().cpu().numpy()

    def to_nhwc(self, x: torch.Tensor) -> np.ndarray:
        return x.detach().permute(0, 2, 3, 1).cpu().numpy()

    def from_uint8(self, images: np.ndarray, like: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(images).to(like.device).permute(0, 3, 1, 2).float().div_(255.0)

    def seeded_generator(self, seed: int) -> torch.Generator:
        return torch.Generator().manual_seed(int(seed))

    def numpy_seed(self, generator: torch.Generator) -> int:
        return int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device).item())


def _float_batch(images: np.ndarray, device: torch.device) -> torch.Tensor:
    """float32 N,H,W,C numpy in [0, 1] -> N,H,W,C tensor on ``device`` (permuted by the caller)."""
    return torch.from_numpy(np.array(images, dtype=np.float32, copy=True)).to(device)


#: the runtime object whose hooks and loops these functions are
RUNTIME = TorchRuntime()
(predict_logits, predict_logits_float, adversarial_images, augment_images, input_gradients,
 class_gradients) = RUNTIME.batching_functions()


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


def activations(model: torch.nn.Module, images: np.ndarray, count: int = 2,
                batch_size: int = 64) -> list[tuple[str, np.ndarray]]:
    """(name, float32 N,h,w,c output) of the first ``count`` ``nn.Conv2d`` layers, in registration order, for
    float [0, 1] N,H,W,C ``images`` (caught by forward hooks; model in inference mode)."""
    from harness.errors import UsageError

    convs = [(name, module) for name, module in model.named_modules() if isinstance(module, torch.nn.Conv2d)]
    if not convs:
        raise UsageError("activations: the model has no nn.Conv2d layer")
    convs = convs[: max(1, int(count))]
    device = model_device(model)
    batch: dict[str, np.ndarray] = {}

    def keep(name: str, output: torch.Tensor) -> None:  # None: the hook leaves the output as it is
        if name not in batch:  # a layer called twice in one forward pass keeps its first output
            batch[name] = output.detach().float().permute(0, 2, 3, 1).cpu().numpy()

    handles = [module.register_forward_hook(lambda _module, _inputs, output, name=name: keep(name, output))
               for name, module in convs]
    captured: dict[str, list[np.ndarray]] = {name: [] for name, _ in convs}
    try:
        with eval_mode(model), torch.no_grad():
            for start in range(0, len(images), batch_size):
                batch.clear()
                model(_float_batch(images[start : start + batch_size], device).permute(0, 3, 1, 2))
                for name in [n for n in captured if n not in batch]:  # registered but not run: not a map
                    del captured[name]
                for name, parts in captured.items():
                    parts.append(batch[name])
    finally:
        for handle in handles:
            handle.remove()
    return [(name, np.concatenate(parts).astype(np.float32, copy=False) if parts
             else np.zeros((0, 0, 0, 0), np.float32)) for name, parts in captured.items()]
