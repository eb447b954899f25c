"""Device selection for the PyTorch plugins."""

from __future__ import annotations

import os

import torch

from harness.errors import UsageError

DEVICE_ENV = "HARNESS_DEVICE"


def auto_device() -> torch.device:
    """CUDA when available, else CPU; ``HARNESS_DEVICE`` (e.g. ``cpu``, ``cuda:1``) overrides."""
    requested = os.environ.get(DEVICE_ENV, "").strip()
    if not requested:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(requested)
    except (RuntimeError, ValueError) as exc:
        raise UsageError(f"{DEVICE_ENV}={requested!r} is not a torch device",
                         hint="use cpu, cuda, cuda:0, mps, ...") from exc
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UsageError(f"{DEVICE_ENV}={requested!r} but CUDA is not available",
                             hint=f"unset {DEVICE_ENV} or set it to cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise UsageError(f"{DEVICE_ENV}={requested!r} but only {torch.cuda.device_count()} CUDA device(s) exist")
    if device.type == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise UsageError(f"{DEVICE_ENV}={requested!r} but MPS is not available", hint=f"unset {DEVICE_ENV}")
    return device


def model_device(model: torch.nn.Module) -> torch.device:
    """Device of the model's first parameter or buffer; CPU for a model with neither."""
    for tensor in model.parameters():
        return tensor.device
    for tensor in model.buffers():
        return tensor.device
    return torch.device("cpu")
