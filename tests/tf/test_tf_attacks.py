"""TF FGSM, BIM, PGD and nsl-perturb: budgets, strength, modes, determinism, and the same answers as torch."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from harness.errors import UsageError
from harness_tf.attacks import BIM, FGSM, PGD, NSLPerturb, bim, fgsm, pgd

ATTACKS = {"fgsm": FGSM, "bim": BIM, "pgd": PGD}
EPS = {"linf": [0.05, 0.1, 0.2], "l2": [0.5, 1.0, 2.0]}


def accuracy(model, x, y) -> float:
    return float(np.mean(np.argmax(model(x, training=False), axis=1) == y.numpy()))


def check_budget(x, x_adv, eps, norm):
    x, x_adv = np.asarray(x), np.asarray(x_adv)
    assert x_adv.shape == x.shape and x_adv.dtype == np.float32
    assert x_adv.min() >= 0.0 and x_adv.max() <= 1.0
    delta = (x_adv - x).reshape(len(x), -1)
    if norm == "linf":
        assert np.abs(delta).max() <= eps + 1e-6
    else:
        assert np.linalg.norm(delta, axis=1).max() <= eps * (1 + 1e-5)


@pytest.mark.parametrize("norm", ["linf", "l2"])
@pytest.mark.parametrize("name", list(ATTACKS))
def test_attack_stays_in_budget_and_lowers_accuracy_with_eps(digits_model, digits_batch, name, norm):
    x, y = digits_batch
    clean = accuracy(digits_model, x, y)
    # a large step overshoots the ball on purpose: projection and clipping must catch it
    params = {} if name == "fgsm" else {"step_size": 4 * EPS[norm][-1], "steps": 3}
    check_budget(x, ATTACKS[name](eps=EPS[norm][-1], norm=norm, **params)(digits_model, x, y), EPS[norm][-1], norm)
    accuracies = [accuracy(digits_model, ATTACKS[name](eps=eps, norm=norm, steps=5)(digits_model, x, y)
                           if name != "fgsm" else FGSM(eps=eps, norm=norm)(digits_model, x, y), y)
                  for eps in EPS[norm]]
    assert clean > 0.9 and accuracies[-1] < clean - 0.4, accuracies
    assert all(small >= large for small, large in zip(accuracies, accuracies[1:])), accuracies


def test_pgd_is_never_weaker_than_fgsm_and_restarts_only_add(digits_model, digits_batch):
    x, y = digits_batch
    fgsm_acc = accuracy(digits_model, FGSM(eps=0.1)(digits_model, x, y), y)
    one = PGD(eps=0.1, steps=10, seed=7)(digits_model, x, y)
    three = PGD(eps=0.1, steps=10, restarts=3, seed=7)(digits_model, x, y)
    assert accuracy(digits_model, one, y) <= fgsm_acc
    broken_one = np.argmax(digits_model(one), 1) != y.numpy()
    broken_three = np.argmax(digits_model(three), 1) != y.numpy()
    assert np.all(broken_three | ~broken_one)  # restart 1 is shared, so nothing is lost


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_modes_predicted_and_targeted(digits_model, digits_batch, norm):
    x, y = digits_batch
    eps = EPS[norm][1]
    right = np.argmax(digits_model(x), 1) == y.numpy()
    unlabelled = FGSM(eps=eps, norm=norm, mode="predicted")(digits_model, x)
    labelled = FGSM(eps=eps, norm=norm)(digits_model, x, y)
    assert np.array_equal(np.asarray(unlabelled)[right], np.asarray(labelled)[right])
    target = (y + 1) % 10
    eps = EPS[norm][-1]
    before = float(np.mean(np.argmax(digits_model(x), 1) == target.numpy()))
    rates = {}
    for cls in (FGSM, PGD):
        x_adv = cls(eps=eps, norm=norm, mode="targeted")(digits_model, x, target=target)
        check_budget(x, x_adv, eps, norm)
        rates[cls.name] = float(np.mean(np.argmax(digits_model(x_adv), 1) == target.numpy()))
    assert rates["fgsm"] > before + 0.05 and rates["pgd"] > rates["fgsm"], rates
    with pytest.raises(UsageError, match="mode 'targeted' needs target labels"):
        PGD(mode="targeted")(digits_model, x, y)
    with pytest.raises(UsageError, match="needs labels y"):
        FGSM()(digits_model, x)


def test_seeded_pgd_is_deterministic_and_functions_match_classes(digits_model, digits_batch):
    x, y = digits_batch
    a = PGD(eps=0.1, steps=3, seed=1)(digits_model, x, y)
    b = PGD(eps=0.1, steps=3, seed=1)(digits_model, x, y)
    c = PGD(eps=0.1, steps=3, seed=2)(digits_model, x, y)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert np.array_equal(fgsm(digits_model, x, y, 0.1, "l2"), FGSM(eps=0.1, norm="l2")(digits_model, x, y))
    assert np.array_equal(bim(digits_model, x, y, 0.1, steps=4), BIM(eps=0.1, steps=4)(digits_model, x, y))
    x_adv = pgd(digits_model, x, y, 0.1, None, 4, "linf", True, 2, tf.random.Generator.from_seed(5))
    assert np.array_equal(x_adv, PGD(eps=0.1, steps=4, restarts=2, seed=5)(digits_model, x, y))
    for cls in ATTACKS.values():
        assert np.array_equal(cls(eps=0.0)(digits_model, x, y), x)


def test_inputs_are_checked(digits_model, digits_batch):
    x, y = digits_batch
    with pytest.raises(UsageError, match=r"images in \[0, 1\]"):
        FGSM()(digits_model, x * 255.0, y)
    with pytest.raises(UsageError, match="float image tensors"):
        FGSM()(digits_model, tf.cast(x * 255, tf.uint8), y)
    with pytest.raises(UsageError, match="labels for"):
        FGSM()(digits_model, x, y[:3])
    with pytest.raises(UsageError, match="norm must be one of"):
        PGD(norm="l1")


# --------------------------------------------------------------------------- the same answers as torch


def linear_models(seed=0):
    """The same linear classifier on 8x8x1 images in Keras (NHWC) and torch (NCHW): flattening agrees for C=1."""
    torch = pytest.importorskip("torch")
    torch.manual_seed(seed)
    torch_model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
    inputs = keras.Input((8, 8, 1))
    keras_model = keras.Model(inputs, keras.layers.Dense(10)(keras.layers.Flatten()(inputs)))
    linear = torch_model[1]
    keras_model.layers[-1].set_weights([linear.weight.detach().numpy().T, linear.bias.detach().numpy()])
    return torch, torch_model, keras_model


@pytest.mark.parametrize("name, norm, eps", [("fgsm", "linf", 0.1), ("fgsm", "l2", 1.0), ("bim", "linf", 0.1),
                                             ("pgd", "l2", 1.0)])
def test_tf_and_torch_attacks_give_the_same_perturbation(digits_batch, name, norm, eps):
    torch, torch_model, keras_model = linear_models()
    from harness_torch.attacks import BIM as TorchBIM
    from harness_torch.attacks import FGSM as TorchFGSM
    from harness_torch.attacks import PGD as TorchPGD

    x, y = digits_batch
    torch_x = torch.from_numpy(np.ascontiguousarray(x.numpy().transpose(0, 3, 1, 2)))
    torch_y = torch.from_numpy(y.numpy().copy())
    assert np.allclose(keras_model(x).numpy(), torch_model(torch_x).detach().numpy(), atol=1e-5)
    params = {} if name == "fgsm" else {"steps": 5, **({"random_start": False} if name == "pgd" else {})}
    torch_cls, tf_cls = {"fgsm": (TorchFGSM, FGSM), "bim": (TorchBIM, BIM), "pgd": (TorchPGD, PGD)}[name]
    ours = np.asarray(tf_cls(eps=eps, norm=norm, **params)(keras_model, x, y))
    theirs = torch_cls(eps=eps, norm=norm, **params)(torch_model, torch_x, torch_y).numpy().transpose(0, 2, 3, 1)
    assert np.abs(ours - x.numpy()).max() > 0
    np.testing.assert_allclose(ours, theirs, atol=1e-5)


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
