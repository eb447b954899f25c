"""The shared torch Trainer: data boundary, schedules, progressive unfreezing, checkpoints and resume."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from harness.errors import UsageError  # noqa: E402
from harness.registry import create_backbone, create_defense  # noqa: E402
from harness_torch.train import Trainer, images_to_tensor, split_arrays  # noqa: E402

FAST = {"batch_size": 64, "progress": False, "device": "cpu"}


def subset(split, n, seed=0):
    index = np.sort(np.random.default_rng(seed).permutation(len(split.labels))[:n])
    return split.images[index], split.labels[index]


def small_model(seed=0, **params):
    torch.manual_seed(seed)
    return create_backbone("small-cnn", num_classes=10, input_shape=(8, 8, 1), **params)


def noise_augmentation(x, generator=None):
    """A seeded augmentation, so resume has to restore the generator stream."""
    noise = torch.rand(x.shape, generator=generator) * 0.1
    return (x + noise.to(x.device)).clamp(0, 1)


def test_images_to_tensor_converts_at_the_boundary():
    images = np.arange(2 * 3 * 4 * 2, dtype=np.uint8).reshape(2, 3, 4, 2)
    x = images_to_tensor(images)
    assert x.dtype == torch.float32 and x.shape == (2, 2, 3, 4)
    assert x[1, 1, 2, 3].item() == pytest.approx(images[1, 2, 3, 1] / 255)


def test_split_arrays_accepts_splits_and_pairs_and_checks_them(digits_splits):
    images, labels = split_arrays(digits_splits.train)
    assert images.dtype == np.uint8 and labels.dtype == np.int64
    assert split_arrays((images[:5], labels[:5].tolist()))[1].dtype == np.int64
    with pytest.raises(UsageError, match="uint8"):
        split_arrays((images.astype(np.float32), labels))
    with pytest.raises(UsageError, match="labels"):
        split_arrays((images, labels[:3]))


def test_standard_training_learns_digits_and_writes_metrics(digits_splits, tmp_path):
    trainer = create_defense("standard", epochs=3, optimizer="adam", lr=3e-3, weight_decay=0.0, **FAST)
    model = small_model()
    history = trainer.fit(model, digits_splits.train, digits_splits.test, out_dir=tmp_path)
    assert [r.epoch for r in history.epochs] == [1, 2, 3]
    assert history[-1].val_top1 > 0.9 and history[-1].train_loss < history[0].train_loss
    assert history[-1].val_top5 >= history[-1].val_top1
    data = json.loads((tmp_path / "metrics.json").read_text())
    assert data["meta"]["defense"] == "standard" and data["meta"]["arch"] == "small-cnn"
    assert data["meta"]["params"]["optimizer"] == "adam" and len(data["epochs"]) == 3
    assert (tmp_path / "training_curves.png").read_bytes()[:4] == b"\x89PNG"
    assert not model.training


def test_fit_without_val_or_out_dir_writes_nothing(digits_splits, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    history = create_defense("standard", epochs=1, **FAST).fit(small_model(), subset(digits_splits.train, 200))
    assert history[0].val_top1 is None and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("optimizer, schedule", [("sgd", "step"), ("sgd", "cosine"), ("adam", "none")])
def test_lr_follows_the_schedule(digits_splits, optimizer, schedule):
    trainer = create_defense("standard", epochs=3, lr=0.05, optimizer=optimizer, schedule=schedule, step_size=1,
                             **FAST)
    history = trainer.fit(small_model(), subset(digits_splits.train, 130))
    expected = {"step": [0.05, 0.005, 0.0005], "cosine": [0.05, 0.0375, 0.0125], "none": [0.05] * 3}[schedule]
    assert history.column("lr") == pytest.approx(expected)


def test_progressive_unfreezing_opens_stages_on_plateaus(digits_splits, tmp_path):
    # min_delta 0.9: every epoch counts as a plateau, so each one moves the regime on
    trainer = create_defense("standard", epochs=6, unfreeze="progressive", plateau_patience=1,
                             plateau_min_delta=0.9, **FAST)
    model = small_model()
    lower_before = model.body[0].weight.detach().clone()
    upper_before = model.body[3].weight.detach().clone()
    history = trainer.fit(model, subset(digits_splits.train, 300), out_dir=tmp_path)
    # a detector needs one epoch to learn the loss, then every epoch is a plateau
    assert history.column("lr") == pytest.approx([0.01, 0.01, 0.001, 0.001, 0.001, 0.0001])
    assert history.column("stage_name") == ["head"] * 3 + ["upper backbone"] * 3
    assert history.column("event") == ["train head", None, "lr 0.001", "unfreeze upper backbone", None, "lr 0.0001"]
    assert torch.equal(model.body[0].weight, lower_before)  # the lower backbone never unfroze (2 stage_lrs)
    assert not torch.equal(model.body[3].weight, upper_before)
    assert json.loads((tmp_path / "metrics.json").read_text())["epochs"][3]["event"] == "unfreeze upper backbone"


def run(defense, train, out_dir, epochs, resume=False, **params):
    trainer = create_defense(defense, epochs=epochs, seed=3, **FAST, **params)
    model = small_model(seed=5, dropout=0.2)
    history = trainer.fit(model, train, train, out_dir=out_dir, resume=resume)
    return model, history


@pytest.mark.parametrize(
    "defense, stop, params",
    [
        # stops after the upper backbone opened (epoch 4): the optimizer has two groups to restore
        ("standard", 4, {"unfreeze": "progressive", "plateau_patience": 1, "plateau_min_delta": 0.9,
                         "optimizer": "sgd", "augmentations": [noise_augmentation]}),
        ("trades", 2, {"eps": 0.1, "steps": 2, "optimizer": "adam", "lr": 1e-3}),
    ],
)
def test_resume_gives_the_same_weights_as_an_uninterrupted_run(digits_splits, tmp_path, defense, stop, params):
    train = subset(digits_splits.train, 256)
    total = stop + 1
    straight, straight_history = run(defense, train, tmp_path / "straight", total, **params)
    run(defense, train, tmp_path / "resumed", stop, **params)  # "interrupted" after epoch `stop`
    resumed, resumed_history = run(defense, train, tmp_path / "resumed", total, resume=True, **params)
    for (name, a), b in zip(straight.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), name
    def strip(history):
        return [{k: v for k, v in r.items() if k != "seconds"} for r in history.to_dict()["epochs"]]
    assert strip(straight_history) == strip(resumed_history)
    checkpoint = torch.load(tmp_path / "resumed" / "checkpoint.pt", weights_only=True)
    assert checkpoint["epoch"] == total and {"model", "optimizer", "scheduler", "rng", "history"} <= set(checkpoint)
    if defense == "standard":
        assert "unfreeze upper backbone" in straight_history.column("event")
        assert len(checkpoint["optimizer"]["param_groups"]) == 2


def test_resume_refuses_changed_parameters_and_missing_files(digits_splits, tmp_path):
    train = subset(digits_splits.train, 130)
    run("standard", train, tmp_path, 1)
    with pytest.raises(UsageError, match="lr 0.01 -> 0.5"):
        run("standard", train, tmp_path, 2, resume=True, lr=0.5)
    with pytest.raises(UsageError, match="not found"):
        run("standard", train, tmp_path, 2, resume=tmp_path / "nope.pt")
    # resume=True with no checkpoint yet starts afresh
    _, history = run("standard", train, tmp_path / "fresh", 1, resume=True)
    assert len(history) == 1


def test_labels_outside_the_model_classes_are_rejected(digits_splits):
    images, labels = subset(digits_splits.train, 20)
    with pytest.raises(UsageError, match="labels"):
        create_defense("standard", epochs=1, **FAST).fit(small_model(), (images, labels + 10))


def test_augmentations_by_name_and_unknown_parameters():
    trainer = create_defense("standard", augmentations=["hflip", {"name": "random-crop", "padding": 1}])
    assert len(trainer.augmentations) == 2
    with pytest.raises(UsageError):
        create_defense("standard", augmentations=[42])
    with pytest.raises(UsageError, match="beta"):
        Trainer(beta=1.0)
