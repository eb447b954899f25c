"""The TF Trainer: the torch trainer's knobs and outputs (schedules, progressive unfreezing, metrics,
curves, checkpoints and resume) on Keras models."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tensorflow as tf

from harness.errors import UsageError
from harness.registry import create_defense
from harness_tf.train import Trainer, cross_entropy, model_weights
from tf_helpers import FAST, nsl_cnn, subset, to_float


def test_standard_training_learns_digits_and_writes_metrics(digits_splits, tmp_path):
    trainer = create_defense("standard", framework="tf", epochs=3, optimizer="adam", lr=3e-3, weight_decay=0.0, **FAST)
    history = trainer.fit(nsl_cnn(), digits_splits.train, digits_splits.test, out_dir=tmp_path)
    assert [r.epoch for r in history.epochs] == [1, 2, 3]
    assert history[-1].val_top1 > 0.85 and history[-1].train_loss < history[0].train_loss
    assert history[-1].val_top5 >= history[-1].val_top1
    data = json.loads((tmp_path / "metrics.json").read_text())
    assert data["meta"]["defense"] == "standard" and data["meta"]["arch"] == "nsl-cnn"
    assert data["meta"]["params"]["optimizer"] == "adam" and data["meta"]["tensorflow"] == tf.__version__
    assert len(data["epochs"]) == 3 and data["meta"]["device"] == "CPU:0"
    assert (tmp_path / "training_curves.png").read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "checkpoint.npz").is_file()


def test_fit_without_val_or_out_dir_writes_nothing(digits_splits, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    trainer = create_defense("standard", framework="tf", epochs=1, **FAST)
    history = trainer.fit(nsl_cnn(), subset(digits_splits.train, 200))
    assert history[0].val_top1 is None and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("optimizer, schedule", [("sgd", "step"), ("sgd", "cosine"), ("adam", "none")])
def test_lr_follows_the_schedule(digits_splits, optimizer, schedule):
    trainer = create_defense("standard", framework="tf", epochs=3, lr=0.05, optimizer=optimizer, schedule=schedule,
                             step_size=1, **FAST)
    history = trainer.fit(nsl_cnn(), subset(digits_splits.train, 130))
    expected = {"step": [0.05, 0.005, 0.0005], "cosine": [0.05, 0.0375, 0.0125], "none": [0.05] * 3}[schedule]
    assert history.column("lr") == pytest.approx(expected)


def test_progressive_unfreezing_opens_stages_on_plateaus(digits_splits, tmp_path):
    # min_delta 0.9: every epoch counts as a plateau, so each one moves the regime on
    trainer = create_defense("standard", framework="tf", epochs=6, unfreeze="progressive", plateau_patience=1,
                             plateau_min_delta=0.9, **FAST)
    model = nsl_cnn()
    lower_before = model.get_layer("conv1").get_weights()[0].copy()
    upper_before = model.get_layer("conv3").get_weights()[0].copy()
    history = trainer.fit(model, subset(digits_splits.train, 300), out_dir=tmp_path)
    assert history.column("lr") == pytest.approx([0.01, 0.01, 0.001, 0.001, 0.001, 0.0001])
    assert history.column("stage_name") == ["head"] * 3 + ["upper backbone"] * 3
    assert history.column("event") == ["train head", None, "lr 0.001", "unfreeze upper backbone", None, "lr 0.0001"]
    assert np.array_equal(model.get_layer("conv1").get_weights()[0], lower_before)  # never unfroze (2 stage_lrs)
    assert not np.array_equal(model.get_layer("conv3").get_weights()[0], upper_before)
    assert json.loads((tmp_path / "metrics.json").read_text())["epochs"][3]["event"] == "unfreeze upper backbone"


def noise_augmentation(x, generator=None):
    """A seeded augmentation, so resume has to reseed the generator stream."""
    return tf.clip_by_value(x + generator.uniform(tf.shape(x)) * 0.1, 0.0, 1.0)


def run(defense, train, out_dir, epochs, resume=False, **params):
    trainer = create_defense(defense, framework="tf", epochs=epochs, seed=3, **FAST, **params)
    model = nsl_cnn(seed=5, dropout=0.2)
    history = trainer.fit(model, train, train, out_dir=out_dir, resume=resume)
    return model, history


@pytest.mark.parametrize(
    "defense, stop, params",
    [
        # stops after the upper backbone opened (epoch 4): optimizer state of a new stage must come back
        ("standard", 4, {"unfreeze": "progressive", "plateau_patience": 1, "plateau_min_delta": 0.9,
                         "optimizer": "sgd", "augmentations": [noise_augmentation, "hflip"]}),
        ("nsl-adversarial-regularization", 2, {"optimizer": "adam", "lr": 1e-3, "label_smoothing": 0.1,
                                               "random_init": True, "pgd_iterations": 2, "pgd_epsilon": 0.2}),
    ],
)
def test_resume_gives_the_same_weights_as_an_uninterrupted_run(digits_splits, tmp_path, defense, stop, params):
    train = subset(digits_splits.train, 256)
    total = stop + 1
    straight, straight_history = run(defense, train, tmp_path / "straight", total, **params)
    run(defense, train, tmp_path / "resumed", stop, **params)  # "interrupted" after epoch `stop`
    resumed, resumed_history = run(defense, train, tmp_path / "resumed", total, resume=True, **params)
    for a, b in zip(model_weights(straight), model_weights(resumed)):  # dropout and random starts included
        assert np.array_equal(a, b)

    def strip(history):
        return [{k: v for k, v in r.items() if k != "seconds"} for r in history.to_dict()["epochs"]]

    assert strip(straight_history) == strip(resumed_history)
    with np.load(tmp_path / "resumed" / "checkpoint.npz") as data:
        assert json.loads(str(data["state"]))["epoch"] == total


def test_resume_refuses_changed_parameters_other_defenses_and_missing_files(digits_splits, tmp_path):
    train = subset(digits_splits.train, 130)
    run("standard", train, tmp_path, 1)
    with pytest.raises(UsageError, match="lr 0.01 -> 0.5"):
        run("standard", train, tmp_path, 2, resume=True, lr=0.5)
    with pytest.raises(UsageError, match="written by defense 'standard'"):
        run("nsl-adversarial-regularization", train, tmp_path, 2, resume=True)
    with pytest.raises(UsageError, match="not found"):
        run("standard", train, tmp_path, 2, resume=tmp_path / "nope.npz")
    _, history = run("standard", train, tmp_path / "fresh", 1, resume=True)  # no checkpoint yet: afresh
    assert len(history) == 1


def test_weight_decay_is_added_to_the_gradient_as_in_torch(digits_splits):
    """One plain SGD step on one batch: w <- w - lr * (dloss/dw + weight_decay * w)."""
    images, labels = subset(digits_splits.train, 64)
    model = nsl_cnn()
    kernel = model.get_layer("logits").kernel
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(cross_entropy(10)(tf.constant(labels), model(to_float(images), training=True)))
    expected = kernel.numpy() - 0.1 * (tape.gradient(loss, kernel).numpy() + 0.5 * kernel.numpy())
    create_defense("standard", framework="tf", epochs=1, optimizer="sgd", momentum=0.0, lr=0.1, weight_decay=0.5,
                   **FAST).fit(model, (images, labels))
    np.testing.assert_allclose(kernel.numpy(), expected, atol=1e-6)


def test_label_smoothing_matches_torch():
    torch = pytest.importorskip("torch")
    logits = np.random.default_rng(0).normal(size=(5, 4)).astype(np.float32)
    labels = np.array([0, 1, 2, 3, 1])
    ours = tf.reduce_mean(cross_entropy(4, 0.2)(tf.constant(labels), tf.constant(logits)))
    theirs = torch.nn.functional.cross_entropy(torch.from_numpy(logits), torch.from_numpy(labels), label_smoothing=0.2)
    assert float(ours) == pytest.approx(float(theirs), rel=1e-5)


def test_bad_input_is_rejected(digits_splits):
    images, labels = subset(digits_splits.train, 20)
    with pytest.raises(UsageError, match="labels must be in"):
        create_defense("standard", framework="tf", epochs=1, **FAST).fit(nsl_cnn(), (images, labels + 10))
    with pytest.raises(UsageError, match="empty"):
        create_defense("standard", framework="tf", epochs=1, **FAST).fit(nsl_cnn(), (images[:0], labels[:0]))
    with pytest.raises(UsageError, match="beta"):
        Trainer(beta=1.0)
    augmentations = ["hflip", {"name": "random-crop", "padding": 1}]
    assert len(create_defense("standard", framework="tf", augmentations=augmentations).augmentations) == 2
