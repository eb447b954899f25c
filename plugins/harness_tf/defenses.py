"""TensorFlow defenses: trainers that differ in the model their steps run on.

- ``standard``: cross-entropy on (optionally augmented) clean images, the baseline;
- ``nsl-adversarial-regularization``: the seeds' NSL recipe. The base model is
  wrapped in ``nsl.keras.AdversarialRegularization`` configured by
  ``nsl.configs.make_adv_reg_config`` and fed ``{"image": x, "label": y}``; each
  step minimises cross-entropy + ``multiplier`` x the cross-entropy on adversarial
  neighbours (one ``adv_step_size`` step along the ``adv_grad_norm``-normalised
  gradient, or ``pgd_iterations`` PGD steps within ``pgd_epsilon``), clipped to
  [``clip_value_min``, ``clip_value_max``].

Parameter defaults live in :data:`harness_tf.plugin.DEFENSE_PARAMS` (the defense's
own knobs) and :class:`harness.training.TrainingConfig` (the rest). Only the base
model is trained and saved; the wrapper adds no weights.
"""

from __future__ import annotations

from typing import Any

import tensorflow as tf
import tf_keras as keras

from .nsl import FEATURE_KEY, LABEL_KEY, adv_reg_config, wrap
from .plugin import DEFENSE_PARAMS
from .train import Trainer


class StandardTraining(Trainer):
    """Plain cross-entropy training; see :class:`harness_tf.train.Trainer`."""

    name = "standard"
    defense_params = DEFENSE_PARAMS["standard"]


class NSLAdversarialRegularization(Trainer):
    """NSL adversarial regularization (Goodfellow et al. 2015 style, as packaged by NSL).

    Knobs: ``multiplier`` (weight of the adversarial loss, 0.2), ``adv_step_size``
    (0.2, in pixel space), ``adv_grad_norm`` (``infinity`` or ``l2``), ``pgd_iterations``
    (1: FGSM-like), ``pgd_epsilon`` (PGD radius, None: unbounded), ``clip_value_min`` /
    ``clip_value_max`` (0 and 1: neighbours stay images), ``random_init``. Train accuracy
    is reported on the clean batch.
    """

    name = "nsl-adversarial-regularization"
    defense_params = DEFENSE_PARAMS["nsl-adversarial-regularization"]

    def __init__(self, **params: Any):
        super().__init__(**params)
        self.adv_config = adv_reg_config(self.name, **self.options)
        self.static_shapes = self.options["random_init"]  # NSL draws its random start with static shapes

    def prepare(self, model: keras.Model) -> Any:
        return wrap(model, self.adv_config, tuple(int(v) for v in model.input_shape[1:]), loss=self.loss)

    # Traced as written, without autograph: NSL's graph needs none (its loops run over Python ints or are
    # tf.while_loop), and converting NSL's source took most of each epoch's trace (nsl-cnn: 35 s -> 6 s).
    @tf.autograph.experimental.do_not_convert
    def batch_loss(self, trained, x, y):
        logits = trained({FEATURE_KEY: x, LABEL_KEY: y}, training=True)
        return tf.add_n(trained.losses), logits  # labelled loss + multiplier * adversarial loss (+ regularizers)


def standard(**params: Any) -> StandardTraining:
    """The ``standard`` defense (plain training)."""
    return StandardTraining(**params)


def nsl_adversarial_regularization(**params: Any) -> NSLAdversarialRegularization:
    """The ``nsl-adversarial-regularization`` defense."""
    return NSLAdversarialRegularization(**params)
