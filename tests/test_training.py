"""harness.training: the framework-neutral pieces of every trainer."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from harness.errors import UsageError
from harness.training import (
    EpochMetrics,
    PlateauDetector,
    ProgressiveUnfreezing,
    TrainingConfig,
    TrainingHistory,
    load_metrics_json,
    plot_training_curves,
    save_metrics_json,
    scheduled_lr,
    topk_accuracy,
    topk_correct,
)


def make_history(n=6, events=None) -> TrainingHistory:
    events = events or {}
    history = TrainingHistory(meta={"defense": "standard", "params": {"lr": 0.01}})
    for epoch in range(1, n + 1):
        history.append(EpochMetrics(
            epoch=epoch, train_loss=1.0 / epoch, train_top1=1 - 0.5 / epoch, train_top5=1.0, lr=0.01,
            seconds=0.1, val_loss=1.2 / epoch, val_top1=1 - 0.6 / epoch, val_top5=1.0,
            stage=1 if epoch in events else 0, event=events.get(epoch),
        ))
    return history


def test_importing_training_does_not_import_a_framework():
    code = "import sys, harness.training; print(any(m in sys.modules for m in ('torch', 'tensorflow', 'matplotlib')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_config_defaults_are_plain_values_and_round_trip():
    defaults = TrainingConfig.defaults()
    assert defaults["optimizer"] == "sgd" and defaults["stage_lrs"] == [[0.01, 0.001], [0.001, 0.0001]]
    json.dumps(defaults)  # a plugin spec's params must be plain data
    assert TrainingConfig(**defaults) == TrainingConfig()


def test_config_split_separates_defense_knobs():
    config, rest = TrainingConfig.split({"epochs": 3, "lr": 0.1, "beta": 6.0})
    assert (config.epochs, config.lr, rest) == (3, 0.1, {"beta": 6.0})


@pytest.mark.parametrize(
    "params, words",
    [
        ({"optimizer": "adamw"}, ["optimizer", "adam"]),
        ({"schedule": "cosin"}, ["schedule", "Did you mean 'cosine'"]),
        ({"unfreeze": "some"}, ["unfreeze"]),
        ({"epochs": 0}, ["epochs"]),
        ({"lr": 0}, ["lr"]),
        ({"gamma": 2.0}, ["gamma"]),
        ({"unfreeze": "progressive", "stage_lrs": [[0.001, 0.01]]}, ["stage_lrs"]),
    ],
)
def test_config_rejects_bad_values_by_name(params, words):
    with pytest.raises(UsageError) as info:
        TrainingConfig(**params)
    for word in words:
        assert word in info.value.message


def test_step_schedule_steps_down_every_step_size_epochs():
    lrs = [scheduled_lr(e, 0.1, "step", epochs=9, step_size=3, gamma=0.1) for e in range(9)]
    assert lrs == pytest.approx([0.1] * 3 + [0.01] * 3 + [0.001] * 3)
    # default step size: a third of the run
    assert scheduled_lr(4, 0.1, "step", epochs=12) == pytest.approx(0.01)
    assert scheduled_lr(8, 0.1, "step", epochs=9, step_size=1, min_lr=1e-4) == pytest.approx(1e-4)


def test_cosine_schedule_runs_from_base_to_min():
    lrs = [scheduled_lr(e, 0.1, "cosine", epochs=10, min_lr=0.001) for e in range(11)]
    assert lrs[0] == pytest.approx(0.1) and lrs[5] == pytest.approx(0.0505) and lrs[10] == pytest.approx(0.001)
    assert all(a >= b for a, b in zip(lrs, lrs[1:]))
    assert scheduled_lr(7, 0.1, "none", epochs=10) == 0.1


def test_plateau_detector_fires_after_patience_flat_updates():
    detector = PlateauDetector(patience=2, min_delta=0.01)
    fired = [detector.update(v) for v in [1.0, 0.8, 0.6, 0.599, 0.598, 0.5, 0.499, 0.4995]]
    assert fired == [False, False, False, False, True, False, False, True]
    state = detector.state_dict()
    other = PlateauDetector(2, 0.01)
    other.load_state_dict(state)
    assert other.update(0.4999) == detector.update(0.4999)


def test_progressive_unfreezing_follows_the_seed_regime():
    schedule = ProgressiveUnfreezing(gamma=0.1, patience=1, min_delta=0.01)
    assert (schedule.stage, schedule.lr) == (0, 0.01)
    events = [schedule.update(loss) for loss in [1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.5]]
    # plateau at 0.01 -> step to 0.001 (the head's end rate); plateau again -> unfreeze stage 1 at 0.001;
    # loss improves, then plateaus: step to 0.0001, then nothing left to open
    assert events == [None, "lr -> 0.001", "unfreeze 1", None, "lr -> 0.0001", None, None]
    assert (schedule.stage, schedule.lr) == (1, pytest.approx(0.0001))
    copy = ProgressiveUnfreezing()
    copy.load_state_dict(schedule.state_dict())
    assert (copy.stage, copy.lr) == (schedule.stage, schedule.lr)


def test_progressive_unfreezing_is_capped_by_the_model_stages():
    schedule = ProgressiveUnfreezing(num_stages=1, patience=1)
    events = [schedule.update(1.0) for _ in range(4)]
    assert "unfreeze 1" not in events and schedule.stage == 0


def test_topk_matches_a_brute_force_count():
    rng = np.random.default_rng(0)
    scores, labels = rng.normal(size=(200, 12)), rng.integers(0, 12, 200)
    ranks = (scores > scores[np.arange(200), labels][:, None]).sum(axis=1)
    for k in (1, 3, 5):
        assert topk_correct(scores, labels, k) == int((ranks < k).sum())
    assert topk_accuracy(scores, labels, (1, 12)) == {1: pytest.approx((ranks < 1).mean()), 12: 1.0}
    with pytest.raises(ValueError):
        topk_correct(scores, labels[:10], 1)


def test_metrics_json_is_written_atomically_and_reads_back(tmp_path):
    history = make_history(events={3: "unfreeze upper backbone"})
    path = save_metrics_json(history, tmp_path / "run" / "metrics.json")
    data = json.loads(path.read_text())
    assert data["schema_version"] == 1 and len(data["epochs"]) == 6
    assert set(data["epochs"][0]) >= {"epoch", "train_loss", "train_top1", "train_top5", "val_loss", "val_top1",
                                      "val_top5", "lr", "seconds", "stage", "stage_name", "event"}
    assert [p.name for p in path.parent.iterdir()] == ["metrics.json"]  # no temp file left behind
    again = load_metrics_json(path)
    assert again.to_dict() == history.to_dict()
    assert again.events == [(3, "unfreeze upper backbone")]


def test_training_curves_png_with_and_without_val(tmp_path):
    path = plot_training_curves(make_history(events={2: "train head", 4: "unfreeze upper backbone"}),
                                tmp_path / "curves.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    history = make_history(3)
    for record in history.epochs:
        record.val_loss = record.val_top1 = None
    assert plot_training_curves(history, tmp_path / "no_val.png").stat().st_size > 1000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["curves.png", "no_val.png"]
