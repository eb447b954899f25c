"""Backbone contract, for every registered backbone and framework variant: the framework's model, taking
float32 pixels in [0, 1] in its layout, giving finite (N, num_classes) logits that depend on the pixels."""

from __future__ import annotations

import numpy as np
import pytest
from contract_helpers import NUM_CLASSES, SHAPE, float_batch, require, variant_cases

from harness import registry
from harness.contracts import framework_of


@pytest.mark.parametrize("name, framework", variant_cases("backbone"))
def test_backbone_gives_finite_logits_with_input_gradients(name, framework):
    require(framework)
    frameworks = ("torch", "tf") if framework == "any" else (framework,)
    for used in frameworks:
        model = registry.create_backbone(name, framework=used, num_classes=NUM_CLASSES, input_shape=SHAPE)
        assert framework_of(model) == used
        x = float_batch(used)
        if used == "torch":
            import torch

            torch.manual_seed(0)
            x.requires_grad_(True)
            logits = model.eval()(x)
            logits.sum().backward()
            gradient = x.grad.numpy()
            logits = logits.detach().numpy()
        else:
            import tensorflow as tf

            with tf.GradientTape() as tape:
                tape.watch(x)
                logits = model(x, training=False)
                total = tf.reduce_sum(logits)
            gradient = tape.gradient(total, x).numpy()
            logits = logits.numpy()
        assert logits.shape == (2, NUM_CLASSES) and np.isfinite(logits).all()
        assert np.isfinite(gradient).all() and np.abs(gradient).sum() > 0  # pixels in, not a constant
