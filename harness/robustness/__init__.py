"""Robustness numbers people can trust: corruption accuracy, attack ensembles, sanity checks.

Framework-neutral: models are reached through a :class:`harness.frameworks.Runtime`.
"""

from .corruption import (
    ALL_CORRUPTIONS,
    CORRUPTIONS,
    HOLDOUT_CORRUPTIONS,
    CorruptionResult,
    corruption_accuracy,
    load_corruption_errors,
    mce,
)

__all__ = [
    "ALL_CORRUPTIONS",
    "CORRUPTIONS",
    "HOLDOUT_CORRUPTIONS",
    "CorruptionResult",
    "corruption_accuracy",
    "load_corruption_errors",
    "mce",
]
