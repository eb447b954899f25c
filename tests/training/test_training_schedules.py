"""harness.training.schedules and .plateau: learning rates per epoch, plateaus and progressive unfreezing."""

from __future__ import annotations

import pytest

from harness.training import EpochMetrics, PlateauDetector, ProgressiveUnfreezing, TrainingHistory, scheduled_lr
from harness.training.plateau import epoch_event


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


def test_epoch_event_names_what_changed_under_progressive_unfreezing():
    history = TrainingHistory()
    assert epoch_event(history, 0, "head", 0.01, progressive=False) is None
    assert epoch_event(history, 0, "head", 0.01, progressive=True) == "train head"
    history.append(EpochMetrics(epoch=1, train_loss=1.0, train_top1=0.5, train_top5=0.9, lr=0.01, seconds=0.1))
    assert epoch_event(history, 0, "head", 0.01, progressive=True) is None
    assert epoch_event(history, 0, "head", 0.001, progressive=True) == "lr 0.001"
    assert epoch_event(history, 1, "upper backbone", 0.001, progressive=True) == "unfreeze upper backbone"
