"""auto_device: CUDA when available, HARNESS_DEVICE overrides."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from harness.errors import UsageError  # noqa: E402
from harness_torch.device import auto_device, model_device  # noqa: E402


def test_default_is_cuda_when_available(monkeypatch):
    monkeypatch.delenv("HARNESS_DEVICE", raising=False)
    assert auto_device().type == ("cuda" if torch.cuda.is_available() else "cpu")


def test_env_overrides(monkeypatch):
    monkeypatch.setenv("HARNESS_DEVICE", "cpu")
    assert auto_device() == torch.device("cpu")


def test_bad_env_values_are_usage_errors(monkeypatch):
    monkeypatch.setenv("HARNESS_DEVICE", "gpu-please")
    with pytest.raises(UsageError, match="HARNESS_DEVICE"):
        auto_device()
    if not torch.cuda.is_available():
        monkeypatch.setenv("HARNESS_DEVICE", "cuda")
        with pytest.raises(UsageError, match="CUDA is not available"):
            auto_device()


def test_model_device():
    assert model_device(torch.nn.Linear(2, 2)) == torch.device("cpu")
    assert model_device(torch.nn.ReLU()) == torch.device("cpu")


def test_named_devices_are_checked_like_the_environment(monkeypatch):
    from harness_torch.device import resolve_device

    monkeypatch.setenv("HARNESS_DEVICE", "cpu")
    assert resolve_device("auto") == torch.device("cpu") and resolve_device(None) == torch.device("cpu")
    assert resolve_device("cpu") == torch.device("cpu")
    with pytest.raises(UsageError, match="device 'gpu-please' is not a torch device"):
        resolve_device("gpu-please")
    if not torch.cuda.is_available():
        with pytest.raises(UsageError, match="device 'cuda' but CUDA is not available"):
            resolve_device("cuda")
