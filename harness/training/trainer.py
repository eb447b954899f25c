"""The trainer every defense is built on: :class:`TrainerBase` writes ``fit`` once, framework-neutral,
over small hooks that each framework's ``Trainer`` fills in (no torch or tensorflow import here)."""

from __future__ import annotations

import contextlib
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, ContextManager, Iterator, Mapping

import numpy as np

from ..errors import UsageError
from ..augment import augment_batch, resolve_augmentations
from ..metrics import topk_correct
from .batches import batch_indices, check_labels, split_arrays
from .checkpoints import check_resume, find_checkpoint
from .config import TrainingConfig, to_plain
from .history import EpochMetrics, TrainingHistory, write_epoch_outputs
from .plateau import ProgressiveUnfreezing, epoch_event
from .schedules import scheduled_lr


@dataclass
class FitRun:
    """What one :meth:`TrainerBase.fit` works on; the framework hooks fill in their parts."""

    #: the model being trained (moved to ``device``)
    model: Any
    #: the framework's device (a ``torch.device``, a TensorFlow device name)
    device: Any
    #: unfreezing stages, head first: (name, the framework's parameters or layers)
    stages: list[tuple[str, Any]]
    #: model facts recorded in the history's meta (arch, parameters, device, framework version)
    facts: dict[str, Any] = field(default_factory=dict)
    #: set by :meth:`TrainerBase._open_optimizer`
    optimizer: Any = None
    #: what the training steps call (the model, or a defense's wrapper around it); set by ``_prepare``
    trained: Any = None


