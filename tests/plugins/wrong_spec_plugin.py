"""A plugin that returns the wrong spec type from a hook."""

from harness import hookimpl
from harness.specs import BackboneSpec


@hookimpl
def harness_register_attacks():
    return [BackboneSpec(name="not-an-attack", factory="math:sqrt")]
