"""Built-in corruption suite: the 15 ImageNet-C corruptions and 4 held-out ones, framework-neutral.

Registered as augmentations ``corruption/<name>`` and ``corruption-holdout/<name>``
(framework "any"); each takes and returns uint8 (N, H, W, C) numpy images. See
docs/robustness.md.
"""

from .corruptions import Corruption, corrupt, default_size_scale

__all__ = ["Corruption", "corrupt", "default_size_scale"]
