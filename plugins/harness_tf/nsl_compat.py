"""neural-structured-learning 1.4.0 on TensorFlow >= 2.16: the one place that knows about it.

NSL imports ``tf.estimator`` when it is imported (``from tensorflow import estimator``
in ``nsl.estimator``), and TensorFlow removed that module in 2.16
(tensorflow/neural-structured-learning#130). Only NSL's estimator sub-API uses it,
inside function bodies; ``nsl.keras.AdversarialRegularization`` and
``perturb_on_batch`` never touch it. So before importing NSL we register a
stand-in ``tensorflow.estimator`` module whose every attribute raises a clear
error. Where TensorFlow still has ``tf.estimator``, nothing is changed.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any

from harness.errors import PluginError

ESTIMATOR_MODULE = "tensorflow.estimator"


class _RemovedEstimator(types.ModuleType):
    """Stand-in for ``tf.estimator``: importable, but any use says why it is missing."""

    __harness_stand_in__ = True

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        raise PluginError(
            f"tf.estimator.{name} is not available: TensorFlow removed tf.estimator in 2.16",
            hint="use nsl.keras (AdversarialRegularization), not nsl.estimator",
        )


def has_estimator(tf: Any) -> bool:
    """True when TensorFlow provides a real ``tf.estimator`` (not our stand-in)."""
    existing = sys.modules.get(ESTIMATOR_MODULE)
    if existing is not None:
        return not getattr(existing, "__harness_stand_in__", False)
    try:
        module = getattr(tf, "estimator")
    except Exception:  # noqa: BLE001 - TF's lazy loader raises various errors for removed modules
        return False
    return module is not None and not getattr(module, "__harness_stand_in__", False)


def install_estimator_shim() -> bool:
    """Register the stand-in ``tensorflow.estimator`` if TensorFlow lacks one; True when it did."""
    import tensorflow as tf

    if has_estimator(tf):
        return False
    sys.modules[ESTIMATOR_MODULE] = _RemovedEstimator(ESTIMATOR_MODULE, __doc__)
    return True


def check_legacy_keras() -> None:
    """PluginError unless ``tf.keras`` is Keras 2 (``tf_keras``), the Keras NSL is written for.

    ``harness_tf`` sets ``TF_USE_LEGACY_KERAS=1``, but TensorFlow reads it only when it
    is first imported: importing tensorflow before harness_tf leaves tf.keras on Keras 3.
    """
    import tensorflow as tf
    import tf_keras

    if tf.keras.Model is not tf_keras.Model:
        raise PluginError("tf.keras is Keras 3, but neural-structured-learning needs Keras 2 (tf_keras)",
                          hint="set TF_USE_LEGACY_KERAS=1 before importing tensorflow (or import harness_tf first)")


def import_nsl() -> Any:
    """``neural_structured_learning``, importable on every supported TensorFlow."""
    check_legacy_keras()
    install_estimator_shim()
    try:
        return importlib.import_module("neural_structured_learning")
    except ImportError as exc:
        raise PluginError(f"cannot import neural-structured-learning: {exc}",
                          hint="pip install 'harness[tf]'") from exc
