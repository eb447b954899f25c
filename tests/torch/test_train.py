"""The torch Trainer's own pieces: the tensor boundary, eval mode after fit, checkpoint contents and
weights loading. What both frameworks share is tested once, per framework, in tests/training/test_trainer_fit.py."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from harness.errors import UsageError  # noqa: E402
from harness.registry import create_backbone, create_defense  # noqa: E402
from harness_torch.train import images_to_tensor, load_checkpoint_weights, train_batches  # noqa: E402

FAST = {"batch_size": 64, "progress": False, "device": "cpu"}


def subset(split, n, seed=0):
    index = np.sort(np.random.default_rng(seed).permutation(len(split.labels))[:n])
    return split.images[index], split.labels[index]


def small_model(seed=0, **params):
    torch.manual_seed(seed)
    return create_backbone("small-cnn", framework="torch", num_classes=10, input_shape=(8, 8, 1), **params)


def test_images_to_tensor_converts_at_the_boundary():
    images = np.arange(2 * 3 * 4 * 2, dtype=np.uint8).reshape(2, 3, 4, 2)
    x = images_to_tensor(images)
    assert x.dtype == torch.float32 and x.shape == (2, 2, 3, 4)
    assert x[1, 1, 2, 3].item() == pytest.approx(images[1, 2, 3, 1] / 255)


def test_train_batches_read_each_chunk_in_sorted_order():
    images = np.arange(7 * 2 * 2 * 1, dtype=np.uint8).reshape(7, 2, 2, 1)
    labels = np.arange(7)
    batches = list(train_batches(images, labels, np.array([6, 2, 0, 5, 1, 3, 4]), 3, "cpu"))
    assert [index.tolist() for index, _, _ in batches] == [[0, 2, 6], [1, 3, 4, 5]]  # a batch of one joins
    for index, x, y in batches:
        assert torch.equal(y, torch.from_numpy(labels[index])) and torch.equal(x, images_to_tensor(images[index]))


def test_fit_leaves_eval_mode_and_a_checkpoint_with_optimizer_and_rng_states(digits_splits, tmp_path):
    trainer = create_defense("standard", framework="torch", epochs=2, unfreeze="progressive", plateau_patience=1,
                             plateau_min_delta=0.9, **FAST)
    model = small_model()
    trainer.fit(model, subset(digits_splits.train, 130), out_dir=tmp_path)
    assert not model.training
    checkpoint = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert checkpoint["format"] == "harness-torch-checkpoint/1" and checkpoint["epoch"] == 2
    assert {"model", "optimizer", "scheduler", "rng", "history", "params"} <= set(checkpoint)
    assert len(checkpoint["optimizer"]["param_groups"]) == 1  # the head only: the first plateau steps its rate down
    again = load_checkpoint_weights(small_model(seed=1), tmp_path / "checkpoint.pt")
    for a, b in zip(model.state_dict().values(), again.state_dict().values()):
        assert torch.equal(a, b)


def test_fp16_model_hardening_step_and_channels_last_leave_a_plain_float32_model(digits_splits):
    """fp16 autocast on CPU with the in-training FGSM/BIM; channels_last during training, the usual layout after."""
    model = small_model()
    trainer = create_defense("model-hardening", framework="torch", epochs=1, bim_steps=2, precision="fp16",
                             memory_format="channels_last", **FAST)
    history = trainer.fit(model, subset(digits_splits.train, 64))
    assert np.isfinite(history[0].train_loss) and history.meta["memory_format"] == "channels_last"
    assert all(p.dtype == torch.float32 and p.is_contiguous() for p in model.parameters())
    assert trainer.scaler.is_enabled() and not torch.is_autocast_enabled("cpu")
    auto = create_defense("standard", framework="torch", epochs=1, **FAST).fit(small_model(),
                                                                           subset(digits_splits.train, 64))
    assert auto.meta["memory_format"] == "contiguous"  # auto: channels_last on CUDA only


def test_compile_trains_through_torch_compile(digits_splits, monkeypatch):
    """compile = true trains the torch.compile'd forward (dynamo + AOTAutograd; the aot_eager backend stands in
    for inductor, whose C++ build takes over a minute on 2 cores) and saves the plain model's weights."""
    import functools

    compiled, real_compile = [], torch.compile

    def compile_(model, **kw):
        compiled.append(model)
        return functools.partial(real_compile, backend="aot_eager")(model, **kw)

    monkeypatch.setattr(torch, "compile", compile_)
    model = small_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    history = create_defense("standard", framework="torch", epochs=1, compile=True, precision="bf16",
                             **FAST).fit(model, subset(digits_splits.train, 128))
    assert compiled == [model] and history.meta["compile"] is True and np.isfinite(history[0].train_loss)
    assert model.state_dict().keys() == before.keys()  # no "_orig_mod." prefixes: the model itself trained
    assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_compile_without_a_compiler_is_one_clear_line(monkeypatch):
    import harness_torch.train

    monkeypatch.setattr(harness_torch.train.shutil, "which", lambda name: None)
    trainer = create_defense("standard", framework="torch", epochs=1, compile=True, **FAST)
    with pytest.raises(UsageError, match=r"^compile = true: torch.compile needs a C\+\+ compiler \(g\+\+ or clang"):
        trainer.fit(small_model(), (np.zeros((2, 8, 8, 1), np.uint8), np.array([0, 1])))
