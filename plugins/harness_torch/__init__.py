"""Built-in PyTorch plugins: backbones, augmentations, attacks and defenses.

Registered through the ``harness`` entry-point group (see :mod:`harness_torch.plugin`).
Importing this package does not import torch; the plugin modules do, lazily.
"""
