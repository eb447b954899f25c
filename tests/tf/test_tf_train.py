"""The TF Trainer's own pieces: weight decay added to the gradients, torch's label smoothing, checkpoint
contents. What both frameworks share is tested once, per framework, in tests/training/test_trainer_fit.py."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tensorflow as tf

from harness.errors import UsageError
from harness.registry import create_defense
from harness_tf.train import cross_entropy, load_checkpoint_weights, model_weights
from tf_helpers import FAST, nsl_cnn, subset, to_float


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


def test_checkpoint_holds_weights_optimizer_state_and_loads_back(digits_splits, tmp_path):
    model = nsl_cnn()
    create_defense("standard", framework="tf", epochs=1, optimizer="adam", **FAST).fit(
        model, subset(digits_splits.train, 130), out_dir=tmp_path)
    with np.load(tmp_path / "checkpoint.npz") as data:
        state = json.loads(str(data["state"]))
        assert state["format"] == "harness-tf-checkpoint/1" and state["epoch"] == 1
        assert state["optimizer_arrays"] > 0 and f"optimizer_{state['optimizer_arrays'] - 1}" in data.files
    again = load_checkpoint_weights(nsl_cnn(seed=1), tmp_path / "checkpoint.npz")
    for a, b in zip(model_weights(model), model_weights(again)):
        assert np.array_equal(a, b)


def test_memory_format_is_torchs_knob_and_tensorflow_says_so():
    with pytest.raises(UsageError, match=r"memory_format = 'channels_last' is a torch knob: TensorFlow lays tensors"):
        create_defense("standard", framework="tf", memory_format="channels_last", **FAST)


def test_compile_builds_the_step_with_xla(digits_splits):
    """compile = true builds the training step with jit_compile (XLA); running it, NSL's step included, is
    timed by benchmarks/bench_precision.py. bf16 with NSL trains end to end in tests/scoring."""
    model = nsl_cnn()
    compiled = create_defense("standard", framework="tf", compile=True, **FAST)
    plain = create_defense("standard", framework="tf", **FAST)
    for trainer in (compiled, plain):
        trainer._setup(model)
    optimizer = compiled._make_optimizer(model, [("all", model.layers)])
    assert compiled._make_step(model, model, optimizer)._jit_compile
    assert not plain._make_step(model, model, optimizer)._jit_compile
