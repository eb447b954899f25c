"""FGSM, BIM and PGD of every framework (one driver, :mod:`harness.attacks`): budgets, strength, modes,
determinism, the functions trainers call, input checks, the registry, and the same answers across frameworks."""

from __future__ import annotations

import subprocess
import sys

import helpers
import numpy as np
import pytest

from harness import registry
from harness.errors import UsageError

NAMES = ("fgsm", "bim", "pgd")
#: budgets that leave part of the digits model standing (small) or break it (large)
EPS = {"linf": [0.02, 0.05, 0.1, 0.2], "l2": [0.25, 0.5, 1.0, 2.0]}


def attack(fw, name, **params):
    return registry.create_attack(name, framework=fw.name, **params)


def check_budget(fw, x, x_adv, eps, norm):
    helpers.check_budget(fw.numpy(x), fw.numpy(x_adv), eps, norm)


@pytest.mark.parametrize("norm", ["linf", "l2"])
@pytest.mark.parametrize("name", NAMES)
def test_attack_stays_in_budget_and_box(fw, name, norm):
    eps = EPS[norm][-1]
    # a large step overshoots the ball on purpose: projection and clipping must catch it
    params = {} if name == "fgsm" else {"step_size": 4 * eps, "steps": 3}
    x_adv = attack(fw, name, eps=eps, norm=norm, **params)(fw.model, fw.x, fw.y)
    check_budget(fw, fw.x, x_adv, eps, norm)
    assert not fw.equal(x_adv, fw.x)


@pytest.mark.parametrize("norm", ["linf", "l2"])
@pytest.mark.parametrize("mode", ["predicted", "targeted"])
def test_budget_holds_in_every_mode(fw, norm, mode):
    eps = EPS[norm][1]
    target = (fw.y + 3) % 10 if mode == "targeted" else None
    x_adv = attack(fw, "pgd", eps=eps, norm=norm, mode=mode, restarts=2, steps=5)(fw.model, fw.x, target=target)
    check_budget(fw, fw.x, x_adv, eps, norm)


@pytest.mark.parametrize("norm", ["linf", "l2"])
@pytest.mark.parametrize("name", NAMES)
def test_attack_lowers_accuracy_more_as_eps_grows(fw, name, norm):
    clean = fw.accuracy(fw.x)
    accuracies = [fw.accuracy(attack(fw, name, eps=eps, norm=norm)(fw.model, fw.x, fw.y)) for eps in EPS[norm]]
    assert clean > 0.9
    assert accuracies[-1] < clean - 0.4, accuracies
    assert all(small >= large for small, large in zip(accuracies, accuracies[1:])), accuracies


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_pgd20_is_never_weaker_than_fgsm(fw, norm):
    for eps in EPS[norm]:
        fgsm_acc = fw.accuracy(attack(fw, "fgsm", eps=eps, norm=norm)(fw.model, fw.x, fw.y))
        pgd_acc = fw.accuracy(attack(fw, "pgd", eps=eps, norm=norm, steps=20)(fw.model, fw.x, fw.y))
        assert pgd_acc <= fgsm_acc, (eps, pgd_acc, fgsm_acc)


def test_more_restarts_break_a_superset_of_examples(fw):
    y = np.asarray(fw.y)
    one = attack(fw, "pgd", eps=0.08, steps=5, restarts=1, seed=7)(fw.model, fw.x, fw.y)
    three = attack(fw, "pgd", eps=0.08, steps=5, restarts=3, seed=7)(fw.model, fw.x, fw.y)
    broken_one, broken_three = fw.predict(fw.model, one) != y, fw.predict(fw.model, three) != y
    assert np.all(broken_three | ~broken_one)  # restart 1 is shared, so nothing is lost
    assert broken_three.sum() >= broken_one.sum()


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_targeted_attacks_reach_the_target_class(fw, norm):
    target = (fw.y + 1) % 10
    eps = EPS[norm][-1]
    before = fw.accuracy(fw.x, target)
    rates = {name: fw.accuracy(attack(fw, name, eps=eps, norm=norm, mode="targeted")(fw.model, fw.x, target=target),
                               target)
             for name in ("fgsm", "pgd")}
    assert rates["fgsm"] > before + 0.05
    assert rates["pgd"] > rates["fgsm"], rates


def test_predicted_mode_needs_no_labels_and_matches_true_labels_where_right(fw):
    right = fw.predict(fw.model, fw.x) == np.asarray(fw.y)
    unlabelled = attack(fw, "fgsm", eps=0.1, mode="predicted")(fw.model, fw.x)
    labelled = attack(fw, "fgsm", eps=0.1)(fw.model, fw.x, fw.y)
    assert np.array_equal(fw.numpy(unlabelled)[right], fw.numpy(labelled)[right])
    assert fw.accuracy(unlabelled) < fw.accuracy(fw.x) - 0.2


