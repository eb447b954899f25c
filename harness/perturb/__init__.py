"""Framework-neutral perturbation maths: severity tables, noise models and the augmentation classes.

Nothing here imports torch or tensorflow. Framework plugins supply an
:class:`~harness.perturb.noise.ArrayOps` implementation and reuse the noise maths, and an
:class:`~harness.perturb.augmentations.AugmentOps` one to get the augmentation classes
(:func:`~harness.perturb.augmentations.augmentation_classes`).
"""

from .noise import (
    NOISE_NAMES,
    NOISE_SEVERITY,
    ArrayOps,
    NumpyOps,
    apply_noise,
    gaussian_noise,
    noise_params,
    numpy_noise,
    salt_and_pepper,
    shot_noise,
)
from .severity import AUGMENTATION_PARAMS, AUGMENTATION_SEVERITY, SEVERITIES, check_severity, resolve

__all__ = [
    "AUGMENTATION_PARAMS",
    "AUGMENTATION_SEVERITY",
    "NOISE_NAMES",
    "NOISE_SEVERITY",
    "SEVERITIES",
    "ArrayOps",
    "NumpyOps",
    "apply_noise",
    "check_severity",
    "gaussian_noise",
    "noise_params",
    "numpy_noise",
    "resolve",
    "salt_and_pepper",
    "shot_noise",
]
