"""Device selection for the PyTorch plugins."""

from __future__ import annotations

import os

import torch

from harness.errors import UsageError

DEVICE_ENV = "HARNESS_DEVICE"


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """``"auto"``/None: ``HARNESS_DEVICE`` if set, else CUDA when available, else CPU; otherwise ``device``.

    Every device, named or from the environment, is checked to exist: a UsageError says why not.
    """
    if device is None or str(device) == "auto":
        requested = os.environ.get(DEVICE_ENV, "").strip()
        if not requested:
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return _checked(requested, f"{DEVICE_ENV}={requested!r}", hint_unset=True)
    return _checked(str(device), f"device {str(device)!r}", hint_unset=False)


def auto_device() -> torch.device:
    """CUDA when available, else CPU; ``HARNESS_DEVICE`` (e.g. ``cpu``, ``cuda:1``) overrides."""
    return resolve_device("auto")


def _checked(requested: str, what: str, hint_unset: bool) -> torch.device:
    fallback = f"unset {DEVICE_ENV} or set it to cpu" if hint_unset else "use auto or cpu"
    try:
        device = torch.device(requested)
    except (RuntimeError, ValueError) as exc:
        raise UsageError(f"{what} is not a torch device", hint="use auto, cpu, cuda, cuda:0, mps") from exc
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UsageError(f"{what} but CUDA is not available", hint=fallback)
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise UsageError(f"{what} but only {torch.cuda.device_count()} CUDA device(s) exist")
    if device.type == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise UsageError(f"{what} but MPS is not available", hint=fallback)
    return device


def model_device(model: torch.nn.Module) -> torch.device:
    """Device of the model's first parameter or buffer; CPU for a model with neither."""
    for tensor in model.parameters():
        return tensor.device
    for tensor in model.buffers():
        return tensor.device
    return torch.device("cpu")
