"""A plugin that registers an attack name the sample plugin already uses."""

from harness import hookimpl
from harness.specs import AttackSpec


@hookimpl
def harness_register_attacks():
    return [AttackSpec(name="sample-uniform", factory="math:sqrt", description="duplicate")]
