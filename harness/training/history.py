"""What training produced: :class:`EpochMetrics` per epoch in a :class:`TrainingHistory`, saved as
``metrics.json`` (and drawn as ``training_curves.png`` by :mod:`harness.plots`)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping

from ..atomic import write_json
from .config import to_plain

METRICS_SCHEMA_VERSION = 1
#: what a trainer writes into ``out_dir`` after every epoch (plus its framework's checkpoint)
METRICS_NAME = "metrics.json"
CURVES_NAME = "training_curves.png"


@dataclass
class EpochMetrics:
    """One epoch of training. ``event`` marks what changed at its start (e.g. an unfrozen stage)."""

    epoch: int
    train_loss: float
    train_top1: float
    train_top5: float
    lr: float
    seconds: float
    val_loss: float | None = None
    val_top1: float | None = None
    val_top5: float | None = None
    stage: int = 0
    stage_name: str = "all"
    event: str | None = None


@dataclass
class TrainingHistory:
    """Every epoch so far, plus what produced them (defense, config, model facts)."""

    epochs: list[EpochMetrics] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)

    def append(self, record: EpochMetrics) -> None:
        self.epochs.append(record)

    def __len__(self) -> int:
        return len(self.epochs)

    def __getitem__(self, index: int) -> EpochMetrics:
        return self.epochs[index]

    def column(self, name: str) -> list[Any]:
        """One metric across epochs, e.g. ``history.column("val_top1")``."""
        return [getattr(record, name) for record in self.epochs]

    @property
    def events(self) -> list[tuple[int, str]]:
        """(epoch, event) for every epoch that started with an event."""
        return [(r.epoch, r.event) for r in self.epochs if r.event]

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": METRICS_SCHEMA_VERSION,
            "meta": to_plain(self.meta),
            "epochs": [asdict(r) for r in self.epochs],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "TrainingHistory":
        known = {f.name for f in fields(EpochMetrics)}
        records = [EpochMetrics(**{k: v for k, v in r.items() if k in known}) for r in data.get("epochs", [])]
        return cls(records, dict(data.get("meta", {})))


def save_metrics_json(history: TrainingHistory, path: str | Path) -> Path:
    """Write ``history`` as JSON to ``path`` atomically (temp file + ``os.replace``)."""
    write_json(path, history.to_dict())
    return Path(path)


def load_metrics_json(path: str | Path) -> TrainingHistory:
    """Read a history written by :func:`save_metrics_json`."""
    return TrainingHistory.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))


def write_epoch_outputs(out_dir: Path, history: TrainingHistory, title: str) -> None:
    """``metrics.json`` and ``training_curves.png`` in ``out_dir`` (each written atomically)."""
    from ..plots import plot_training_curves  # matplotlib only once a trainer writes its first epoch

    save_metrics_json(history, out_dir / METRICS_NAME)
    plot_training_curves(history, out_dir / CURVES_NAME, title=title)
