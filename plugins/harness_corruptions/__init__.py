"""Built-in corruption suite: the 15 ImageNet-C corruptions and 4 held-out ones, framework-neutral.

Registered as augmentations ``corruption/<name>`` and ``corruption-holdout/<name>``
(framework "any"); each takes and returns uint8 (N, H, W, C) numpy images. See
docs/robustness.md. Importing the package (as plugin discovery does) loads no scipy:
the corruptions load on first use.
"""

from __future__ import annotations

from typing import Any

__all__ = ["Corruption", "corrupt", "default_size_scale"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import corruptions

        return getattr(corruptions, name)
    raise AttributeError(f"module 'harness_corruptions' has no attribute {name!r}")
