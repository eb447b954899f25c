"""Torch test fixtures: a tiny CNN trained in a few seconds on scikit-learn's 8x8 digits."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

torch = pytest.importorskip("torch")

# Tiny models run fastest on one thread; on a busy 2-core machine two threads were ~10x slower.
torch.set_num_threads(1)


@dataclass(frozen=True)
class Digits:
    """sklearn digits as float32 tensors (N, 1, 8, 8) in [0, 1] with int64 labels."""

    x_train: "torch.Tensor"
    y_train: "torch.Tensor"
    x_test: "torch.Tensor"
    y_test: "torch.Tensor"


def small_digits_cnn() -> "torch.nn.Module":
    """Conv-BN-ReLU x2, pool, linear: ~97% test accuracy on digits after a few seconds."""
    nn = torch.nn
    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 4 * 4, 10),
    )


def load_digits_data() -> Digits:
    """The 1797 digits, split 80/20 with a fixed seed."""
    from sklearn.datasets import load_digits

    images, labels = load_digits(return_X_y=True)
    images = (images / 16.0).astype(np.float32).reshape(-1, 1, 8, 8)
    order = np.random.default_rng(0).permutation(len(labels))
    cut = int(0.8 * len(labels))
    x, y = torch.from_numpy(images[order]), torch.from_numpy(labels[order].astype(np.int64))
    return Digits(x[:cut], y[:cut], x[cut:], y[cut:])


def train_digits_model(data: Digits, epochs: int = 10) -> "torch.nn.Module":
    """:func:`small_digits_cnn` trained with Adam on ``data`` (seeded), returned in eval mode."""
    torch.manual_seed(0)
    model = small_digits_cnn()
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    generator = torch.Generator().manual_seed(0)
    x, y = data.x_train, data.y_train
    model.train()
    for _ in range(12):
        for batch in torch.randperm(len(y), generator=generator).split(64):
            optimizer.zero_grad()
            torch.nn.functional.cross_entropy(model(x[batch]), y[batch]).backward()
            optimizer.step()
    model.eval()
    for parameter in model.parameters():
        parameter.grad = None
    return model


@pytest.fixture(scope="session")
def digits_data() -> Digits:
    """sklearn digits, train/test tensors (see :func:`load_digits_data`)."""
    return load_digits_data()


@pytest.fixture(scope="session")
def digits_model(digits_data) -> "torch.nn.Module":
    """A trained digits CNN on CPU in eval mode (~97% test accuracy). Shared by every
    test of the session: ``copy.deepcopy`` it before changing it."""
    return train_digits_model(digits_data)


def accuracy(model: "torch.nn.Module", x: "torch.Tensor", y: "torch.Tensor") -> float:
    """Top-1 accuracy of ``model`` (eval mode, no grad)."""
    with torch.no_grad():
        return (model(x).argmax(1) == y).float().mean().item()


# ---- uint8 NHWC digits for the trainer and defense tests (harness's own dataset API)


@dataclass(frozen=True)
class DigitsSplits:
    """The ``digits`` dataset as the harness hands it to trainers: uint8 NHWC splits."""

    train: object  # ImageSplit: .images uint8 (N, 8, 8, 1), .labels int64
    test: object
    num_classes: int
    image_shape: tuple


@pytest.fixture(scope="session")
def digits_splits(_session_cache) -> DigitsSplits:
    """``load_dataset("digits")`` with a 1401 / 396 train/test split and no val split."""
    from harness.data import load_dataset

    ds = load_dataset("digits", val_fraction=0.0, test_fraction=0.22)
    return DigitsSplits(ds.split("train"), ds.split("test"), ds.num_classes, tuple(ds.image_shape))
