"""Every hook a harness plugin can implement.

Each hook returns a list of spec dataclasses (see :mod:`harness.specs`).
Implement them with ``from harness import hookimpl``.
"""

from __future__ import annotations

import pluggy

from .specs import AttackSpec, AugmentationSpec, BackboneSpec, DatasetSpec, DefenseSpec

hookspec = pluggy.HookspecMarker("harness")


@hookspec
def harness_register_datasets() -> list[DatasetSpec]:
    """Return the datasets this plugin provides."""


@hookspec
def harness_register_backbones() -> list[BackboneSpec]:
    """Return the model architectures (backbones) this plugin provides."""


@hookspec
def harness_register_augmentations() -> list[AugmentationSpec]:
    """Return the augmentations and perturbations this plugin provides."""


@hookspec
def harness_register_attacks() -> list[AttackSpec]:
    """Return the adversarial attacks this plugin provides."""


@hookspec
def harness_register_defenses() -> list[DefenseSpec]:
    """Return the defenses (training procedures) this plugin provides."""
