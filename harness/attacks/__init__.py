"""Attacks, framework-neutral: the shared parameter spec (:mod:`.config`) and the FGSM/BIM/PGD
loop written once over a per-framework ops adapter (:mod:`.driver`).

Budgets are in pixel space [0, 1] (``eps = 8/255`` is 8 grey levels). Nothing here imports
torch or TensorFlow; ``harness_torch.attacks`` and ``harness_tf.attacks`` supply the adapters.
"""

from .config import (
    ATTACK_CLASSES,
    ATTACK_DESCRIPTIONS,
    ATTACK_PARAMS,
    DEFAULT_EPS,
    MODES,
    NORMS,
    STEP_FACTOR,
    AttackBase,
    AttackConfig,
    attack_classes,
    mode_labels,
)
from .driver import (AttackOps, Best, DriverAttack, Steps, checked_images, predicted_labels, project, random_delta,
                     run, take_step)

__all__ = [
    "ATTACK_CLASSES",
    "ATTACK_DESCRIPTIONS",
    "ATTACK_PARAMS",
    "DEFAULT_EPS",
    "MODES",
    "NORMS",
    "STEP_FACTOR",
    "AttackBase",
    "AttackConfig",
    "AttackOps",
    "Best",
    "DriverAttack",
    "Steps",
    "attack_classes",
    "checked_images",
    "mode_labels",
    "predicted_labels",
    "project",
    "random_delta",
    "run",
    "take_step",
]
