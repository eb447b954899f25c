"""Defenses: each one makes a digits CNN more robust to PGD than standard training does."""

from __future__ import annotations

import copy
import inspect

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from harness.errors import PluginError, UsageError  # noqa: E402
from harness.registry import create_backbone, create_defense, get_defense, list_defenses  # noqa: E402
from harness.training import TrainingConfig  # noqa: E402
from harness_torch import defenses  # noqa: E402
from harness_torch.attacks import pgd  # noqa: E402
from harness_torch.plugin import DEFENSE_PARAMS  # noqa: E402
from harness_torch.train import images_to_tensor  # noqa: E402

EPS = 0.1
#: a tiny budget that still separates the defenses from standard training reliably (seeded)
BUDGET = {"epochs": 4, "optimizer": "adam", "lr": 3e-3, "weight_decay": 0.0, "schedule": "none",
          "batch_size": 64, "progress": False, "device": "cpu", "seed": 0}
DEFENSE_KNOBS = {
    "pgd-adversarial-training": {"eps": EPS, "steps": 5},
    "trades": {"eps": EPS, "steps": 5, "beta": 6.0},
    "model-hardening": {"eps": EPS, "bim_steps": 5},
}


def train(defense, splits, **params):
    torch.manual_seed(0)
    model = create_backbone("small-cnn", num_classes=splits.num_classes, input_shape=splits.image_shape)
    create_defense(defense, **{**BUDGET, **params}).fit(model, splits.train)
    return model


def pgd_accuracy(model, split, eps=EPS):
    """Top-1 accuracy under PGD-20 (L-inf, seeded random start) on a uint8 split."""
    x, y = images_to_tensor(split.images), torch.from_numpy(np.array(split.labels))
    x_adv = pgd(model, x, y, eps=eps, steps=20, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        return (model(x_adv).argmax(1) == y).float().mean().item()


def clean_accuracy(model, split):
    x, y = images_to_tensor(split.images), torch.from_numpy(np.array(split.labels))
    with torch.no_grad():
        return (model(x).argmax(1) == y).float().mean().item()


@pytest.fixture(scope="module")
def standard_model(digits_splits):
    return train("standard", digits_splits)


def test_every_defense_is_registered_for_torch():
    assert set(list_defenses(framework="torch")) >= {"standard", "model-hardening", "pgd-adversarial-training",
                                                      "trades"}


@pytest.mark.parametrize("name", sorted(DEFENSE_PARAMS))
def test_spec_params_are_the_trainer_and_defense_knobs(name):
    spec = get_defense(name)
    assert spec.framework == "torch" and isinstance(spec.factory, str)
    assert dict(spec.params) == {**TrainingConfig.defaults(), **DEFENSE_PARAMS[name]}
    trainer = spec.create()
    assert trainer.name == name and trainer.options == DEFENSE_PARAMS[name]
    assert inspect.getdoc(type(trainer))
    with pytest.raises(PluginError, match="no parameter 'epoch'"):
        spec.create(epoch=3)


def test_standard_training_is_accurate_and_not_robust(standard_model, digits_splits):
    assert clean_accuracy(standard_model, digits_splits.test) > 0.93
    assert pgd_accuracy(standard_model, digits_splits.test) < 0.75


@pytest.mark.parametrize("name", sorted(DEFENSE_KNOBS))
def test_defense_raises_pgd_accuracy_over_standard_training(name, standard_model, digits_splits):
    model = train(name, digits_splits, **DEFENSE_KNOBS[name])
    robust, baseline = pgd_accuracy(model, digits_splits.test), pgd_accuracy(standard_model, digits_splits.test)
    assert robust > baseline + 0.1, f"{name}: PGD accuracy {robust:.3f} vs standard {baseline:.3f}"
    assert clean_accuracy(model, digits_splits.test) > 0.85


def test_model_hardening_against_a_fixed_reference_model(standard_model, digits_splits, tmp_path):
    path = tmp_path / "reference.pt"
    torch.save({"model": standard_model.state_dict()}, path)
    reference_before = copy.deepcopy(standard_model.state_dict())
    for reference in (str(path), standard_model):
        trainer = create_defense("model-hardening", **{**BUDGET, "epochs": 1}, eps=EPS, bim_steps=3,
                                 reference_model=reference, augmentations=["random-crop"])
        torch.manual_seed(0)
        model = create_backbone("small-cnn", num_classes=10, input_shape=(8, 8, 1))
        history = trainer.fit(model, digits_splits.train)
        assert trainer.reference is not model and trainer.weights["augmented"] == 1.0
        assert history[0].train_top1 > 0.5
    for key, value in standard_model.state_dict().items():
        assert torch.equal(value, reference_before[key]), key


def test_model_hardening_views_follow_their_weights():
    trainer = create_defense("model-hardening", fgsm_weight=0.0, augmented_weight=2.0)
    assert trainer.weights == {"clean": 1.0, "augmented": 0.0, "fgsm": 0.0, "bim": 1.0}  # no augmentations
    with pytest.raises(UsageError, match="at least one"):
        create_defense("model-hardening", clean_weight=0.0, fgsm_weight=0.0, bim_weight=0.0)
    with pytest.raises(UsageError, match="non-negative"):
        create_defense("model-hardening", bim_weight=-1.0)


@pytest.mark.parametrize("name", ["pgd-adversarial-training", "trades", "model-hardening"])
def test_attack_budgets_are_validated_and_defaulted(name):
    trainer = create_defense(name)
    assert trainer.attack.eps == pytest.approx(8 / 255) and trainer.attack.norm == "linf"
    assert create_defense(name, norm="l2").attack.eps == pytest.approx(0.5)
    with pytest.raises(UsageError, match=name):
        create_defense(name, norm="l3")
    with pytest.raises(UsageError, match="eps"):
        create_defense(name, eps=0.0)


def test_trades_loss_is_cross_entropy_plus_beta_kl(digits_splits):
    images, labels = digits_splits.train.images[:32], digits_splits.train.labels[:32]
    torch.manual_seed(0)
    model = create_backbone("small-cnn", num_classes=10, input_shape=(8, 8, 1))
    x, y = images_to_tensor(images), torch.from_numpy(np.array(labels))
    beta0 = create_defense("trades", beta=0.0, eps=EPS, steps=2)
    loss, logits = beta0.batch_loss(model, x, y)
    assert torch.allclose(loss, torch.nn.functional.cross_entropy(model(x), y), atol=1e-6)
    assert torch.allclose(logits, model(x), atol=1e-5)
    beta6 = create_defense("trades", beta=6.0, eps=EPS, steps=2)
    assert beta6.batch_loss(model, x, y)[0] > loss
    assert (defenses.trades_kl(logits, torch.softmax(logits, 1)).abs() < 1e-6).all()
