"""Backbone contract, for every registered backbone and framework variant: the framework's model, taking
float32 pixels in [0, 1] in its layout, giving finite (N, num_classes) logits that depend on the pixels,
and exporting code-free (:mod:`harness.export`) to a model with the same logits and input gradients."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest
from contract_helpers import NUM_CLASSES, SHAPE, float_batch, require, variant_cases
from helpers import keras_backbone

from harness import registry
from harness.contracts import framework_of

#: batch size of the checks: not the export's example batch (2), so the exported batch dimension must be dynamic
BATCH = 3
#: Keras applications built by the same factory as mobilenet_v2 (whose reloaded export is checked with gradients
#: too): for these the reloaded export's logits are compared, not its gradients (TensorFlow took 6-25 s each on 2
#: cores to differentiate their reloaded graphs; the export code path is mobilenet_v2's)
LOGITS_ONLY = {("densenet121", "tf"), ("efficientnet_b0", "tf"), ("nasnet_mobile", "tf")}


def logits_and_gradient(model, framework: str, x) -> tuple[np.ndarray, np.ndarray]:
    """Logits of ``model`` in inference mode on batch ``x`` and the gradient of their sum wrt ``x``."""
    if framework == "torch":
        import torch

        torch.manual_seed(0)
        x = x.detach().clone().to(next(model.parameters()).device).requires_grad_(True)
        logits = model.eval()(x)
        (gradient,) = torch.autograd.grad(logits.sum(), x)
        return logits.detach().cpu().numpy(), gradient.cpu().numpy()
    import tensorflow as tf

    with tf.GradientTape() as tape:
        tape.watch(x)
        logits = model(x, training=False)
        total = tf.reduce_sum(logits)
    return logits.numpy(), tape.gradient(total, x).numpy()


def exported_logits_and_gradient(model, framework: str, x, folder, gradient: bool = True
                                  ) -> tuple[np.ndarray, np.ndarray | None]:
    """:func:`logits_and_gradient` of ``model`` exported to ``folder`` and loaded back code-free (``gradient``
    False: the logits only, the gradient None)."""
    from harness.export import export_model, load_exported
    from harness.frameworks import get_runtime

    loaded = SimpleNamespace(model=model, runtime=get_runtime(framework),
                             info={"num_classes": NUM_CLASSES, "input_shape": list(SHAPE)})
    export_model(loaded, folder)
    exported = load_exported(folder).model
    if not gradient:
        return np.asarray(exported(x, training=False)), None
    return logits_and_gradient(exported, framework, x)


@pytest.mark.parametrize("name, framework", variant_cases("backbone"))
def test_backbone_gives_finite_logits_with_input_gradients_and_exports(name, framework, tmp_path):
    require(framework)
    frameworks = ("torch", "tf") if framework == "any" else (framework,)
    for used in frameworks:
        if used == "tf":  # built once per session: tests/tf/test_tf_backbones.py checks the same models
            model = keras_backbone(name, SHAPE, NUM_CLASSES)
        else:
            model = registry.create_backbone(name, framework=used, num_classes=NUM_CLASSES, input_shape=SHAPE)
        assert framework_of(model) == used
        x = float_batch(used, n=BATCH)
        logits, gradient = logits_and_gradient(model, used, x)
        assert logits.shape == (BATCH, NUM_CLASSES) and np.isfinite(logits).all()
        assert np.isfinite(gradient).all() and np.abs(gradient).sum() > 0  # pixels in, not a constant

        with_gradient = (name, used) not in LOGITS_ONLY
        exported, exported_gradient = exported_logits_and_gradient(model, used, x, tmp_path / used, with_gradient)
        scale = max(1.0, float(np.abs(logits).max()))
        np.testing.assert_allclose(exported, logits, rtol=0, atol=1e-4 * scale)
        if not with_gradient:
            continue
        assert np.isfinite(exported_gradient).all() and np.abs(exported_gradient).sum() > 0
        np.testing.assert_allclose(exported_gradient, gradient, rtol=0, atol=1e-3 * float(np.abs(gradient).max()))
