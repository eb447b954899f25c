"""The attack track's organiser-side checks, without children: clipping, counts, matrix records, attackers."""

from __future__ import annotations

import numpy as np
import pytest

from harness.scoring.attack_track import Attacker, DefenseTarget, attackers, clip_adversarial, matrix_record
from harness.scoring.stats import unpack_bits


def clean_images(count=4, side=3, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(count, side, side, 1), dtype=np.uint8)


def test_images_inside_the_budget_come_back_unchanged():
    clean = clean_images()
    inside = np.clip(clean / 255.0 + 0.05, 0, 1).astype(np.float32)
    images, counts, problem = clip_adversarial(inside, clean, 0.1, "linf")
    assert problem == ""
    assert counts == {"outside_budget": 0, "outside_box": 0, "clipped": 0}
    np.testing.assert_allclose(images, inside, atol=1e-6)


def test_linf_images_outside_budget_and_box_are_clipped_and_counted():
    clean = clean_images()
    far = clean / 255.0 + 0.5  # every image leaves the eps ball; those with bright pixels leave [0, 1] too
    far[0] = clean[0] / 255.0  # one untouched image
    images, counts, problem = clip_adversarial(far.astype(np.float32), clean, 0.1, "linf")
    assert problem == ""
    delta = images.astype(np.float64) - clean / 255.0
    assert np.abs(delta).max() <= 0.1 + 1e-6 and images.min() >= 0 and images.max() <= 1
    assert counts["outside_budget"] == 3 and counts["clipped"] == 3
    assert counts["outside_box"] == int(((far > 1 + 1e-5).reshape(4, -1)).any(axis=1).sum())


def test_l2_images_are_projected_onto_the_ball():
    clean = np.full((2, 4, 4, 1), 128, dtype=np.uint8)
    step = np.zeros((2, 4, 4, 1))
    step[0, 0, 0, 0] = 0.4  # l2 distance 0.4 > eps 0.2
    step[1, 0, 0, 0] = 0.1  # inside
    images, counts, problem = clip_adversarial((clean / 255.0 + step).astype(np.float32), clean, 0.2, "l2")
    sizes = np.sqrt(((images - clean / 255.0) ** 2).reshape(2, -1).sum(axis=1))
    assert problem == "" and counts["outside_budget"] == 1 and counts["clipped"] == 1
    assert sizes[0] == pytest.approx(0.2, abs=1e-5) and sizes[1] == pytest.approx(0.1, abs=1e-5)


@pytest.mark.parametrize("returned, words", [
    (np.full((4, 3, 3, 1), np.nan, np.float32), "image 0 is not finite (4 images"),
    (np.zeros((3, 3, 3, 1), np.float32), "returned 3 images shaped (3, 3, 3, 1), expected (4, 3, 3, 1)"),
    (np.zeros((4, 3, 3, 1), np.uint8), "returned uint8 images, expected floats"),
])
def test_unusable_images_fail_the_attack_with_the_reason(returned, words):
    images, counts, problem = clip_adversarial(returned, clean_images(), 0.1, "linf")
    assert images is None and words in problem


class FakeSplit:
    """What matrix_record reads of a split: labels and partition of the attack-track images."""

    split_hash = "s" * 64
    attack_labels = np.array([0, 1, 2, 0, 1, 2])
    attack_public = np.array([True, True, True, False, False, False])


def test_matrix_record_counts_fooled_among_the_clean_correct_per_partition():
    from harness.scoring.store import AttackRecord

    eye = np.eye(3, dtype=np.float32)
    clean_logits = eye[[0, 1, 0, 0, 1, 2]]        # wrong on image 2 (public)
    adversarial_logits = eye[[1, 1, 2, 0, 0, 0]]  # fools 0 (public), 4 and 5 (private); 2 was wrong already
    attack = AttackRecord(attack="a", team="t", framework="torch", kind="submission", profile="base",
                          content_hash="c" * 64, split_hash=FakeSplit.split_hash, harness_version="v", status="ok")
    defense = DefenseTarget("d", "team", "k" * 64, None)
    record = matrix_record(attack, defense, FakeSplit(), "scored", "", clean_logits, adversarial_logits)
    assert record.metrics["public"] == {"count": 3, "clean_correct": 2, "fooled": 1, "success": 0.5}
    assert record.metrics["private"] == {"count": 3, "clean_correct": 3, "fooled": 2, "success": pytest.approx(2 / 3)}
    assert list(unpack_bits(record.correct["public"]["clean"])) == [True, True, False]
    assert list(unpack_bits(record.correct["private"]["adversarial"])) == [True, False, False]
    assert record.attack_key == attack.key and record.defense_key == defense.key


def test_attackers_are_the_attack_submissions_then_the_baselines(tmp_path):
    from harness.scoring.child_run import Entry
    from harness.scoring.split import AttackTrackRules, Baseline

    rules = AttackTrackRules(source="test", count=10, eps=0.1, norm="linf", access="transfer", time_limit=60.0,
                             defense_time_limit=60.0, baselines=(
                                 Baseline(label="baseline-noise", attack="gaussian", params={}, surrogate=None,
                                          surrogate_profile=None, framework="torch"),))
    entries = [Entry(tmp_path, "defense", "t", "torch", "a" * 64),
               Entry(tmp_path, "mine", "t", "torch", "b" * 64, track="attack")]
    found = attackers(entries, rules, "cpu")
    assert [(a.name, a.kind, a.profile) for a in found] == [("mine", "submission", "cpu"),
                                                           ("baseline-noise", "baseline", None)]
    assert found[1].attack == {"name": "gaussian", "params": {}} and found[1].root is None
    # the baseline's identity follows its settings: another parameter is another attack
    other = AttackTrackRules(**{**rules.__dict__, "baselines": (Baseline(
        label="baseline-noise", attack="gaussian", params={"sigma": 2}, surrogate=None, surrogate_profile=None,
        framework="torch"),)})
    assert attackers([], other, None)[0].content_hash != found[1].content_hash
    assert isinstance(found[0], Attacker)
