"""harness_tf.device: GPU when present, HARNESS_DEVICE overrides (cpu hides GPUs)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import tensorflow as tf

from harness.errors import UsageError
from harness_tf.device import auto_device, resolve_device

HAS_GPU = bool(tf.config.list_logical_devices("GPU"))


def test_default_is_the_gpu_when_present(monkeypatch):
    monkeypatch.delenv("HARNESS_DEVICE", raising=False)
    assert auto_device() == ("/GPU:0" if HAS_GPU else "/CPU:0")


def test_env_and_names_are_parsed_and_checked(monkeypatch):
    monkeypatch.setenv("HARNESS_DEVICE", "cpu")
    assert auto_device() == "/CPU:0" and resolve_device(None) == "/CPU:0"
    assert resolve_device("CPU:0") == "/CPU:0" and resolve_device("/device:cpu:0") == "/CPU:0"
    monkeypatch.setenv("HARNESS_DEVICE", "gpu-please")
    with pytest.raises(UsageError, match="HARNESS_DEVICE='gpu-please' is not a TensorFlow device"):
        auto_device()
    with pytest.raises(UsageError, match="device 'mps' is not a TensorFlow device"):
        resolve_device("mps")
    if not HAS_GPU:
        monkeypatch.setenv("HARNESS_DEVICE", "cuda")
        with pytest.raises(UsageError, match="TensorFlow sees no GPU") as info:
            auto_device()
        assert "unset HARNESS_DEVICE" in info.value.hint
        with pytest.raises(UsageError, match="device 'gpu:0' but TensorFlow sees no GPU"):
            resolve_device("gpu:0")


def test_harness_device_cpu_hides_gpus_from_tensorflow():
    code = ("import harness_tf.device, tensorflow as tf; "
            "print(len(tf.config.get_visible_devices('GPU')), harness_tf.device.auto_device())")
    env = {**os.environ, "HARNESS_DEVICE": "cpu", "TF_CPP_MIN_LOG_LEVEL": "3"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["0", "/CPU:0"]
