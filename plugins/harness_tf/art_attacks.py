"""APGD-CE, APGD-T and Square (adversarial-robustness-toolbox) for Keras models: the layout conversion
at ART's boundary; the attacks themselves are :mod:`harness.attacks.art`. TensorFlow has no native
AutoAttack members yet: ``apgd-ce``, ``apgd-t``, ``square`` are these ART classes."""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf

from harness.attacks.art import art_attack_classes

__all__ = ["APGDCE", "APGDT", "Square", "TFLayout"]


class TFLayout:
    """float32 N,H,W,C tensors (or numpy) <-> float32 N,H,W,C numpy."""

    def images_to_numpy(self, x: Any) -> np.ndarray:
        return np.asarray(x, dtype=np.float32)

    def labels_to_numpy(self, y: Any) -> np.ndarray:
        return np.asarray(y).astype(np.int64, copy=False)

    def images_from_numpy(self, images: np.ndarray, like: Any) -> tf.Tensor:
        return tf.convert_to_tensor(images, tf.float32)


APGDCE, APGDT, Square = art_attack_classes("tf", TFLayout(), __name__, prefix="")
