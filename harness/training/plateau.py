"""The seed's fine-tuning regime driven by the training loss: :class:`PlateauDetector` says when the
loss stopped improving, :class:`ProgressiveUnfreezing` then steps the rate down or opens the next
stage of layers, and :func:`epoch_event` names what changed for the history."""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

import numpy as np

from .config import SEED_STAGE_LRS
from .history import TrainingHistory


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
