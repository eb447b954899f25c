"""TrainerBase.fit in both frameworks: outputs, schedules, progressive unfreezing, resume and bad input.

Each test runs once per framework through a small adapter (model, weights, a seeded augmentation);
what only one framework has stays in tests/torch/test_train.py and tests/tf/test_tf_train.py.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from harness.errors import UsageError
from harness.registry import create_backbone, create_defense
from helpers import tensorflow_for_tests

FAST = {"batch_size": 64, "progress": False, "device": "cpu"}
#: "lr 0.01 -> 0.5" after one epoch, then every epoch a plateau: each one moves the seed regime on
PROGRESSIVE = {"unfreeze": "progressive", "plateau_patience": 1, "plateau_min_delta": 0.9}


def torch_noise(x, generator=None):
    """A seeded torch augmentation, so resume has to restore the generator stream."""
    import torch

    noise = torch.rand(x.shape, generator=generator) * 0.1
    return (x + noise.to(x.device)).clamp(0, 1)


def tf_noise(x, generator=None):
    """A seeded TF augmentation, so resume has to reseed the generator stream."""
    import tensorflow as tf

    return tf.clip_by_value(x + generator.uniform(tf.shape(x)) * 0.1, 0.0, 1.0)


class TorchAdapter:
    name, arch, checkpoint, version_key, device = "torch", "small-cnn", "checkpoint.pt", "torch", "cpu"
    min_val_top1 = 0.9

    def __init__(self):
        import torch

        torch.set_num_threads(1)  # tiny models run fastest on one thread
        self.torch = torch

    def model(self, seed=0, **params):
        self.torch.manual_seed(seed)
        return create_backbone("small-cnn", framework="torch", num_classes=10, input_shape=(8, 8, 1), **params)

    def weights(self, model):
        return [v.detach().cpu().numpy().copy() for v in model.state_dict().values()]

    def lower_and_upper_kernels(self, model):
        return model.body[0].weight.detach().numpy().copy(), model.body[3].weight.detach().numpy().copy()

    noise_augmentation = staticmethod(torch_noise)

    def full_precision_after_training(self, model):
        """No autocast left on; the model predicts float32 in the usual layout."""
        x = self.torch.rand(2, 1, 8, 8)
        return (not self.torch.is_autocast_enabled("cpu") and model(x).dtype == self.torch.float32
                and all(p.is_contiguous() for p in model.parameters()))

    def checkpoint_epoch(self, path):
        return self.torch.load(path, weights_only=True)["epoch"]

    def loss_scale(self, path):
        return self.torch.load(path, weights_only=True)["scaler"]["scale"]

    def jumpy_loss_scale(self, monkeypatch):
        import functools

        import harness_torch.train

        scaler = functools.partial(self.torch.amp.GradScaler, init_scale=2.0 ** 17, growth_interval=2)
        monkeypatch.setattr(harness_torch.train.torch.amp, "GradScaler", scaler)

    #: a second defense whose resume must also match (random starts on the trainer's generator)
    adversarial = ("trades", {"eps": 0.1, "steps": 2, "optimizer": "adam", "lr": 1e-3})


class TFAdapter:
    name, arch, checkpoint, version_key, device = "tf", "nsl-cnn", "checkpoint.npz", "tensorflow", "CPU:0"
    min_val_top1 = 0.85

    def __init__(self):
        tf, keras = tensorflow_for_tests()
        self.tf, self.keras = tf, keras

    def model(self, seed=0, **params):
        self.keras.utils.set_random_seed(seed)
        return create_backbone("nsl-cnn", framework="tf", num_classes=10, input_shape=(8, 8, 1), **params)

    def weights(self, model):
        from harness_tf.train import model_weights

        return model_weights(model)

    def lower_and_upper_kernels(self, model):
        return model.get_layer("conv1").get_weights()[0].copy(), model.get_layer("conv3").get_weights()[0].copy()

    noise_augmentation = staticmethod(tf_noise)

    def full_precision_after_training(self, model):
        """The global Keras policy untouched; the model itself still computes in float32."""
        policy = self.keras.mixed_precision.global_policy().name
        return policy == "float32" and all(layer.dtype_policy.name == "float32" for layer in model.layers) \
            and model(np.zeros((2, 8, 8, 1), np.float32)).dtype == self.tf.float32

    def checkpoint_epoch(self, path):
        with np.load(path) as data:
            return json.loads(str(data["state"]))["epoch"]

    def loss_scale(self, path):
        with np.load(path) as data:
            return float(data["loss_scale_0"])

    def jumpy_loss_scale(self, monkeypatch):
        import functools

        optimizer = functools.partial(self.keras.mixed_precision.LossScaleOptimizer, initial_scale=2.0 ** 17,
                                      dynamic_growth_steps=2)
        monkeypatch.setattr(self.keras.mixed_precision, "LossScaleOptimizer", optimizer)

    #: a second defense whose resume must also match (NSL's random start from TF's global seed)
    adversarial = ("nsl-adversarial-regularization", {"optimizer": "adam", "lr": 1e-3, "label_smoothing": 0.1,
                                                      "random_init": True, "pgd_iterations": 2, "pgd_epsilon": 0.2})


@pytest.fixture(scope="module", params=["torch", "tf"])
def fw(request):
    """The framework under test, through its adapter (skipped when it is not installed)."""
    if request.param == "torch":
        pytest.importorskip("torch")
        return TorchAdapter()
    pytest.importorskip("tensorflow")
    pytest.importorskip("tf_keras")
    return TFAdapter()


@pytest.fixture(scope="module")
def digits_splits():
    """``load_dataset("digits")`` with a 1401 / 396 train/test split and no val split."""
    from harness.data import load_dataset

    ds = load_dataset("digits", val_fraction=0.0, test_fraction=0.22)
    return ds.split("train"), ds.split("test")


def subset(split, n, seed=0):
    index = np.sort(np.random.default_rng(seed).permutation(len(split.labels))[:n])
    return split.images[index], split.labels[index]


def defense(fw, name="standard", **params):
    return create_defense(name, framework=fw.name, **{**FAST, **params})


def test_standard_training_learns_digits_and_writes_metrics(fw, digits_splits, tmp_path):
    train, test = digits_splits
    trainer = defense(fw, epochs=3, optimizer="adam", lr=3e-3, weight_decay=0.0)
    history = trainer.fit(fw.model(), train, test, out_dir=tmp_path)
    assert [r.epoch for r in history.epochs] == [1, 2, 3]
    assert history[-1].val_top1 > fw.min_val_top1 and history[-1].train_loss < history[0].train_loss
    assert history[-1].val_top5 >= history[-1].val_top1
    data = json.loads((tmp_path / "metrics.json").read_text())
    assert data["meta"]["defense"] == "standard" and data["meta"]["arch"] == fw.arch
    assert data["meta"]["params"]["optimizer"] == "adam" and data["meta"]["device"] == fw.device
    assert fw.version_key in data["meta"] and len(data["epochs"]) == 3
    assert (tmp_path / "training_curves.png").read_bytes()[:4] == b"\x89PNG"
    assert fw.checkpoint_epoch(tmp_path / fw.checkpoint) == 3


def test_fit_without_val_or_out_dir_writes_nothing(fw, digits_splits, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    history = defense(fw, epochs=1).fit(fw.model(), subset(digits_splits[0], 200))
    assert history[0].val_top1 is None and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("optimizer, schedule", [("sgd", "step"), ("sgd", "cosine"), ("adam", "none")])
def test_lr_follows_the_schedule(fw, digits_splits, optimizer, schedule):
    trainer = defense(fw, epochs=3, lr=0.05, optimizer=optimizer, schedule=schedule, step_size=1)
    history = trainer.fit(fw.model(), subset(digits_splits[0], 130))
    expected = {"step": [0.05, 0.005, 0.0005], "cosine": [0.05, 0.0375, 0.0125], "none": [0.05] * 3}[schedule]
    assert history.column("lr") == pytest.approx(expected)


def test_progressive_unfreezing_opens_stages_on_plateaus(fw, digits_splits, tmp_path):
    model = fw.model()
    lower_before, upper_before = fw.lower_and_upper_kernels(model)
    history = defense(fw, epochs=6, **PROGRESSIVE).fit(model, subset(digits_splits[0], 300), out_dir=tmp_path)
    # a detector needs one epoch to learn the loss, then every epoch is a plateau
    assert history.column("lr") == pytest.approx([0.01, 0.01, 0.001, 0.001, 0.001, 0.0001])
    assert history.column("stage_name") == ["head"] * 3 + ["upper backbone"] * 3
    assert history.column("event") == ["train head", None, "lr 0.001", "unfreeze upper backbone", None, "lr 0.0001"]
    lower_after, upper_after = fw.lower_and_upper_kernels(model)
    assert np.array_equal(lower_after, lower_before)  # the lower backbone never unfroze (2 stage_lrs)
    assert not np.array_equal(upper_after, upper_before)
    assert json.loads((tmp_path / "metrics.json").read_text())["epochs"][3]["event"] == "unfreeze upper backbone"


def run(fw, name, train, out_dir, epochs, resume=False, **params):
    model = fw.model(seed=5, dropout=0.2)
    history = defense(fw, name, epochs=epochs, seed=3, **params).fit(model, train, train, out_dir=out_dir,
                                                                     resume=resume)
    return model, history


@pytest.mark.parametrize("case", ["progressive", "adversarial", "fp16"])
def test_resume_gives_the_same_weights_as_an_uninterrupted_run(fw, digits_splits, tmp_path, case, monkeypatch):
    if case == "progressive":  # stops after the upper backbone opened (epoch 4): a new stage's optimizer state
        name, stop, params = "standard", 4, {**PROGRESSIVE, "optimizer": "sgd",
                                             "augmentations": [fw.noise_augmentation, "hflip"]}
    elif case == "fp16":  # the loss scale is checkpointed: it doubles every 2 steps and halves on overflows
        name, stop, params = "standard", 1, {"precision": "fp16", "lr": 0.05, "batch_size": 32}
        fw.jumpy_loss_scale(monkeypatch)
    else:
        (name, params), stop = fw.adversarial, 2
    train = subset(digits_splits[0], 128 if case == "fp16" else 256)  # fp16 autocast is slow on CPU
    total = stop + 1
    straight, straight_history = run(fw, name, train, tmp_path / "straight", total, **params)
    run(fw, name, train, tmp_path / "resumed", stop, **params)  # "interrupted" after epoch `stop`
    resumed, resumed_history = run(fw, name, train, tmp_path / "resumed", total, resume=True, **params)
    for a, b in zip(fw.weights(straight), fw.weights(resumed)):  # dropout and random starts included
        assert np.array_equal(a, b)

    def strip(history):
        return [{k: v for k, v in r.items() if k != "seconds"} for r in history.to_dict()["epochs"]]

    assert strip(straight_history) == strip(resumed_history)
    assert fw.checkpoint_epoch(tmp_path / "resumed" / fw.checkpoint) == total
    if case == "progressive":
        assert "unfreeze upper backbone" in straight_history.column("event")
    if case == "fp16":
        assert fw.loss_scale(tmp_path / "resumed" / fw.checkpoint) != 2.0 ** 17  # it moved from the initial scale


def test_mixed_precision_trains_float32_weights_and_records_how(fw, digits_splits, tmp_path):
    model = fw.model()
    history = defense(fw, epochs=1, precision="bf16", optimizer="adam", lr=3e-3).fit(
        model, subset(digits_splits[0], 256), digits_splits[1], out_dir=tmp_path)
    assert all(w.dtype == np.float32 for w in fw.weights(model))
    assert np.isfinite(history[0].train_loss) and history[0].val_top1 is not None
    meta = json.loads((tmp_path / "metrics.json").read_text())["meta"]
    assert (meta["precision"], meta["compile"], meta["params"]["precision"]) == ("bf16", False, "bf16")
    assert fw.full_precision_after_training(model)


def test_resume_refuses_changed_parameters_other_defenses_and_missing_files(fw, digits_splits, tmp_path):
    train = subset(digits_splits[0], 130)
    run(fw, "standard", train, tmp_path, 1)
    with pytest.raises(UsageError, match="lr 0.01 -> 0.5"):
        run(fw, "standard", train, tmp_path, 2, resume=True, lr=0.5)
    with pytest.raises(UsageError, match="written by defense 'standard'"):
        run(fw, fw.adversarial[0], train, tmp_path, 2, resume=True)
    with pytest.raises(UsageError, match="not found"):
        run(fw, "standard", train, tmp_path, 2, resume=tmp_path / f"nope{fw.checkpoint[-4:]}")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / fw.checkpoint).write_bytes(b"not a checkpoint")
    with pytest.raises(UsageError, match="not a harness .* training checkpoint"):
        run(fw, "standard", train, tmp_path / "other", 2, resume=True)
    _, history = run(fw, "standard", train, tmp_path / "fresh", 1, resume=True)  # no checkpoint yet: afresh
    assert len(history) == 1


def test_bad_input_is_rejected_by_name(fw, digits_splits):
    images, labels = subset(digits_splits[0], 20)
    with pytest.raises(UsageError, match=r"labels must be in \[0, 10\)"):
        defense(fw, epochs=1).fit(fw.model(), (images, labels + 10))
    with pytest.raises(UsageError, match="empty"):
        defense(fw, epochs=1).fit(fw.model(), (images[:0], labels[:0]))
    with pytest.raises(UsageError, match="uint8"):
        defense(fw, epochs=1).fit(fw.model(), (images.astype(np.float32), labels))
    with pytest.raises(UsageError, match="defense 'standard' has no parameter 'beta'"):
        defense(fw, beta=1.0)
    with pytest.raises(UsageError, match="augmentation"):
        defense(fw, augmentations=[42])
    assert len(defense(fw, augmentations=["hflip", {"name": "random-crop", "padding": 1}]).augmentations) == 2