def test_seeded_pgd_is_deterministic_and_the_seed_matters(fw):
    a = attack(fw, "pgd", eps=0.1, steps=3, seed=1)(fw.model, fw.x, fw.y)
    b = attack(fw, "pgd", eps=0.1, steps=3, seed=1)(fw.model, fw.x, fw.y)
    c = attack(fw, "pgd", eps=0.1, steps=3, seed=2)(fw.model, fw.x, fw.y)
    assert fw.equal(a, b) and not fw.equal(a, c)
    assert fw.equal(attack(fw, "bim", eps=0.1, seed=1)(fw.model, fw.x, fw.y),
                    attack(fw, "bim", eps=0.1, seed=2)(fw.model, fw.x, fw.y))


def test_functions_for_trainers_match_the_classes(fw):
    m, x, y, A = fw.model, fw.x, fw.y, fw.attacks
    assert fw.equal(A.fgsm(m, x, y, 0.1, "l2"), attack(fw, "fgsm", eps=0.1, norm="l2")(m, x, y))
    assert fw.equal(A.bim(m, x, y, 0.1, steps=4), attack(fw, "bim", eps=0.1, steps=4)(m, x, y))
    x_adv = A.pgd(m, x, y, 0.1, None, 4, "linf", True, 2, fw.generator(5))
    assert fw.equal(x_adv, attack(fw, "pgd", eps=0.1, steps=4, restarts=2, seed=5)(m, x, y))


def test_custom_loss_fn_drives_pgd(fw):
    """TRADES-style: maximise the per-example KL to the clean prediction (no labels needed)."""
    clean = fw.softmax(fw.x)
    loss_fn = fw.kl_loss(clean)
    x_adv = fw.attacks.pgd(fw.model, fw.x, clean, eps=0.1, steps=5, loss_fn=loss_fn, generator=fw.generator(0))
    check_budget(fw, fw.x, x_adv, 0.1, "linf")
    args = (fw.model(x_adv), None) if fw.name == "torch" else (None, fw.model(x_adv))
    kl = loss_fn(*args)
    assert float(np.mean(kl.detach().numpy() if fw.name == "torch" else np.asarray(kl))) > 0.5


def test_zero_eps_returns_the_input(fw):
    for name in NAMES:
        assert fw.equal(attack(fw, name, eps=0.0)(fw.model, fw.x, fw.y), fw.x)


@pytest.mark.parametrize(
    "params, word",
    [({"eps": -0.1}, "eps"), ({"steps": 0}, "steps"), ({"norm": "l1"}, "norm"), ({"mode": "random"}, "mode"),
     ({"restarts": 0}, "restarts"), ({"step_size": -1.0}, "step_size"), ({"seed": "x"}, "seed")],
)
def test_invalid_parameters_name_themselves(params, word):
    from harness.attacks import AttackConfig

    with pytest.raises(UsageError, match=word) as info:
        AttackConfig.for_attack("pgd", **params)
    assert "\n" not in str(info.value)


def test_label_and_range_errors_are_usage_errors(fw):
    m, x, y = fw.model, fw.x, fw.y
    with pytest.raises(UsageError, match="needs labels"):
        attack(fw, "fgsm")(m, x)
    with pytest.raises(UsageError, match="mode 'targeted' needs target labels"):
        attack(fw, "fgsm", mode="targeted")(m, x, y)
    with pytest.raises(UsageError, match="target labels given") as info:
        attack(fw, "fgsm")(m, x, y, target=y)
    assert "mode='targeted'" in info.value.hint
    with pytest.raises(UsageError, match=r"images in \[0, 1\]"):
        attack(fw, "fgsm")(m, x * 255, y)
    with pytest.raises(UsageError, match="labels for"):
        attack(fw, "fgsm")(m, x, y[:3])


def test_registry_builds_every_attack_with_its_parameters(fw):
    assert set(registry.list_attacks(framework=fw.name)) >= {"fgsm", "bim", "pgd", "apgd-ce", "apgd-t", "square"}
    pgd = attack(fw, "pgd", norm="l2", eps=1.0, restarts=2)
    assert isinstance(pgd, fw.attacks.PGD)
    assert (pgd.config.norm, pgd.config.eps, pgd.config.restarts) == ("l2", 1.0, 2)
    for name in NAMES:
        spec = registry.get_attack(name, framework=fw.name)
        assert spec.framework == fw.name and spec.description
        assert isinstance(spec.create(), getattr(fw.attacks, name.upper()))
    with pytest.raises(UsageError, match="restarts"):
        attack(fw, "fgsm", restarts=3)