class TrainerBase(ABC):
    """A defense: a trainer with ``fit(model, train, val=None, out_dir=None, *, resume=False)``.

    The defense contract: a defense factory receives every :class:`TrainingConfig` knob (seed,
    progress, epochs, lr, batch_size, augmentations, ...) plus the defense's own parameters
    (declared in :attr:`defense_params` with their defaults; unknown names are a UsageError), and
    returns an object whose ``fit`` trains ``model`` in place and returns a :class:`TrainingHistory`.
    ``train``/``val`` are splits with ``.images`` (uint8 N,H,W,C) and ``.labels``, or
    ``(images, labels)`` pairs; ``out_dir`` receives metrics.json, training_curves.png and the
    framework's checkpoint after every epoch; ``resume=True`` continues from ``out_dir``'s
    checkpoint, ``resume=PATH`` from that file.

    :meth:`fit` is written once here. Each framework's ``Trainer`` sets :attr:`framework`,
    :attr:`checkpoint_name`, :attr:`checkpoint_format`, :attr:`framework_title`, a seeded
    ``generator`` (used by :meth:`augment`) and these hooks:

    - ``_num_classes(model)``: the model's class count, or None when unknown;
    - ``_setup(model)`` -> :class:`FitRun`: device resolved, model placed on it, unfreezing stages;
    - ``_device_scope(run)``: context the whole run happens in (default: none);
    - ``_read_checkpoint(path)`` -> state mapping; ``_restore(run, state)``: model weights (and RNGs);
    - ``_open_optimizer(run, count, state)`` -> optimizer with the first ``count`` stages trainable
      (and its state restored when ``state`` is a checkpoint's);
    - ``_prepare(run)`` -> what the steps call (calls the defense's ``prepare``);
    - ``_train_batches(run, images, labels, epoch, lr)``: one epoch at rate ``lr``, seeded from
      (``seed``, ``epoch``), yielding ``(index, loss, scores)`` per batch (scores: numpy N, classes);
    - ``evaluate(model, images, labels)`` -> {"loss", "top1", "top5"} on clean images;
    - ``_unfreeze(run, count)``: open stages up to ``count`` after a plateau;
    - ``_write_checkpoint(run, path, state)``: ``state`` plus the framework's arrays, atomically;
    - ``_finish(run)``: after the last epoch (default: nothing).
    """

    name: ClassVar[str] = "standard"
    framework: ClassVar[str] = ""
    #: the framework as error messages spell it ("torch", "TensorFlow")
    framework_title: ClassVar[str] = ""
    checkpoint_name: ClassVar[str] = ""
    checkpoint_format: ClassVar[str] = ""
    #: the defense's own knobs and their defaults
    defense_params: ClassVar[Mapping[str, Any]] = {}

    generator: Any

    def __init__(self, **params: Any):
        self.config, extra = TrainingConfig.split(params)
        unknown = sorted(set(extra) - set(self.defense_params))
        if unknown:
            known = ", ".join([*TrainingConfig.defaults(), *self.defense_params])
            raise UsageError(f"defense '{self.name}' has no parameter {', '.join(map(repr, unknown))}. "
                             f"Parameters: {known}")
        self.options = {**self.defense_params, **extra}
        self.augmentations = resolve_augmentations(self.config.augmentations, self.framework)
        self._open_stages = 0

    def augment(self, x: Any) -> Any:
        """The configured augmentations applied in order (seeded by the trainer's generator)."""
        return augment_batch(self.augmentations, x, framework=self.framework, generator=self.generator)

    def describe(self) -> dict[str, Any]:
        """Defense name and every parameter, JSON-friendly (recorded in metrics and checkpoints)."""
        return {"defense": self.name, "params": {**self.config.to_dict(), **to_plain(self.options)}}

    def __repr__(self) -> str:
        changed = {k: v for k, v in self.describe()["params"].items()
                   if k in self.defense_params or TrainingConfig.defaults().get(k, v) != v}
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in changed.items())})"

    def progressive_schedule(self, num_stages: int) -> "ProgressiveUnfreezing | None":
        """The progressive-unfreezing schedule over ``num_stages`` (None unless ``unfreeze="progressive"``)."""
        cfg = self.config
        if cfg.unfreeze != "progressive":
            return None
        return ProgressiveUnfreezing(cfg.stage_lrs, cfg.gamma, cfg.plateau_patience, cfg.plateau_min_delta,
                                     num_stages=num_stages)

    # ---- the training run

    def fit(self, model: Any, train: Any, val: Any = None, out_dir: str | Path | None = None, *,
            resume: bool | str | Path = False) -> TrainingHistory:
        """Train ``model`` in place and return its :class:`TrainingHistory`.

        ``out_dir`` receives metrics.json, training_curves.png and the checkpoint after every
        epoch (nothing is written when it is None). ``resume=True`` continues from the
        checkpoint in ``out_dir`` when it exists; ``resume=PATH`` from that file.
        """
        train_images, train_labels = split_arrays(train)
        val_arrays = split_arrays(val) if val is not None else None
        if not len(train_labels):
            raise UsageError("the training split is empty")
        check_labels(train_labels, self._num_classes(model))
        out_dir = Path(out_dir) if out_dir is not None else None
        run = self._setup(model)
        with self._device_scope(run):
            schedule = self.progressive_schedule(len(run.stages))
            history = TrainingHistory(meta={**self.describe(), **run.facts})
            start_epoch, state = 0, None
            checkpoint = find_checkpoint(resume, out_dir, self.checkpoint_name)
            if checkpoint is not None:
                state = self._load_checkpoint(checkpoint)
                self._restore(run, state)
                if schedule is not None:
                    schedule.load_state_dict(state["scheduler"])
                history = TrainingHistory.from_dict(state["history"])
                history.meta.update({**self.describe(), **run.facts})
                start_epoch = int(state["epoch"])
            count = (schedule.stage + 1) if schedule else len(run.stages)
            run.optimizer = self._open_optimizer(run, count, state)
            self._open_stages = count
            run.trained = self._prepare(run)
            self.run_epochs(run, history, start_epoch, schedule, (train_images, train_labels), val_arrays, out_dir)
        self._finish(run)
        return history

    def run_epochs(self, run: FitRun, history: TrainingHistory, start_epoch: int,
                   schedule: "ProgressiveUnfreezing | None", train: tuple[np.ndarray, np.ndarray],
                   val: tuple[np.ndarray, np.ndarray] | None, out_dir: Path | None) -> None:
        """The epoch loop: learning rate (schedule or progressive unfreezing), a progress bar per epoch,
        train + validation metrics into ``history``, the next stage opened on a plateau, the outputs
        and checkpoint written to ``out_dir`` after each epoch."""
        from ..progress import stage

        cfg = self.config
        images, labels = train
        stage_names = [stage[0] for stage in run.stages]
        with stage(f"train {self.name}", enabled=cfg.progress) as progress:
            for epoch in range(start_epoch, cfg.epochs):
                lr = schedule.lr if schedule else scheduled_lr(
                    epoch, cfg.lr, cfg.schedule, cfg.epochs, cfg.step_size, cfg.gamma, cfg.min_lr)
                stage = schedule.stage if schedule else 0
                stage_name = stage_names[stage] if schedule else "all"
                event = epoch_event(history, stage, stage_name, lr, schedule is not None)

                started = time.perf_counter()
                progress.bar(f"{self.name} epoch {epoch + 1}/{cfg.epochs}",
                             len(batch_indices(np.arange(len(labels)), cfg.batch_size)))
                train_loss, train_top1, train_top5 = self._train_epoch(
                    run, images, labels, epoch, lr, lambda status: progress.advance(1, status))
                val_metrics = self.evaluate(run.model, *val) if val is not None else {}
                history.append(EpochMetrics(
                    epoch=epoch + 1, train_loss=train_loss, train_top1=train_top1, train_top5=train_top5,
                    lr=lr, seconds=round(time.perf_counter() - started, 3),
                    val_loss=val_metrics.get("loss"), val_top1=val_metrics.get("top1"),
                    val_top5=val_metrics.get("top5"), stage=stage, stage_name=stage_name, event=event,
                ))
                status = f"loss {train_loss:.4f} acc {train_top1:.1%}"
                if val_metrics:
                    status += f" | val loss {val_metrics['loss']:.4f} acc {val_metrics['top1']:.1%}"
                progress.done(f"epoch {epoch + 1}/{cfg.epochs} {status} "
                              f"({time.perf_counter() - started:.1f}s)", n=0)

                if schedule is not None and schedule.update(train_loss) and schedule.stage + 1 > self._open_stages:
                    self._unfreeze(run, schedule.stage + 1)
                    self._open_stages = schedule.stage + 1
                if out_dir is not None:
                    self._save(run, out_dir, schedule, epoch + 1, history)

    def _train_epoch(self, run: FitRun, images: np.ndarray, labels: np.ndarray, epoch: int, lr: float,
                     advance: Callable[[str], None]) -> tuple[float, float, float]:
        """(mean loss, top-1, top-5) of one epoch's batches; ``advance(status)`` after each batch."""
        total_loss, top1, top5, seen = 0.0, 0, 0, 0
        for index, loss, scores in self._train_batches(run, images, labels, epoch, lr):
            n = len(index)
            total_loss += loss * n
            top1 += topk_correct(scores, labels[index], 1)
            top5 += topk_correct(scores, labels[index], 5)
            seen += n
            advance(f"loss {total_loss / seen:.4f} acc {top1 / seen:.1%}")
        return total_loss / seen, top1 / seen, top5 / seen

    # ---- checkpoints

    def _load_checkpoint(self, path: Path) -> Mapping[str, Any]:
        """The state saved in ``path``; UsageError unless this defense, with these parameters, wrote it."""
        state = self._read_checkpoint(path)
        if not isinstance(state, Mapping) or state.get("format") != self.checkpoint_format:
            raise UsageError(f"{path} is not a harness {self.framework_title} training checkpoint")
        check_resume(path, self.name, self.describe()["params"], state["defense"], state["params"])
        return state

    def _save(self, run: FitRun, out_dir: Path, schedule: "ProgressiveUnfreezing | None", epoch: int,
              history: TrainingHistory) -> None:
        """The checkpoint after ``epoch`` epochs, then metrics.json and training_curves.png."""
        out_dir.mkdir(parents=True, exist_ok=True)
        described = self.describe()
        state = {
            "format": self.checkpoint_format,
            "defense": described["defense"],
            "params": described["params"],
            "epoch": epoch,
            "scheduler": schedule.state_dict() if schedule is not None else None,
            "history": history.to_dict(),
        }
        self._write_checkpoint(run, out_dir / self.checkpoint_name, state)
        write_epoch_outputs(out_dir, history, title=f"{self.name} ({history.meta.get('arch', '')})")

    # ---- framework hooks (see the class docstring)

    @abstractmethod
    def _num_classes(self, model: Any) -> int | None:
        """The model's number of classes (None: unknown, labels unchecked)."""

    @abstractmethod
    def _setup(self, model: Any) -> FitRun:
        """Device resolved, ``model`` placed on it, its unfreezing stages listed."""

    def _device_scope(self, run: FitRun) -> ContextManager[Any]:
        """The context the whole run happens in."""
        return contextlib.nullcontext()

    @abstractmethod
    def _read_checkpoint(self, path: Path) -> Mapping[str, Any]:
        """The state saved in ``path`` (its format is checked by the caller)."""

    @abstractmethod
    def _restore(self, run: FitRun, state: Mapping[str, Any]) -> None:
        """Model weights (and random states) from a checkpoint's ``state``."""

    @abstractmethod
    def _open_optimizer(self, run: FitRun, count: int, state: Mapping[str, Any] | None) -> Any:
        """An optimizer with the first ``count`` stages trainable, restored from ``state`` when given."""

    @abstractmethod
    def _prepare(self, run: FitRun) -> Any:
        """What the training steps call, after the defense's own ``prepare``."""

    @abstractmethod
    def _train_batches(self, run: FitRun, images: np.ndarray, labels: np.ndarray, epoch: int,
                       lr: float) -> Iterator[tuple[np.ndarray, float, np.ndarray]]:
        """Train one seeded epoch at ``lr``, yielding (index, loss, numpy scores) per batch."""

    @abstractmethod
    def evaluate(self, model: Any, images: np.ndarray, labels: np.ndarray) -> dict[str, float]:
        """Clean loss, top-1 and top-5 accuracy of ``model`` on uint8 NHWC ``images``."""

    @abstractmethod
    def _unfreeze(self, run: FitRun, count: int) -> None:
        """Open the stages up to ``count`` (after a plateau)."""

    @abstractmethod
    def _write_checkpoint(self, run: FitRun, path: Path, state: dict[str, Any]) -> None:
        """``state`` plus the framework's weights and optimizer state, written atomically to ``path``."""

    def _finish(self, run: FitRun) -> None:
        """After the last epoch."""
