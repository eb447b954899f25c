"""Robustness numbers people can trust: corruption accuracy, an attack ensemble, sanity checks.

Framework-neutral: models are reached through a :class:`harness.frameworks.Runtime`.
The entry point is :func:`evaluate_robustness` (see docs/robustness.md).
"""

from .checks import FLAGS, SanityCheck
from .corruption import (
    ALL_CORRUPTIONS,
    CORRUPTIONS,
    HOLDOUT_CORRUPTIONS,
    CorruptionResult,
    corruption_accuracy,
    load_corruption_errors,
    mce,
)
from .ensemble import DEFAULT_ATTACKS, DEFAULT_EPS, Member, build_ensemble
from .evaluate import Reference, RobustnessReport, evaluate_robustness, transfer_examples

__all__ = [
    "ALL_CORRUPTIONS",
    "CORRUPTIONS",
    "DEFAULT_ATTACKS",
    "DEFAULT_EPS",
    "FLAGS",
    "HOLDOUT_CORRUPTIONS",
    "Member",
    "CorruptionResult",
    "Reference",
    "RobustnessReport",
    "SanityCheck",
    "build_ensemble",
    "corruption_accuracy",
    "evaluate_robustness",
    "load_corruption_errors",
    "mce",
    "transfer_examples",
]
