"""TensorFlow-only attacks and behaviour (the shared FGSM/BIM/PGD tests are tests/attacks/test_attacks.py):
nsl-perturb, and the compiled tf.function steps."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from harness.errors import UsageError
from harness_tf.attacks import FGSM, NSLPerturb, fgsm, pgd
from helpers import check_budget


def accuracy(model, x, y) -> float:
    return float(np.mean(np.argmax(model(x, training=False), axis=1) == y.numpy()))


# --------------------------------------------------------------------------- nsl-perturb


def test_nsl_perturb_is_fgsm_from_the_reference_model_clipped(digits_model, digits_batch):
    x, y = digits_batch
    other = keras.models.clone_model(digits_model)  # untrained: only the reference's gradients count
    x_adv = NSLPerturb(reference_model=digits_model, adv_step_size=0.1)(other, x, y)
    check_budget(x, x_adv, 0.1, "linf")
    # NSL's step along the gradient sign is FGSM at eps = adv_step_size (a few pixels with a
    # near-zero gradient may round differently)
    same = np.isclose(np.asarray(x_adv), np.asarray(FGSM(eps=0.1)(digits_model, x, y)), atol=1e-6)
    assert same.mean() > 0.995
    assert accuracy(digits_model, x_adv, y) < accuracy(digits_model, x, y) - 0.2
    l2 = NSLPerturb(adv_step_size=1.0, adv_grad_norm="l2")(digits_model, x, y)
    check_budget(x, l2, 1.0 + 1e-4, "l2")


def test_nsl_perturb_modes_reference_files_and_errors(digits_model, digits_batch, tmp_path):
    x, y = digits_batch
    right = np.argmax(digits_model(x), 1) == y.numpy()
    predicted = NSLPerturb(mode="predicted", adv_step_size=0.1)(digits_model, x)
    labelled = NSLPerturb(adv_step_size=0.1)(digits_model, x, y)
    assert np.mean(np.isclose(np.asarray(predicted)[right], np.asarray(labelled)[right], atol=1e-6)) > 0.995
    path = tmp_path / "reference.h5"
    digits_model.save_weights(str(path), save_format="h5")
    from_file = NSLPerturb(reference_model=str(path), adv_step_size=0.1)(keras.models.clone_model(digits_model), x, y)
    assert np.allclose(from_file, labelled, atol=1e-6)
    with pytest.raises(UsageError, match="targeted attacks are not supported"):
        NSLPerturb()(digits_model, x, y, target=y)
    with pytest.raises(UsageError, match="adv_grad_norm must be one of infinity, l2"):
        NSLPerturb(adv_grad_norm="linf")
    with pytest.raises(UsageError, match="mode must be one of true-label, predicted"):
        NSLPerturb(mode="targeted")


# --------------------------------------------------------------------------- compiled steps


@pytest.mark.parametrize("params", [{"norm": "linf", "eps": 0.1}, {"norm": "l2", "eps": 1.0},
                                    {"norm": "linf", "eps": 0.1, "targeted": True}])
def test_compiled_steps_give_the_eager_answer(digits_model, digits_batch, params):
    from harness_tf import attacks

    x, y = digits_batch

    def eager(inputs, training=False):  # not a tf.Module: the attack runs it eagerly
        return digits_model(inputs, training=training)

    def attack(model):
        return pgd(model, x, y, steps=3, generator=tf.random.Generator.from_seed(3), **params).numpy()

    compiled = attack(digits_model)
    assert any(key[0] == id(digits_model) for key in attacks._COMPILED)
    np.testing.assert_allclose(compiled, attack(eager), atol=1e-6)


def test_compiled_steps_go_with_their_model(digits_model, digits_batch):
    import gc

    from harness_tf import attacks

    x, y = digits_batch
    model = keras.models.clone_model(digits_model)
    key_id = id(model)
    fgsm(model, x[:8], y[:8], 0.1)
    assert any(key[0] == key_id for key in attacks._COMPILED)
    del model
    gc.collect()
    assert not any(key[0] == key_id for key in attacks._COMPILED)
