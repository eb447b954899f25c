"""Registers the corruptions. Factories are lazy paths, so listing plugins imports no scipy."""

from __future__ import annotations

from harness import hookimpl
from harness.specs import AugmentationSpec

#: every corruption's parameters with their defaults
CORRUPTION_PARAMS = {"severity": 3, "seed": None, "size_scale": None}


@hookimpl
def harness_register_augmentations():
    from harness.robustness.corruption import ALL_CORRUPTIONS, registry_name

    from .tables import DESCRIPTIONS

    return [
        AugmentationSpec(
            name=registry_name(name),
            factory=f"harness_corruptions.corruptions:FACTORIES.{name.replace('-', '_')}",
            description=DESCRIPTIONS[name],
            framework="any",
            params=dict(CORRUPTION_PARAMS),
        )
        for name in ALL_CORRUPTIONS
    ]