def test_harness_attacks_and_plugin_modules_import_no_framework():
    code = ("import sys, harness.attacks, harness.attacks.art, harness_torch.plugin as p, harness_tf.plugin as q; "
            "p.harness_register_attacks(); q.harness_register_attacks(); "
            "assert not {'torch', 'tensorflow'} & set(sys.modules), 'framework imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


# --------------------------------------------------------------------------- the ART attacks


@pytest.mark.parametrize("name, params", [("art-apgd-ce", {"max_iter": 5}),
                                          ("art-apgd-t", {"max_iter": 5, "n_targets": 2}),
                                          ("art-square", {"max_iter": 40})])
def test_art_attacks_follow_the_attack_contract(fw, name, params):
    pytest.importorskip("art")
    name = name if fw.name == "torch" else name.removeprefix("art-")  # TensorFlow's plain names are ART's
    eps = 0.1
    x, y = fw.x[:32], fw.y[:32]
    art_attack = attack(fw, name, eps=eps, seed=3, **params)
    assert (art_attack.config.eps, art_attack.config.norm) == (eps, "linf")
    assert art_attack.threat == ("black-box" if name.endswith("square") else "white-box")
    assert "adversarial-robustness-toolbox" in art_attack.implementation
    assert art_attack.config.to_dict() == {**registry.get_attack(name, framework=fw.name).params, **params,
                                           "eps": eps, "seed": 3}
    x_adv = art_attack(fw.model, x, y)
    check_budget(fw, x, x_adv, eps, "linf")
    assert type(x_adv) is type(x) or fw.name == "tf"
    assert fw.accuracy(x_adv, y) < fw.accuracy(x, y)
    assert fw.equal(attack(fw, name, eps=eps, seed=3, **params)(fw.model, x, y), x_adv)  # seeded
    unlabelled = attack(fw, name, eps=eps, seed=3, **params)(fw.model, x)  # y None: the model's own labels
    check_budget(fw, x, unlabelled, eps, "linf")
    with pytest.raises(UsageError, match="target labels are not supported"):
        art_attack(fw.model, x, y, target=y)


@pytest.mark.parametrize("prefix", ["", "art-"])
def test_art_and_native_attack_parameters_are_checked(prefix):
    with pytest.raises(UsageError, match="max_iter must be an integer >= 1"):
        registry.create_attack(prefix + "apgd-ce", framework="torch", max_iter=0)
    with pytest.raises(UsageError, match=r"p_init must be a number in \(0, 1\]"):
        registry.create_attack(prefix + "square", framework="torch", p_init=-1)
    with pytest.raises(UsageError, match="has no parameter 'n_target'. Did you mean 'n_targets'"):
        registry.create_attack(prefix + "apgd-t", framework="torch", n_target=2)


# --------------------------------------------------------------------------- the same answers across frameworks


@pytest.mark.parametrize("name, norm, eps", [("fgsm", "linf", 0.1), ("fgsm", "l2", 1.0), ("bim", "linf", 0.1),
                                             ("pgd", "l2", 1.0)])
def test_tf_and_torch_attacks_give_the_same_perturbation(both, name, norm, eps):
    """The same linear classifier on 8x8x1 images in Keras (NHWC) and torch (NCHW): flattening agrees for C=1."""
    torch_fw, _ = both
    import tensorflow as tf
    import tf_keras as keras
    import torch

    torch.manual_seed(0)
    torch_model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
    inputs = keras.Input((8, 8, 1))
    keras_model = keras.Model(inputs, keras.layers.Dense(10)(keras.layers.Flatten()(inputs)))
    linear = torch_model[1]
    keras_model.layers[-1].set_weights([linear.weight.detach().numpy().T, linear.bias.detach().numpy()])
    x = tf.constant(torch_fw.numpy(torch_fw.x))
    assert np.allclose(keras_model(x).numpy(), torch_model(torch_fw.x).detach().numpy(), atol=1e-5)
    params = {} if name == "fgsm" else {"steps": 5, **({"random_start": False} if name == "pgd" else {})}
    ours = np.asarray(registry.create_attack(name, framework="tf", eps=eps, norm=norm, **params)(
        keras_model, x, tf.constant(torch_fw.y.numpy())))
    theirs = torch_fw.numpy(registry.create_attack(name, framework="torch", eps=eps, norm=norm, **params)(
        torch_model, torch_fw.x, torch_fw.y))
    assert np.abs(ours - x.numpy()).max() > 0
    np.testing.assert_allclose(ours, theirs, atol=1e-5)
