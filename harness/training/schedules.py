"""Learning-rate schedules: the rate of one epoch under step, cosine or constant decay."""

from __future__ import annotations

import math

from .config import SCHEDULES, check_choice


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
    check_choice("schedule", schedule, SCHEDULES)
    if schedule == "none":
        return float(base_lr)
    if schedule == "step":
        size = step_size or max(1, math.ceil(epochs / 3))
        return float(max(min_lr, base_lr * gamma ** (epoch // size)))
    progress = min(1.0, epoch / max(1, epochs))
    return float(min_lr + (base_lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress)))
