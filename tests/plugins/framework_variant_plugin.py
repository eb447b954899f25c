"""Registers 'sample-uniform' again for one framework: a second variant, not a duplicate of an 'any' one."""

from harness import hookimpl
from harness.specs import AttackSpec, AugmentationSpec


@hookimpl
def harness_register_attacks():
    return [AttackSpec(name="variant-attack", factory="math:sqrt", description="torch flavour", framework="torch"),
            AttackSpec(name="variant-attack", factory="math:floor", description="tf flavour", framework="tf")]


@hookimpl
def harness_register_augmentations():
    return [AugmentationSpec(name="variant-aug", factory="math:sqrt", description="torch only", framework="torch")]
