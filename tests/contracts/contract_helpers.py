"""The contract suite's shared pieces: every registered plugin variant as test cases, tiny batches and
tiny models per framework (built once per session), and a skip for frameworks that are not installed."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from harness import registry

#: tiny inputs keep the suite fast: (H, W, C)
SHAPE = (8, 8, 3)
NUM_CLASSES = 3


def variant_cases(kind: str) -> list:
    """One pytest case per registered plugin of ``kind`` and framework variant, id ``name[framework]``."""
    return [pytest.param(name, framework, id=f"{name}[{framework}]")
            for name in registry.list_plugins(kind) for framework in registry.variants(kind, name)]


def require(framework: str) -> None:
    """Skip the test when ``framework``'s packages are not installed (``any`` needs nothing)."""
    needs = {"torch": ("torch",), "tf": ("tensorflow", "tf_keras")}.get(framework, ())
    missing = [module for module in needs if importlib.util.find_spec(module) is None]
    if missing:
        pytest.skip(f"{missing[0]} is not installed")
    if framework == "tf":
        import harness_tf  # noqa: F401 - selects Keras 2 (TF_USE_LEGACY_KERAS) before TensorFlow starts
        import tensorflow as tf

        tf.get_logger().setLevel("ERROR")


def uint8_batch(n: int = 2, seed: int = 0) -> np.ndarray:
    """``n`` random uint8 (N, H, W, C) images."""
    return np.random.default_rng(seed).integers(0, 256, (n, *SHAPE), dtype=np.uint8)


def float_batch(framework: str, n: int = 2, seed: int = 0):
    """``n`` random float32 images in [0, 1] in ``framework``'s layout (torch N,C,H,W; tf N,H,W,C)."""
    x = uint8_batch(n, seed).astype(np.float32) / 255.0
    if framework == "torch":
        import torch

        return torch.from_numpy(x).permute(0, 3, 1, 2).contiguous()
    import tensorflow as tf

    return tf.constant(x)


def to_numpy(x, framework: str) -> np.ndarray:
    """A batch back as numpy (N, H, W, C)."""
    x = np.asarray(x.detach().cpu() if framework == "torch" else x)
    return x.transpose(0, 2, 3, 1) if framework == "torch" else x


_MODELS: dict[str, object] = {}


def tiny_model(framework: str):
    """The smallest built-in model of ``framework`` on (8, 8, 3) inputs, built once per session."""
    if framework not in _MODELS:
        name = {"torch": "small-cnn", "tf": "nsl-cnn"}[framework]
        _MODELS[framework] = registry.create_backbone(name, framework=framework, num_classes=NUM_CLASSES,
                                                      input_shape=SHAPE)
    return _MODELS[framework]
