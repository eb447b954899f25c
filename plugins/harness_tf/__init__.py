"""Built-in TensorFlow plugins: Keras backbones, NSL adversarial regularization, TF attacks and augmentations.

Registered through the ``harness`` entry-point group (see :mod:`harness_tf.plugin`).
Importing this package does not import TensorFlow; the plugin modules do, lazily.
Two things must happen before TensorFlow is first imported, so they happen here:

- ``TF_USE_LEGACY_KERAS=1``: ``tf.keras`` is then Keras 2 (``tf_keras``), which
  neural-structured-learning needs; TensorFlow reads the variable only on import.
- triton (installed with CUDA builds of PyTorch) is loaded first when present: its
  bundled LLVM aborts the process ("LLVM ERROR: inconsistency in registered
  CommandLine options") when it loads after TensorFlow's, e.g. on ``import torchvision``
  in a process that already uses TensorFlow. The other order works.
"""

import importlib
import importlib.abc
import importlib.util
import os
import sys

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")


class _LoadTritonBeforeTensorFlow(importlib.abc.MetaPathFinder):
    """Imports triton the moment something first imports tensorflow, then steps aside."""

    def find_spec(self, name, path=None, target=None):
        if name == "tensorflow":
            sys.meta_path.remove(self)
            try:
                importlib.import_module("triton")
            except Exception:  # noqa: BLE001 - a broken triton must not stop TensorFlow
                pass
        return None


if "tensorflow" not in sys.modules and importlib.util.find_spec("triton") is not None:
    sys.meta_path.insert(0, _LoadTritonBeforeTensorFlow())
