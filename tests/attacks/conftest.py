"""One trained digits model per framework, behind :class:`Framework`: the attack tests run once per framework.

``fw`` is parametrized over torch and tf; a framework that is not installed is skipped.
"""

from __future__ import annotations

import importlib.util
import warnings
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import pytest

FRAMEWORKS = ("torch", "tf")
N = 200
_cache: dict[str, "Framework"] = {}

warnings.filterwarnings("ignore", "CUDA initialization", UserWarning)


@dataclass
class Framework:
    """A framework's trained digits model, a test batch in its layout, and the few calls tests need."""

    name: str
    attacks: Any  # harness_torch.attacks or harness_tf.attacks
    model: Any
    x: Any  # float32 images in [0, 1], the framework's layout
    y: Any  # int64 labels
    predict: Callable[[Any, Any], np.ndarray]  # (model, x) -> top class per example
    numpy: Callable[[Any], np.ndarray]  # framework images -> float32 N,H,W,C numpy
    generator: Callable[[int], Any]
    kl_loss: Callable[[Any], Callable[..., Any]]  # clean probabilities -> loss_fn in the framework's order
    softmax: Callable[[Any], Any]

    def accuracy(self, x: Any, y: Any = None) -> float:
        return float(np.mean(self.predict(self.model, x) == np.asarray(self.y if y is None else y)))

    def equal(self, a: Any, b: Any) -> bool:
        return np.array_equal(self.numpy(a), self.numpy(b))


def _digits():
    from harness.data import load_dataset

    ds = load_dataset("digits", val_fraction=0.0, test_fraction=0.22)
    train, test = ds.split("train"), ds.split("test")
    return (np.array(train.images), np.array(train.labels, np.int64), np.array(test.images[:N]),
            np.array(test.labels[:N], np.int64))


def _torch() -> Framework:
    import torch
    import torch.nn.functional as F

    from harness import registry
    from harness_torch import attacks

    torch.set_num_threads(1)
    train_x, train_y, test_x, test_y = _digits()
    torch.manual_seed(0)
    model = registry.create_backbone("small-cnn", framework="torch", num_classes=10, input_shape=(8, 8, 1),
                                     width=16, hidden=64)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    x = torch.from_numpy(train_x).permute(0, 3, 1, 2).float() / 255
    y = torch.from_numpy(train_y)
    generator = torch.Generator().manual_seed(0)
    for _ in range(10):
        for batch in torch.randperm(len(y), generator=generator).split(64):
            optimizer.zero_grad()
            F.cross_entropy(model(x[batch]), y[batch]).backward()
            optimizer.step()
    model.eval()

    def predict(m, images):
        with torch.no_grad():
            return m(images).argmax(1).numpy()

    def kl_loss(p_clean):
        return lambda logits, _: F.kl_div(torch.log_softmax(logits, 1), p_clean, reduction="none").sum(1)

    def softmax(images):
        with torch.no_grad():
            return torch.softmax(model(images), 1)

    return Framework("torch", attacks, model, torch.from_numpy(test_x).permute(0, 3, 1, 2).float() / 255,
                     torch.from_numpy(test_y), predict, lambda t: t.detach().permute(0, 2, 3, 1).numpy(),
                     lambda seed: torch.Generator().manual_seed(seed), kl_loss, softmax)


def _tf() -> Framework:
    import harness_tf  # noqa: F401 - Keras 2 and the import order TensorFlow needs, before tensorflow
    import tensorflow as tf
    import tf_keras as keras

    from harness import registry
    from harness_tf import attacks

    tf.get_logger().setLevel("ERROR")
    train_x, train_y, test_x, test_y = _digits()
    keras.utils.set_random_seed(0)
    model = registry.create_backbone("nsl-cnn", framework="tf", num_classes=10, input_shape=(8, 8, 1))
    model.compile(optimizer=keras.optimizers.Adam(3e-3),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(train_x.astype(np.float32) / 255, train_y, epochs=12, batch_size=64, verbose=0)

    def kl_loss(p_clean):
        return lambda _, logits: tf.reduce_sum(p_clean * (tf.math.log(p_clean + 1e-12) - tf.nn.log_softmax(logits)),
                                               axis=1)

    return Framework("tf", attacks, model, tf.constant(test_x.astype(np.float32) / 255), tf.constant(test_y),
                     lambda m, images: np.argmax(m(images, training=False), axis=1), np.asarray,
                     tf.random.Generator.from_seed, kl_loss,
                     lambda images: tf.nn.softmax(model(images, training=False)))


def framework(name: str) -> Framework:
    """The (cached) :class:`Framework` ``name``; skips the test when it is not installed."""
    needs = {"torch": ("torch",), "tf": ("tensorflow", "tf_keras")}[name]
    missing = [m for m in needs if importlib.util.find_spec(m) is None]
    if missing:
        pytest.skip(f"{missing[0]} is not installed")
    if name not in _cache:
        _cache[name] = _torch() if name == "torch" else _tf()
    return _cache[name]


@pytest.fixture(params=FRAMEWORKS)
def fw(request) -> Framework:
    return framework(request.param)


@pytest.fixture
def both() -> tuple[Framework, Framework]:
    """torch's and TensorFlow's :class:`Framework` (skipped unless both are installed)."""
    return framework("torch"), framework("tf")
