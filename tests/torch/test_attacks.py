"""FGSM, BIM and PGD: budgets, strength, modes, determinism, side effects, registry."""

from __future__ import annotations

import copy
import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")

from harness import registry  # noqa: E402
from harness.errors import UsageError  # noqa: E402
from harness_torch.attacks import BIM, FGSM, PGD, bim, fgsm, pgd  # noqa: E402

ATTACKS = {"fgsm": FGSM, "bim": BIM, "pgd": PGD}
#: budgets that leave part of the digits model standing (small) or break it (large)
EPS = {"linf": [0.02, 0.05, 0.1, 0.2], "l2": [0.25, 0.5, 1.0, 2.0]}
N = 200


def accuracy(model, x, y) -> float:
    with torch.no_grad():
        return (model(x).argmax(1) == y).float().mean().item()


@pytest.fixture(scope="module")
def batch(digits_data):
    return digits_data.x_test[:N], digits_data.y_test[:N]


def check_budget(x, x_adv, eps, norm):
    assert x_adv.shape == x.shape and x_adv.dtype == torch.float32
    assert x_adv.min() >= 0.0 and x_adv.max() <= 1.0
    delta = (x_adv - x).flatten(1)
    if norm == "linf":
        assert delta.abs().max().item() <= eps + 1e-6
    else:
        assert delta.norm(dim=1).max().item() <= eps * (1 + 1e-5)


@pytest.mark.parametrize("norm", ["linf", "l2"])
@pytest.mark.parametrize("name", list(ATTACKS))
def test_attack_stays_in_budget_and_box(digits_model, batch, name, norm):
    x, y = batch
    eps = EPS[norm][-1]
    # a large step overshoots the ball on purpose: projection and clamping must catch it
    params = {} if name == "fgsm" else {"step_size": 4 * eps, "steps": 3}
    x_adv = ATTACKS[name](eps=eps, norm=norm, **params)(digits_model, x, y)
    check_budget(x, x_adv, eps, norm)
    assert (x_adv - x).abs().max() > 0


@pytest.mark.parametrize("norm", ["linf", "l2"])
@pytest.mark.parametrize("mode", ["predicted", "targeted"])
def test_budget_holds_in_every_mode(digits_model, batch, norm, mode):
    x, y = batch
    eps = EPS[norm][1]
    target = (y + 3) % 10 if mode == "targeted" else None
    x_adv = PGD(eps=eps, norm=norm, mode=mode, restarts=2, steps=5)(digits_model, x, target=target)
    check_budget(x, x_adv, eps, norm)


@pytest.mark.parametrize("norm", ["linf", "l2"])
@pytest.mark.parametrize("name", list(ATTACKS))
def test_attack_lowers_accuracy_more_as_eps_grows(digits_model, batch, name, norm):
    x, y = batch
    clean = accuracy(digits_model, x, y)
    accuracies = [accuracy(digits_model, ATTACKS[name](eps=eps, norm=norm)(digits_model, x, y), y)
                  for eps in EPS[norm]]
    assert clean > 0.9
    assert accuracies[-1] < clean - 0.5, accuracies
    assert all(small >= large for small, large in zip(accuracies, accuracies[1:])), accuracies


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_pgd20_is_never_weaker_than_fgsm(digits_model, batch, norm):
    x, y = batch
    for eps in EPS[norm]:
        fgsm_acc = accuracy(digits_model, FGSM(eps=eps, norm=norm)(digits_model, x, y), y)
        pgd_acc = accuracy(digits_model, PGD(eps=eps, norm=norm, steps=20)(digits_model, x, y), y)
        assert pgd_acc <= fgsm_acc, (eps, pgd_acc, fgsm_acc)


def test_more_restarts_break_a_superset_of_examples(digits_model, batch):
    x, y = batch
    one = PGD(eps=0.08, steps=5, restarts=1, seed=7)(digits_model, x, y)
    three = PGD(eps=0.08, steps=5, restarts=3, seed=7)(digits_model, x, y)
    with torch.no_grad():
        broken_one = digits_model(one).argmax(1) != y
        broken_three = digits_model(three).argmax(1) != y
    assert bool((broken_three | ~broken_one).all())  # restart 1 is shared, so nothing is lost
    assert broken_three.sum() >= broken_one.sum()


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_targeted_attacks_reach_the_target_class(digits_model, batch, norm):
    x, y = batch
    target = (y + 1) % 10
    eps = EPS[norm][2]
    with torch.no_grad():
        before = (digits_model(x).argmax(1) == target).float().mean().item()
    rates = {}
    for name in ("fgsm", "pgd"):
        x_adv = ATTACKS[name](eps=eps, norm=norm, mode="targeted")(digits_model, x, target=target)
        with torch.no_grad():
            rates[name] = (digits_model(x_adv).argmax(1) == target).float().mean().item()
    assert rates["fgsm"] > before + 0.05
    assert rates["pgd"] > rates["fgsm"]


def test_predicted_mode_needs_no_labels_and_matches_true_labels_where_right(digits_model, batch):
    x, y = batch
    with torch.no_grad():
        right = digits_model(x).argmax(1) == y
    unlabelled = FGSM(eps=0.1, mode="predicted")(digits_model, x)
    labelled = FGSM(eps=0.1)(digits_model, x, y)
    assert torch.equal(unlabelled[right], labelled[right])
    assert accuracy(digits_model, unlabelled, y) < accuracy(digits_model, x, y) - 0.2


