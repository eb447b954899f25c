"""The training knobs every defense shares (:class:`TrainingConfig`), checked when built."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any, Mapping, Sequence

from ..errors import UsageError

OPTIMIZERS = ("sgd", "adam")
SCHEDULES = ("step", "cosine", "none")
UNFREEZE_MODES = ("all", "progressive")
#: arithmetic of the training forward/backward passes (weights stay float32 either way)
PRECISIONS = ("fp32", "bf16", "fp16")
#: torch tensor layout of the trained model and its batches ("auto": channels_last for convolution nets on CUDA)
MEMORY_FORMATS = ("auto", "channels_last", "contiguous")

#: The seed's fine-tuning regime: head at 0.01 -> 0.001, then upper backbone at 0.001 -> 0.0001.
SEED_STAGE_LRS = ((0.01, 0.001), (0.001, 0.0001))


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
    #: "fp32", or mixed precision "bf16" / "fp16" (fp16 with loss scaling): the training passes only;
    #: weights, the saved model and evaluation stay float32 (docs/training.md, "Precision, layout, compile")
    precision: str = "fp32"
    #: torch only: "auto", "channels_last" or "contiguous"
    memory_format: str = "auto"
    #: torch: torch.compile the trained model's forward; TensorFlow: XLA (jit_compile) for the training step
    compile: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "optimizer", str(self.optimizer).lower())
        object.__setattr__(self, "schedule", str(self.schedule).lower())
        object.__setattr__(self, "unfreeze", str(self.unfreeze).lower())
        object.__setattr__(self, "precision", str(self.precision).lower())
        object.__setattr__(self, "memory_format", str(self.memory_format).lower())
        object.__setattr__(self, "stage_lrs", tuple((float(hi), float(lo)) for hi, lo in self.stage_lrs))
        object.__setattr__(self, "augmentations", tuple(self.augmentations or ()))
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        check_choice("schedule", self.schedule, SCHEDULES)
        check_choice("unfreeze", self.unfreeze, UNFREEZE_MODES)
        check_choice("precision", self.precision, PRECISIONS)
        check_choice("memory_format", self.memory_format, MEMORY_FORMATS)
        if not isinstance(self.compile, bool):
            raise UsageError(f"compile must be true or false, got {self.compile!r}")
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
                    raise UsageError("each stage_lrs entry is (start_lr, end_lr) with 0 < end <= start, "
                                     f"got {(hi, lo)}")

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


def check_choice(name: str, value: str, choices: Sequence[str]) -> None:
    """UsageError naming ``name``, the choices and the closest one unless ``value`` is among ``choices``."""
    if value not in choices:
        from ..errors import suggest

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
