"""Framework-neutral training pieces shared by the PyTorch and TensorFlow trainers.

- :class:`TrainingConfig`: every common training knob, with defaults and checks;
- :class:`EpochMetrics` / :class:`TrainingHistory`: the per-epoch record, saved as
  JSON (:func:`save_metrics_json`) and drawn as curves (:func:`harness.plots.plot_training_curves`);
- :func:`scheduled_lr`: step / cosine / constant learning-rate maths;
- :class:`PlateauDetector` and :class:`ProgressiveUnfreezing`: the seed regime of
  fine-tuning a pretrained backbone -- train the head, step the learning rate down
  when the training loss plateaus, then unfreeze the next group of layers;
- :func:`topk_correct` / :func:`topk_accuracy`: top-k accuracy in numpy;
- the trainers' common plumbing: :func:`split_arrays` (the data boundary),
  :func:`derive_seed`, :func:`batch_indices`, :func:`resolve_augmentations`,
  :func:`epoch_event`, :func:`find_checkpoint`, :func:`check_resume`,
  :func:`write_epoch_outputs`.

Nothing here imports torch or tensorflow (nor matplotlib: pictures are drawn by :mod:`harness.plots`).
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterable, Mapping, Sequence

import numpy as np

from .atomic import write_json
from .errors import UsageError
from .plots import plot_training_curves

METRICS_SCHEMA_VERSION = 1
#: what a trainer writes into ``out_dir`` after every epoch (plus its framework's checkpoint)
METRICS_NAME = "metrics.json"
CURVES_NAME = "training_curves.png"
#: knobs that may change between a run and its resumption
RESUMABLE_CHANGES = frozenset({"epochs", "progress", "device", "eval_batch_size"})
OPTIMIZERS = ("sgd", "adam")
SCHEDULES = ("step", "cosine", "none")
UNFREEZE_MODES = ("all", "progressive")

#: The seed's fine-tuning regime: head at 0.01 -> 0.001, then upper backbone at 0.001 -> 0.0001.
SEED_STAGE_LRS = ((0.01, 0.001), (0.001, 0.0001))


# --------------------------------------------------------------------------- configuration


@dataclass(frozen=True)
class TrainingConfig:
    """The training knobs every defense shares, whatever the framework.

    With ``unfreeze="all"`` every parameter trains from the first epoch and the
    learning rate follows ``schedule``. With ``unfreeze="progressive"`` the model's
    unfreezing stages (head, upper backbone, lower backbone) open one after the
    other: stage *i* trains from ``stage_lrs[i][0]``, the rate is multiplied by
    ``gamma`` each time the training loss plateaus until it reaches
    ``stage_lrs[i][1]``, and the next plateau unfreezes stage *i + 1*. Stages
    beyond ``len(stage_lrs)`` stay frozen; ``lr`` and ``schedule`` are then unused.
    """

    epochs: int = 10
    batch_size: int = 128
    eval_batch_size: int = 512
    optimizer: str = "sgd"
    lr: float = 0.01
    momentum: float = 0.9
    nesterov: bool = False
    weight_decay: float = 5e-4
    schedule: str = "step"
    #: epochs between step-downs; None: a third of ``epochs``
    step_size: int | None = None
    gamma: float = 0.1
    min_lr: float = 0.0
    label_smoothing: float = 0.0
    unfreeze: str = "all"
    stage_lrs: tuple[tuple[float, float], ...] = SEED_STAGE_LRS
    plateau_patience: int = 2
    #: relative improvement of the training loss that still counts as progress
    plateau_min_delta: float = 0.01
    #: augmentation names, {"name": ..., **params} tables or callables, applied in order to training batches
    augmentations: tuple[Any, ...] = ()
    seed: int = 0
    device: str = "auto"
    progress: bool = True

    def __post_init__(self) -> None:
        object.__setattr__(self, "optimizer", str(self.optimizer).lower())
        object.__setattr__(self, "schedule", str(self.schedule).lower())
        object.__setattr__(self, "unfreeze", str(self.unfreeze).lower())
        object.__setattr__(self, "stage_lrs", tuple((float(hi), float(lo)) for hi, lo in self.stage_lrs))
        object.__setattr__(self, "augmentations", tuple(self.augmentations or ()))
        _check_choice("optimizer", self.optimizer, OPTIMIZERS)
        _check_choice("schedule", self.schedule, SCHEDULES)
        _check_choice("unfreeze", self.unfreeze, UNFREEZE_MODES)
        for name in ("epochs", "batch_size", "eval_batch_size", "plateau_patience"):
            if int(getattr(self, name)) < 1:
                raise UsageError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.lr <= 0:
            raise UsageError(f"lr must be positive, got {self.lr}")
        if self.step_size is not None and self.step_size < 1:
            raise UsageError(f"step_size must be at least 1 (or None), got {self.step_size}")
        if not 0 < self.gamma <= 1:
            raise UsageError(f"gamma must be in (0, 1], got {self.gamma}")
        if not 0 <= self.label_smoothing < 1:
            raise UsageError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if self.unfreeze == "progressive":
            if not self.stage_lrs:
                raise UsageError("unfreeze='progressive' needs at least one entry in stage_lrs")
            for hi, lo in self.stage_lrs:
                if not 0 < lo <= hi:
                    raise UsageError(f"each stage_lrs entry is (start_lr, end_lr) with 0 < end <= start, got {(hi, lo)}")

    @classmethod
    def defaults(cls) -> dict[str, Any]:
        """Every knob and its default, for a plugin spec's ``params``."""
        return {f.name: to_plain(getattr(cls(), f.name)) for f in fields(cls)}

    @classmethod
    def split(cls, params: Mapping[str, Any]) -> tuple["TrainingConfig", dict[str, Any]]:
        """Split ``params`` into a config and the remaining (defense-specific) knobs."""
        names = {f.name for f in fields(cls)}
        config = cls(**{k: v for k, v in params.items() if k in names})
        return config, {k: v for k, v in params.items() if k not in names}

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly view (callables in ``augmentations`` become their repr)."""
        return {k: to_plain(v) for k, v in asdict(self).items()}


def _check_choice(name: str, value: str, choices: Sequence[str]) -> None:
    if value not in choices:
        from .registry import suggest

        raise UsageError(f"{name} must be one of {', '.join(choices)}, got {value!r}.{suggest(value, choices)}")


def to_plain(value: Any) -> Any:
    """Tuples to lists, callables to their repr: something JSON, TOML and torch.load(weights_only) hold."""
    if isinstance(value, (list, tuple)):
        return [to_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {str(k): to_plain(v) for k, v in value.items()}
    for plain in (bool, int, float, str):  # subclasses too (numpy floats, torch's version string)
        if isinstance(value, plain):
            return plain(value)
    return None if value is None else repr(value)


# --------------------------------------------------------------------------- history


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
    import json

    return TrainingHistory.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))


# --------------------------------------------------------------------------- learning-rate schedules


def scheduled_lr(
    epoch: int,
    base_lr: float,
    schedule: str,
    epochs: int,
    step_size: int | None = None,
    gamma: float = 0.1,
    min_lr: float = 0.0,
) -> float:
    """The learning rate of 0-based ``epoch`` under ``schedule`` (step, cosine or none).

    step: ``base_lr * gamma ** (epoch // step_size)`` (step_size defaults to a third
    of ``epochs``), never below ``min_lr``; cosine: from ``base_lr`` down to ``min_lr``
    over ``epochs``; none: ``base_lr``.
    """
    _check_choice("schedule", schedule, SCHEDULES)
    if schedule == "none":
        return float(base_lr)
    if schedule == "step":
        size = step_size or max(1, math.ceil(epochs / 3))
        return float(max(min_lr, base_lr * gamma ** (epoch // size)))
    progress = min(1.0, epoch / max(1, epochs))
    return float(min_lr + (base_lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress)))


class PlateauDetector:
    """Says when a loss has stopped improving.

    A value improves when it is below ``best * (1 - min_delta)``; after
    ``patience`` updates without improvement :meth:`update` returns True (once,
    then it starts counting again from the current best).
    """

    def __init__(self, patience: int = 2, min_delta: float = 0.01):
        self.patience = int(patience)
        self.min_delta = float(min_delta)
        self.reset()

    def reset(self) -> None:
        self.best = math.inf
        self.bad_updates = 0

    def update(self, value: float) -> bool:
        value = float(value)
        if value < self.best * (1.0 - self.min_delta) or math.isinf(self.best):
            self.best = min(value, self.best)
            self.bad_updates = 0
            return False
        self.bad_updates += 1
        if self.bad_updates >= self.patience:
            self.bad_updates = 0
            self.best = min(value, self.best)
            return True
        return False

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "bad_updates": self.bad_updates}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.best = float(state["best"])
        self.bad_updates = int(state["bad_updates"])


class ProgressiveUnfreezing:
    """Stage machine of the seed's fine-tuning regime, driven by the training loss.

    ``stage_lrs[i] = (start, end)``: stage *i* trains at ``start``; on each plateau
    the rate is multiplied by ``gamma`` (not below ``end``); a plateau at ``end``
    opens stage *i + 1*. ``num_stages`` caps the stages (the model may have fewer).
    """

    def __init__(
        self,
        stage_lrs: Sequence[tuple[float, float]] = SEED_STAGE_LRS,
        gamma: float = 0.1,
        patience: int = 2,
        min_delta: float = 0.01,
        num_stages: int | None = None,
    ):
        self.stage_lrs = [(float(hi), float(lo)) for hi, lo in stage_lrs]
        if num_stages is not None:
            self.stage_lrs = self.stage_lrs[: max(1, num_stages)]
        self.gamma = float(gamma)
        self.detector = PlateauDetector(patience, min_delta)
        self.stage = 0
        self.lr = self.stage_lrs[0][0]

    @property
    def final_stage(self) -> int:
        return len(self.stage_lrs) - 1

    def update(self, train_loss: float) -> str | None:
        """Feed one epoch's training loss; return the event it causes, if any.

        Events: ``"lr -> <rate>"`` after a step-down, ``"unfreeze <stage>"`` when a
        stage opens (the caller unfreezes it and uses :attr:`lr`).
        """
        if not self.detector.update(train_loss):
            return None
        end = self.stage_lrs[self.stage][1]
        if self.lr > end * (1 + 1e-9):
            self.lr = max(end, self.lr * self.gamma)
            return f"lr -> {self.lr:g}"
        if self.stage < self.final_stage:
            self.stage += 1
            self.lr = self.stage_lrs[self.stage][0]
            self.detector.reset()
            return f"unfreeze {self.stage}"
        return None

    def state_dict(self) -> dict[str, Any]:
        return {"stage": self.stage, "lr": self.lr, "detector": self.detector.state_dict()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.stage = int(state["stage"])
        self.lr = float(state["lr"])
        self.detector.load_state_dict(state["detector"])


# --------------------------------------------------------------------------- accuracy


def topk_correct(scores: np.ndarray, labels: np.ndarray, k: int) -> int:
    """How many rows of ``scores`` (N, classes) have their label among the top ``k``.

    ``k`` larger than the number of classes counts every row as correct.
    """
    scores = np.asarray(scores)
    labels = np.asarray(labels).reshape(-1)
    if scores.ndim != 2 or len(scores) != len(labels):
        raise ValueError(f"scores must be (N, classes) matching {len(labels)} labels, got {scores.shape}")
    if k >= scores.shape[1]:
        return int(len(labels))
    top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    return int((top == labels[:, None]).any(axis=1).sum())


def topk_accuracy(scores: np.ndarray, labels: np.ndarray, ks: Iterable[int] = (1, 5)) -> dict[int, float]:
    """{k: fraction of rows whose label is among the top k scores}."""
    n = max(1, len(np.asarray(labels).reshape(-1)))
    return {k: topk_correct(scores, labels, k) / n for k in ks}


# --------------------------------------------------------------------------- trainer plumbing


def split_arrays(split: Any) -> tuple[np.ndarray, np.ndarray]:
    """(uint8 N,H,W,C images, int64 labels) from an ImageSplit-like object or a pair."""
    if hasattr(split, "images") and hasattr(split, "labels"):
        images, labels = split.images, split.labels
    elif isinstance(split, (tuple, list)) and len(split) == 2:
        images, labels = split
    else:
        raise UsageError(f"expected a split with .images/.labels or an (images, labels) pair, got {type(split).__name__}")
    images, labels = np.asarray(images), np.asarray(labels).astype(np.int64).reshape(-1)
    if images.dtype != np.uint8 or images.ndim != 4:
        raise UsageError(f"images must be uint8 N,H,W,C, got {images.dtype} with shape {images.shape}")
    if len(images) != len(labels):
        raise UsageError(f"{len(images)} images but {len(labels)} labels")
    return images, labels


def check_labels(labels: np.ndarray, num_classes: int | None) -> None:
    """UsageError unless every label is a class index of the model."""
    if num_classes is not None and len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        raise UsageError(f"labels must be in [0, {num_classes}), got {labels.min()}..{labels.max()}")


def derive_seed(*parts: int) -> int:
    """A 63-bit seed derived from integers (run seed, epoch, stream)."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1, dtype=np.uint64)[0] >> 1)


