"""Loss and accuracy of a Keras model on uint8 NHWC images, clean or under an attack plugin.

Also the data boundary: :func:`images_to_tensor` turns harness arrays into model input.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import tensorflow as tf

from harness.metrics import topk_correct

from . import device  # noqa: F401 - honours HARNESS_DEVICE=cpu before TensorFlow starts GPUs


def images_to_tensor(images: np.ndarray) -> tf.Tensor:
    """uint8 N,H,W,C numpy -> float32 N,H,W,C in [0, 1], converted by TensorFlow where it places the ops
    (on a GPU when there is one: the uint8 batch crosses the bus, a quarter of the float32 bytes).

    The values are numpy's ``images / 255`` to the bit (float32 division is exact-rounded in both).
    """
    array = np.asarray(images)
    if array.dtype != np.uint8:  # float input stays as it was: scaled by 1/255 on the host
        return tf.convert_to_tensor(np.asarray(array, dtype=np.float32) / np.float32(255.0))
    return tf.cast(tf.convert_to_tensor(np.ascontiguousarray(array)), tf.float32) / 255.0


def predict(model: Any, x: tf.Tensor) -> np.ndarray:
    """float32 logits of one batch in inference mode (Keras's compiled predict step)."""
    if hasattr(model, "predict_on_batch"):
        return np.asarray(model.predict_on_batch(x), dtype=np.float32)
    return np.asarray(model(x, training=False), dtype=np.float32)


def accuracy(
    model: Any,
    images: np.ndarray,
    labels: np.ndarray,
    attack: Callable[..., tf.Tensor] | None = None,
    batch_size: int = 256,
) -> dict[str, Any]:
    """Loss, top-1 and top-5 of ``model`` on ``images``, attacked batch by batch when ``attack`` is given."""
    total_loss, top1, top5 = 0.0, 0, 0
    for start in range(0, len(labels), batch_size):
        x = images_to_tensor(images[start : start + batch_size])
        y = np.array(labels[start : start + batch_size], dtype=np.int64)
        if attack is not None:
            x = attack(model, x, tf.constant(y))
        scores = predict(model, x)
        total_loss += float(tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=scores)))
        top1 += topk_correct(scores, y, 1)
        top5 += topk_correct(scores, y, 5)
    n = max(1, len(labels))
    return {"loss": total_loss / n, "top1": top1 / n, "top5": top5 / n, "count": len(labels)}
