"""TrainerBase.fit is framework-neutral: a numpy softmax regression that fills in the hooks trains,
writes its outputs, and resumes to the same weights, with no torch or tensorflow involved."""

from __future__ import annotations

import json

import numpy as np
import pytest

from harness.errors import UsageError
from harness.training import FitRun, TrainerBase, batch_indices, derive_seed, load_metrics_json, to_plain


class Linear:
    """A softmax regression on flattened images: the smallest model the hooks can train."""

    def __init__(self, features: int, classes: int):
        self.weights = np.zeros((features, classes))

    def __call__(self, images: np.ndarray) -> np.ndarray:
        return images.reshape(len(images), -1) / 255.0 @ self.weights


def softmax_loss(logits: np.ndarray, labels: np.ndarray) -> tuple[float, np.ndarray]:
    """Mean cross-entropy and its gradient with respect to the logits."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    probs = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
    loss = float(-np.log(probs[np.arange(len(labels)), labels]).mean())
    probs[np.arange(len(labels)), labels] -= 1.0
    return loss, probs / len(labels)


class NumpyTrainer(TrainerBase):
    name = "standard"
    framework = "numpy"
    framework_title = "numpy"
    checkpoint_name = "checkpoint.npz"
    checkpoint_format = "numpy-test/1"

    def __init__(self, **params):
        super().__init__(**params)
        self.generator = np.random.default_rng(0)

    def _num_classes(self, model):
        return model.weights.shape[1]

    def _setup(self, model):
        return FitRun(model, "cpu", [("all", [model])], {"arch": "linear", "parameters": model.weights.size})

    def _read_checkpoint(self, path):
        with np.load(path) as data:
            return {**json.loads(str(data["state"])), "weights": data["weights"]}

    def _restore(self, run, state):
        run.model.weights = state["weights"].copy()

    def _open_optimizer(self, run, count, state):
        return "sgd"

    def _prepare(self, run):
        return run.model

    def _train_batches(self, run, images, labels, epoch, lr):
        order = np.random.default_rng(derive_seed(self.config.seed, epoch, 2)).permutation(len(labels))
        for index in batch_indices(order, self.config.batch_size):
            logits = run.model(images[index])
            loss, grad = softmax_loss(logits, labels[index])
            run.model.weights -= lr * (images[index].reshape(len(index), -1) / 255.0).T @ grad
            yield index, loss, logits

    def evaluate(self, model, images, labels):
        logits = model(images)
        top1 = float((logits.argmax(axis=1) == labels).mean())
        return {"loss": softmax_loss(logits, labels)[0], "top1": top1, "top5": 1.0}

    def _unfreeze(self, run, count):
        raise AssertionError("one stage: nothing to unfreeze")

    def _write_checkpoint(self, run, path, state):
        np.savez(path, state=np.array(json.dumps(to_plain(state))), weights=run.model.weights)


@pytest.fixture(scope="module")
def blobs():
    """Three classes of 4x4 grey images, each brighter in its own rows."""
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 150)
    images = rng.integers(0, 60, (150, 4, 4, 1))
    for cls in range(3):
        images[labels == cls, cls, :, 0] += 180
    return images.astype(np.uint8), labels


def fit(blobs, out_dir, epochs, resume=False, **params):
    model = Linear(16, 3)
    trainer = NumpyTrainer(epochs=epochs, batch_size=32, lr=0.5, schedule="none", progress=False, **params)
    return model, trainer.fit(model, blobs, blobs, out_dir=out_dir, resume=resume)


def test_a_framework_is_only_its_hooks(blobs, tmp_path):
    model, history = fit(blobs, tmp_path, epochs=3)
    assert history[-1].val_top1 > 0.9 and history[-1].train_loss < history[0].train_loss
    assert history.meta["arch"] == "linear" and history.meta["params"]["lr"] == 0.5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.npz", "metrics.json", "training_curves.png"]
    assert len(load_metrics_json(tmp_path / "metrics.json")) == 3


def test_resume_continues_from_the_hooks_checkpoint(blobs, tmp_path):
    straight, straight_history = fit(blobs, tmp_path / "straight", epochs=3)
    fit(blobs, tmp_path / "resumed", epochs=2)
    resumed, resumed_history = fit(blobs, tmp_path / "resumed", epochs=3, resume=True)
    assert np.array_equal(straight.weights, resumed.weights)
    assert straight_history.column("train_loss") == resumed_history.column("train_loss")
    np.savez(tmp_path / "other.npz", state=np.array(json.dumps({"format": "else"})), weights=np.zeros(1))
    with pytest.raises(UsageError, match="not a harness numpy training checkpoint"):
        fit(blobs, tmp_path, epochs=3, resume=tmp_path / "other.npz")


def test_a_trainer_without_its_hooks_cannot_be_built():
    class Incomplete(TrainerBase):
        framework = "numpy"

    with pytest.raises(TypeError, match="abstract"):
        Incomplete()
