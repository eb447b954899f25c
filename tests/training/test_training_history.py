"""harness.training.history: metrics.json written and read back, the per-epoch outputs of a trainer."""

from __future__ import annotations

import json

from harness.plots import plot_training_curves
from harness.training import EpochMetrics, TrainingHistory, load_metrics_json, save_metrics_json, write_epoch_outputs


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


def test_epoch_outputs_are_metrics_and_curves_with_and_without_val(tmp_path):
    write_epoch_outputs(tmp_path, make_history(events={2: "train head", 4: "unfreeze upper backbone"}), "title")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json", "training_curves.png"]
    assert (tmp_path / "training_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len(load_metrics_json(tmp_path / "metrics.json")) == 6
    history = make_history(3)
    for record in history.epochs:
        record.val_loss = record.val_top1 = None
    assert plot_training_curves(history, tmp_path / "no_val.png").stat().st_size > 1000