def batch_indices(order: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """Chunks of ``order``; a last chunk of one image joins the previous one (BatchNorm needs two)."""
    order = np.asarray(order)
    chunks = [order[start:start + batch_size] for start in range(0, len(order), batch_size)]
    if len(chunks) > 1 and len(chunks[-1]) == 1:
        chunks[-2] = np.concatenate([chunks[-2], chunks.pop()])
    return chunks


def resolve_augmentations(specs: Sequence[Any], framework: str) -> list[Any]:
    """Callables from augmentation names, ``{"name": ..., **params}`` tables or callables (for ``framework``)."""
    augmentations = []
    for spec in specs:
        if callable(spec):
            augmentations.append(spec)
            continue
        from .registry import create_augmentation

        if isinstance(spec, str):
            augmentations.append(create_augmentation(spec, framework))
        elif isinstance(spec, Mapping) and "name" in spec:
            params = {k: v for k, v in spec.items() if k != "name"}
            augmentations.append(create_augmentation(spec["name"], framework, **params))
        else:
            raise UsageError(f"an augmentation is a name, a {{'name': ..., **params}} table or a callable; got {spec!r}")
    return augmentations


def epoch_event(history: TrainingHistory, stage: int, stage_name: str, lr: float, progressive: bool) -> str | None:
    """What changed at the start of an epoch under progressive unfreezing (None otherwise)."""
    if not progressive:
        return None
    if not history.epochs:
        return f"train {stage_name}"
    last = history.epochs[-1]
    if stage != last.stage:
        return f"unfreeze {stage_name}"
    if not np.isclose(lr, last.lr):
        return f"lr {lr:g}"
    return None


def find_checkpoint(resume: bool | str | Path | None, out_dir: Path | None, name: str) -> Path | None:
    """The checkpoint ``fit(..., resume=...)`` continues from: None (start afresh), ``out_dir/name`` or a path."""
    if resume is False or resume is None:
        return None
    if resume is True:
        if out_dir is None:
            raise UsageError(f"resume=True needs out_dir (where {name} is)")
        path = out_dir / name
        return path if path.is_file() else None
    path = Path(resume)
    if not path.is_file():
        raise UsageError(f"checkpoint to resume from not found: {path}")
    return path


def check_resume(path: Path, defense: str, params: Mapping[str, Any], saved_defense: str,
                 saved_params: Mapping[str, Any]) -> None:
    """UsageError when a checkpoint was written by another defense or with other parameters.

    Only :data:`RESUMABLE_CHANGES` may differ between a run and its resumption.
    """
    if saved_defense != defense:
        raise UsageError(f"{path} was written by defense '{saved_defense}', not '{defense}'")
    changed = sorted(k for k in set(params) | set(saved_params)
                     if k not in RESUMABLE_CHANGES and params.get(k) != saved_params.get(k))
    if changed:
        raise UsageError(
            f"cannot resume from {path}: parameters changed: "
            + ", ".join(f"{k} {saved_params.get(k)!r} -> {params.get(k)!r}" for k in changed),
            hint="use the checkpoint's parameters, or a fresh out_dir",
        )


def write_epoch_outputs(out_dir: Path, history: TrainingHistory, title: str) -> None:
    """``metrics.json`` and ``training_curves.png`` in ``out_dir`` (each written atomically)."""
    save_metrics_json(history, out_dir / METRICS_NAME)
    plot_training_curves(history, out_dir / CURVES_NAME, title=title)


class TrainerBase:
    """What the PyTorch and TensorFlow trainers share: the training knobs and the defense's own
    parameters checked by name, the augmentations resolved for ``framework``, the description and
    the repr. Each framework's ``Trainer`` sets :attr:`framework` and adds the generator and loop."""

    name: ClassVar[str] = "standard"
    framework: ClassVar[str] = ""
    #: the defense's own knobs and their defaults
    defense_params: ClassVar[Mapping[str, Any]] = {}

    def __init__(self, **params: Any):
        self.config, extra = TrainingConfig.split(params)
        unknown = sorted(set(extra) - set(self.defense_params))
        if unknown:
            known = ", ".join([*TrainingConfig.defaults(), *self.defense_params])
            raise UsageError(f"defense '{self.name}' has no parameter {', '.join(map(repr, unknown))}. Parameters: {known}")
        self.options = {**self.defense_params, **extra}
        self.augmentations = resolve_augmentations(self.config.augmentations, self.framework)
        self._open_stages = 0

    def augment(self, x: Any) -> Any:
        """The configured augmentations applied in order (seeded by the trainer's generator)."""
        for augmentation in self.augmentations:
            x = augmentation(x, generator=self.generator)
        return x

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

    def run_epochs(self, *, history: TrainingHistory, start_epoch: int, train_count: int,
                   schedule: "ProgressiveUnfreezing | None", stage_names: Sequence[str],
                   train_epoch: Callable[[int, float, Callable[[str], None]], tuple[float, float, float]],
                   validate: Callable[[], dict[str, float]], open_stages: Callable[[int], None],
                   save: Callable[[int], None] | None) -> None:
        """The epoch loop of both frameworks: learning rate (schedule or progressive unfreezing), a progress
        bar per epoch, train + validation metrics into ``history``, the next stage opened on a plateau,
        ``save(epochs done)`` after each epoch. ``train_epoch(epoch, lr, advance)`` sets ``lr`` and trains one
        epoch, calling ``advance(status)`` per batch; it returns (loss, top-1, top-5)."""
        from .progress import make_progress

        cfg = self.config
        with make_progress(disable=not cfg.progress, transient=False) as progress:
            for epoch in range(start_epoch, cfg.epochs):
                lr = schedule.lr if schedule else scheduled_lr(
                    epoch, cfg.lr, cfg.schedule, cfg.epochs, cfg.step_size, cfg.gamma, cfg.min_lr)
                stage = schedule.stage if schedule else 0
                stage_name = stage_names[stage] if schedule else "all"
                event = epoch_event(history, stage, stage_name, lr, schedule is not None)

                started = time.perf_counter()
                task = progress.add_task(f"{self.name} epoch {epoch + 1}/{cfg.epochs}",
                                         total=len(batch_indices(np.arange(train_count), cfg.batch_size)),
                                         status="")
                train_loss, train_top1, train_top5 = train_epoch(
                    epoch, lr, lambda status: progress.update(task, advance=1, status=status))
                val_metrics = validate()
                history.append(EpochMetrics(
                    epoch=epoch + 1, train_loss=train_loss, train_top1=train_top1, train_top5=train_top5,
                    lr=lr, seconds=round(time.perf_counter() - started, 3),
                    val_loss=val_metrics.get("loss"), val_top1=val_metrics.get("top1"),
                    val_top5=val_metrics.get("top5"), stage=stage, stage_name=stage_name, event=event,
                ))
                status = f"loss {train_loss:.4f} acc {train_top1:.1%}"
                if val_metrics:
                    status += f" | val loss {val_metrics['loss']:.4f} acc {val_metrics['top1']:.1%}"
                progress.update(task, status=status)

                if schedule is not None and schedule.update(train_loss) and schedule.stage + 1 > self._open_stages:
                    open_stages(schedule.stage + 1)
                if save is not None:
                    save(epoch + 1)
