"""The framework-neutral attack spec shared by the torch and TensorFlow attacks."""

from __future__ import annotations

import pytest

from harness.attacks import ATTACK_PARAMS, DEFAULT_EPS, AttackConfig
from harness.errors import UsageError


def test_defaults_fill_eps_and_step_size():
    config = AttackConfig()
    assert config.eps == pytest.approx(8 / 255) and config.norm == "linf"
    assert config.step_size == pytest.approx(2.5 * config.eps / config.steps)
    assert AttackConfig(norm="l2").eps == DEFAULT_EPS["l2"]
    assert AttackConfig(eps=0.1, step_size=0.01).step_size == 0.01


def test_per_attack_configs():
    fgsm = AttackConfig.for_attack("fgsm", eps=0.1)
    assert (fgsm.steps, fgsm.step_size, fgsm.random_start, fgsm.restarts) == (1, 0.1, False, 1)
    assert AttackConfig.for_attack("bim").random_start is False
    pgd = AttackConfig.for_attack("pgd", norm="l2", restarts=3, mode="targeted")
    assert pgd.random_start and pgd.restarts == 3 and pgd.targeted and pgd.eps == 0.5
    assert AttackConfig.for_attack("fgsm", eps=0.0).step_size == 0.0
    assert set(pgd.to_dict()) == set(ATTACK_PARAMS["pgd"])


@pytest.mark.parametrize(
    "params, word",
    [({"eps": -1}, "eps"), ({"eps": float("inf")}, "eps"), ({"eps": "8/255"}, "eps"), ({"steps": 0}, "steps"),
     ({"steps": 2.0}, "steps"), ({"steps": True}, "steps"), ({"restarts": 0}, "restarts"),
     ({"norm": "L2"}, "norm"), ({"mode": "untargeted"}, "mode"), ({"step_size": 0}, "step_size"),
     ({"random_start": "yes"}, "random_start"), ({"seed": 1.5}, "seed")],
)
def test_invalid_values_are_one_line_usage_errors(params, word):
    with pytest.raises(UsageError, match=word) as info:
        AttackConfig(**params)
    assert "\n" not in info.value.message


def test_unknown_parameters_per_attack():
    with pytest.raises(UsageError, match="restarts"):
        AttackConfig.for_attack("bim", restarts=2)
    with pytest.raises(UsageError, match="Unknown attack"):
        AttackConfig.for_attack("cw")
