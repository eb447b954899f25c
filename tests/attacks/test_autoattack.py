"""The native AutoAttack members for torch (harness_torch.autoattack): the reference's maths (DLR losses, APGD's
images, Square's schedule), budgets, seeding, and the registry (native plain names, ART's under art-)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
torchattacks = pytest.importorskip("torchattacks")

from harness import registry  # noqa: E402
from harness.attacks.autoattack import apgd_schedule, square_p  # noqa: E402
from harness.errors import UsageError  # noqa: E402
from harness_torch.autoattack import dlr_loss, dlr_targeted_loss  # noqa: E402

torch.set_num_threads(1)
EPS = 4 / 255


@pytest.fixture(scope="module")
def mlp():
    """A fixed random MLP on 3x8x8 images, 48 images and its own labels (every example starts correct)."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(192, 32), torch.nn.ReLU(),
                                torch.nn.Linear(32, 10)).eval()
    x = torch.rand(48, 3, 8, 8, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        y = model(x).argmax(1)
    return model, x, y


def fooled(model, x_adv, y):
    with torch.no_grad():
        return model(x_adv).argmax(1) != y


def test_dlr_losses_are_the_references():
    logits = torch.randn(16, 10, generator=torch.Generator().manual_seed(2))
    y = torch.arange(16) % 10
    target = (y + 3) % 10
    reference = torchattacks.APGD(torch.nn.Identity())
    assert torch.allclose(dlr_loss(logits, y), reference.dlr_loss(logits, y))
    assert torch.allclose(dlr_targeted_loss(logits, y, target),
                          torchattacks.APGDT(torch.nn.Identity()).dlr_loss_targeted(logits, y, target))


def test_schedules_are_the_references():
    square = torchattacks.Square(torch.nn.Identity(), n_queries=5000, p_init=0.8)
    assert [square_p(i, 5000, 0.8) for i in range(0, 5000, 7)] == [square.p_selection(i) for i in range(0, 5000, 7)]
    assert apgd_schedule(100) == (22, 3, 6)


@pytest.mark.parametrize("name, theirs", [
    ("apgd-ce", lambda m: torchattacks.APGD(m, eps=EPS, steps=10, loss="ce", seed=5)),
    ("apgd-t", lambda m: torchattacks.APGDT(m, eps=EPS, steps=10, n_classes=4, seed=5)),
])
def test_apgd_gives_the_reference_images(mlp, name, theirs):
    """Same seed, same random start (one CPU stream), same steps: the images the reference keeps are ours."""
    model, x, y = mlp
    params = {"max_iter": 10, "n_targets": 3} if name == "apgd-t" else {"max_iter": 10}
    ours = registry.create_attack(name, framework="torch", eps=EPS, seed=5, **params)(model, x, y)
    reference = theirs(model)(x, y)
    ours_fooled, reference_fooled = fooled(model, ours, y), fooled(model, reference, y)
    assert 0 < int(reference_fooled.sum()) < len(y)
    assert torch.equal(ours_fooled, reference_fooled)
    assert torch.allclose(ours[ours_fooled], reference[reference_fooled], atol=1e-6)
    assert (ours - x).abs().max() <= EPS + 1e-6 and ours.min() >= 0 and ours.max() <= 1


@pytest.mark.parametrize("name, params", [("apgd-ce", {"max_iter": 10, "norm": "l2", "eps": 0.3}),
                                          ("apgd-t", {"max_iter": 5, "n_targets": 2, "eps": EPS}),
                                          ("square", {"max_iter": 100, "eps": EPS})])
def test_native_members_break_examples_within_budget_seeded(mlp, name, params):
    model, x, y = mlp
    attack = registry.create_attack(name, framework="torch", seed=3, **params)
    assert attack.threat == ("black-box" if name == "square" else "white-box")
    assert attack.config.to_dict() == {**registry.get_attack(name, framework="torch").params, **params, "seed": 3}
    x_adv = attack(model, x, y)
    delta = (x_adv - x).flatten(1)
    size = delta.norm(dim=1) if attack.config.norm == "l2" else delta.abs().amax(dim=1)
    assert bool((size <= attack.config.eps + 1e-5).all()) and x_adv.min() >= 0 and x_adv.max() <= 1
    assert fooled(model, x_adv, y).any()
    assert torch.equal(registry.create_attack(name, framework="torch", seed=3, **params)(model, x, y), x_adv)
    unlabelled = attack(model, x)  # y None: the model's own labels, which y is
    assert torch.equal(unlabelled, x_adv)
    wrong = (y + 1) % 10  # examples already misclassified come back unchanged
    assert torch.equal(attack(model, x[:4], wrong[:4]), x[:4])
    with pytest.raises(UsageError, match="target labels are not supported"):
        attack(model, x, y, target=y)
    with pytest.raises(UsageError, match="labels for"):
        attack(model, x, y[:3])


def test_native_names_and_art_names_are_registered():
    torch_attacks = set(registry.list_attacks(framework="torch"))
    assert {"apgd-ce", "apgd-t", "square", "art-apgd-ce", "art-apgd-t", "art-square"} <= torch_attacks
    assert "native" in registry.create_attack("square", framework="torch").implementation
    assert "adversarial-robustness-toolbox" in registry.create_attack("art-square", framework="torch").implementation
    assert "batch_size" in registry.get_attack("art-apgd-ce", framework="torch").params
    assert "batch_size" not in registry.get_attack("apgd-ce", framework="torch").params


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # ART's own divisions on 8x8 images
def test_square_l2_runs_art(mlp):
    pytest.importorskip("art")
    model, x, y = mlp
    x_adv = registry.create_attack("square", framework="torch", norm="l2", eps=0.5, max_iter=3)(model, x[:4], y[:4])
    assert bool(((x_adv - x[:4]).flatten(1).norm(dim=1) <= 0.5 + 1e-5).all())
    assert not np.array_equal(x_adv.numpy(), x[:4].numpy())
