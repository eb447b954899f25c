"""Framework-neutral training, shared by the PyTorch and TensorFlow trainers (no torch or tensorflow here).

- :mod:`.config`: :class:`TrainingConfig`, every common training knob, with defaults and checks;
- :mod:`.history`: :class:`EpochMetrics` / :class:`TrainingHistory`, the per-epoch record saved as
  ``metrics.json`` (curves are drawn by :func:`harness.plots.plot_training_curves`);
- :mod:`.schedules`: :func:`scheduled_lr`, step / cosine / constant learning rates;
- :mod:`.plateau`: :class:`PlateauDetector` and :class:`ProgressiveUnfreezing`, the seed regime of
  fine-tuning a pretrained backbone (train the head, step the rate down when the training loss
  plateaus, then unfreeze the next group of layers);
- :mod:`.checkpoints`: which checkpoint a resumed run continues from, and whether it may;
- :mod:`.batches`: the data boundary (:func:`split_arrays`), seeds and batch order;
- :mod:`.trainer`: :class:`TrainerBase`, the defense contract and ``fit`` over framework hooks.

Top-k accuracy lives in :mod:`harness.metrics` (re-exported here for old imports).
"""

from __future__ import annotations

from ..metrics import topk_accuracy, topk_correct
from .batches import batch_indices, check_labels, derive_seed, split_arrays
from .checkpoints import RESUMABLE_CHANGES, check_resume, find_checkpoint
from .config import (MEMORY_FORMATS, OPTIMIZERS, PRECISIONS, SCHEDULES, SEED_STAGE_LRS, UNFREEZE_MODES,
                     TrainingConfig, to_plain)
from .history import (
    CURVES_NAME,
    METRICS_NAME,
    METRICS_SCHEMA_VERSION,
    EpochMetrics,
    TrainingHistory,
    load_metrics_json,
    save_metrics_json,
    write_epoch_outputs,
)
from .plateau import PlateauDetector, ProgressiveUnfreezing, epoch_event
from .schedules import scheduled_lr
from .trainer import FitRun, TrainerBase

__all__ = [
    "CURVES_NAME", "MEMORY_FORMATS", "METRICS_NAME", "METRICS_SCHEMA_VERSION", "OPTIMIZERS", "PRECISIONS",
    "RESUMABLE_CHANGES", "SCHEDULES",
    "SEED_STAGE_LRS", "UNFREEZE_MODES", "EpochMetrics", "FitRun", "PlateauDetector", "ProgressiveUnfreezing",
    "TrainerBase", "TrainingConfig", "TrainingHistory", "batch_indices", "check_labels", "check_resume",
    "derive_seed", "epoch_event", "find_checkpoint", "load_metrics_json",
    "save_metrics_json", "scheduled_lr", "split_arrays", "to_plain", "topk_accuracy", "topk_correct",
    "write_epoch_outputs",
]
