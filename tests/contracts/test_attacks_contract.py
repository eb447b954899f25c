"""Attack contract, for every registered attack and framework variant: called as attack(model, x, y, target)
on float32 pixels in the model's layout, it returns images of the same type and shape inside [0, 1] and
inside its config.norm ball of radius config.eps."""

from __future__ import annotations

import numpy as np
import pytest
from contract_helpers import float_batch, require, tiny_model, to_numpy, variant_cases

from harness import registry
from harness.contracts import ATTACK_NORMS


@pytest.mark.parametrize("name, framework", variant_cases("attack"))
def test_attack_stays_inside_its_budget_and_pixel_range(name, framework):
    used = "torch" if framework == "any" else framework
    require(used)
    attack = registry.create_attack(name, framework=framework)
    eps, norm = float(attack.config.eps), attack.config.norm
    assert eps >= 0 and norm in ATTACK_NORMS
    x = float_batch(used)
    adversarial = attack(tiny_model(used), x, np.array([0, 1]))
    assert type(adversarial) is type(x) or used == "tf"  # tf: any tensor type
    clean, out = to_numpy(x, used), to_numpy(adversarial, used)
    assert out.shape == clean.shape and out.dtype == np.float32
    assert out.min() >= 0.0 and out.max() <= 1.0
    delta = (out - clean).reshape(len(out), -1)
    size = np.abs(delta).max(axis=1) if norm == "linf" else np.sqrt((delta.astype(np.float64) ** 2).sum(axis=1))
    assert (size <= eps + 1e-5).all(), f"{name}: perturbation {size.max()} exceeds {norm} eps {eps}"
