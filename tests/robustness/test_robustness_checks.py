"""The sanity checks on their own (numpy only): thresholds, paired tests, projection of invalid images."""

from __future__ import annotations

import numpy as np
import pytest

from harness.robustness import checks as C


def alive(n_true: int, n: int = 100, offset: int = 0) -> np.ndarray:
    out = np.zeros(n, dtype=bool)
    out[offset : offset + n_true] = True
    return out


def test_eps_rise_needs_a_paired_significant_difference():
    clean = alive(90)
    one_flip = {"pgd": {0.01: alive(60), 0.03: alive(61)}}  # one example: noise between randomised runs
    assert not C.check_eps_monotone(one_flip, clean).flagged
    rise = {"pgd": {0.01: alive(40), 0.03: alive(60)}}
    check = C.check_eps_monotone(rise, clean)
    assert check.flagged and check.name == C.ACCURACY_RISES_WITH_EPS
    assert check.values["rises"]["pgd"][0]["only_to"] == 20
    above_clean = {"ensemble": {0.01: alive(95)}}
    assert C.check_eps_monotone(above_clean, clean).flagged


def test_steps_check():
    fine = {1: {0.03: alive(70)}, 10: {0.03: alive(50)}, 50: {0.03: alive(45)}}
    assert not C.check_steps_monotone(fine).flagged
    weaker = {1: {0.03: alive(10)}, 50: {0.03: alive(45)}}
    check = C.check_steps_monotone(weaker)
    assert check.flagged and "50 steps leave 45.00% > 10.00% with 1" in check.detail
    assert C.check_steps_monotone({50: {0.03: alive(45)}}).skipped


def test_square_and_transfer_margins():
    assert not C.check_blackbox({0.03: 0.500}, {0.03: 0.499}).flagged  # 0.1 points: within 0.2
    assert C.check_blackbox({0.03: 0.500}, {0.03: 0.497}).flagged  # 0.3 points
    assert C.check_transfer({0.03: 0.40}, {0.03: 0.30}).flagged
    assert not C.check_transfer({0.03: 0.30}, {0.03: 0.40}).flagged


def test_model_output_checks():
    logits = np.random.default_rng(0).normal(size=(8, 10)).astype(np.float32)
    probabilities = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    assert not C.check_logits(logits).flagged and C.check_logits(probabilities).flagged
    assert not C.check_determinism([logits, logits + 5e-5]).flagged
    assert C.check_determinism([logits, logits + 2e-4]).flagged
    grads = np.ones((4, 8, 8, 1), np.float32)
    assert not C.check_gradients(grads).flagged
    grads[1] = 0
    grads[2, 0, 0, 0] = np.nan
    check = C.check_gradients(grads)
    assert check.flagged and check.values["zero"] == 1 and check.values["non_finite"] == 1


def test_project_adversarial_counts_and_fixes():
    clean = np.full((3, 4, 4, 1), 0.5, np.float32)
    adv = clean.copy()
    adv[0] += 0.1  # outside an eps of 0.05
    adv[1, 0, 0, 0] = np.nan
    adv[2, 0, 0, 0] = 1.5  # outside [0, 1] and the ball
    fixed, counts = C.project_adversarial(adv, clean, 0.05)
    assert counts == {"not_finite": 1, "outside_box": 1, "outside_budget": 2}
    assert np.isfinite(fixed).all() and np.abs(fixed - clean).max() <= 0.05 + 1e-7
    assert fixed[1, 0, 0, 0] == 0.5
    _, clean_counts = C.project_adversarial(clean + 0.05, clean, 0.05)
    assert not any(clean_counts.values())
    assert C.check_budgets({"pgd": {0.05: clean_counts}}).flagged is False
    assert C.check_budgets({"pgd": {0.05: counts}}).flagged


def test_every_flag_is_documented():
    from pathlib import Path

    doc = (Path(__file__).parents[2] / "docs" / "robustness.md").read_text()
    for name in C.FLAGS:
        assert f"`{name}`" in doc, name
    assert C.TOLERANCE == pytest.approx(0.002)