@pytest.mark.parametrize("name", list(ATTACKS))
def test_model_modes_and_gradients_are_left_alone(digits_model, batch, name):
    model = copy.deepcopy(digits_model).train()
    model[3].eval()  # a mixed set of modes must come back exactly
    modes = [m.training for m in model.modules()]
    state = {k: v.clone() for k, v in model.state_dict().items()}
    first = next(model.parameters())
    first.grad = torch.full_like(first, 0.5)
    x, y = batch
    ATTACKS[name](eps=0.1)(model, x, y)
    assert [m.training for m in model.modules()] == modes
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())  # BN stats untouched
    assert torch.equal(first.grad, torch.full_like(first, 0.5))
    assert all(p.grad is None for p in list(model.parameters())[1:])


def test_seeded_pgd_is_deterministic_and_the_seed_matters(digits_model, batch):
    x, y = batch
    a = PGD(eps=0.1, steps=3, seed=1)(digits_model, x, y)
    b = PGD(eps=0.1, steps=3, seed=1)(digits_model, x, y)
    c = PGD(eps=0.1, steps=3, seed=2)(digits_model, x, y)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    assert torch.equal(BIM(eps=0.1, seed=1)(digits_model, x, y), BIM(eps=0.1, seed=2)(digits_model, x, y))


def test_functional_helpers_match_the_classes(digits_model, batch):
    x, y = batch
    assert torch.equal(fgsm(digits_model, x, y, 0.1, "l2"), FGSM(eps=0.1, norm="l2")(digits_model, x, y))
    assert torch.equal(bim(digits_model, x, y, 0.1, steps=4), BIM(eps=0.1, steps=4)(digits_model, x, y))
    generator = torch.Generator().manual_seed(5)
    x_adv = pgd(digits_model, x, y, 0.1, None, 4, "linf", True, 2, generator)
    assert torch.equal(x_adv, PGD(eps=0.1, steps=4, restarts=2, seed=5)(digits_model, x, y))


def test_custom_loss_fn_drives_pgd(digits_model, batch):
    """TRADES-style: maximise the per-example KL to the clean prediction (no labels needed)."""
    x, _ = batch
    with torch.no_grad():
        clean = torch.softmax(digits_model(x), dim=1)

    def kl(logits, p_clean):
        return torch.nn.functional.kl_div(torch.log_softmax(logits, 1), p_clean, reduction="none").sum(1)

    x_adv = pgd(digits_model, x, clean, eps=0.1, steps=5, loss_fn=kl, generator=torch.Generator().manual_seed(0))
    check_budget(x, x_adv, 0.1, "linf")
    with torch.no_grad():
        assert kl(digits_model(x_adv), clean).mean() > 0.5


def test_zero_eps_returns_the_input(digits_model, batch):
    x, y = batch
    for cls in ATTACKS.values():
        assert torch.equal(cls(eps=0.0)(digits_model, x, y), x)


def test_float64_input_comes_back_float32_on_its_device():
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))
    x = torch.rand(5, 1, 2, 2, dtype=torch.float64)
    x_adv = PGD(eps=0.1, steps=2)(model, x, torch.tensor([0, 1, 2, 0, 1]))
    assert x_adv.device == x.device and x_adv.dtype == torch.float32


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cpu_inputs_run_on_a_cuda_model(digits_model, batch):
    model = copy.deepcopy(digits_model).cuda()
    x, y = batch
    x_adv = PGD(eps=0.1, steps=3)(model, x, y)
    assert x_adv.device == x.device
    check_budget(x, x_adv, 0.1, "linf")
    assert torch.allclose(x_adv, PGD(eps=0.1, steps=3)(digits_model, x, y), atol=1e-4)


@pytest.mark.parametrize(
    "params, word",
    [({"eps": -0.1}, "eps"), ({"steps": 0}, "steps"), ({"norm": "l1"}, "norm"), ({"mode": "random"}, "mode"),
     ({"restarts": 0}, "restarts"), ({"step_size": -1.0}, "step_size"), ({"seed": "x"}, "seed")],
)
def test_invalid_parameters_name_themselves(params, word):
    with pytest.raises(UsageError, match=word) as info:
        PGD(**params)
    assert "\n" not in str(info.value)


def test_label_and_range_errors_are_usage_errors(digits_model, batch):
    x, y = batch
    with pytest.raises(UsageError, match="needs labels"):
        FGSM()(digits_model, x)
    with pytest.raises(UsageError, match="target"):
        FGSM(mode="targeted")(digits_model, x, y)
    with pytest.raises(UsageError, match="target labels given") as info:
        FGSM()(digits_model, x, y, target=y)
    assert "mode='targeted'" in info.value.hint
    with pytest.raises(UsageError, match=r"\[0, 1\]"):
        FGSM()(digits_model, x * 255, y)
    with pytest.raises(UsageError, match="labels"):
        FGSM()(digits_model, x, y[:3])


def test_registry_builds_every_attack_with_its_parameters():
    assert set(registry.list_attacks(framework="torch")) >= {"fgsm", "bim", "pgd"}
    attack = registry.create_attack("pgd", norm="l2", eps=1.0, restarts=2)
    assert isinstance(attack, PGD)
    assert (attack.config.norm, attack.config.eps, attack.config.restarts) == ("l2", 1.0, 2)
    for name, cls in ATTACKS.items():
        spec = registry.get_attack(name)
        assert spec.framework == "torch" and spec.description
        assert isinstance(spec.create(), cls)
    with pytest.raises(UsageError, match="restarts"):
        registry.create_attack("fgsm", restarts=3)


def test_plugin_module_does_not_import_torch():
    code = "import sys, harness_torch.plugin as p; p.harness_register_attacks(); " \
           "p.harness_register_augmentations(); assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)
