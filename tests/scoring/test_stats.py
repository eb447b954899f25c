"""Leaderboard statistics: interval coverage, the paired test, shared ranks, packed correctness."""

from __future__ import annotations

import numpy as np
import pytest

from harness.scoring.stats import (
    ALPHA, pack_bits, paired_test, score_interval, seed_from, shared_ranks, unpack_bits, wilson_interval,
)

#: synthetic predictors: true accuracy per category, images per category (a public partition's size)
TRUTH = np.array([0.95, 0.8, 0.6, 0.3, 0.99])
SIZES = np.array([30, 30, 30, 30, 14])


def test_intervals_cover_the_true_accuracy_in_about_95_percent_of_seeded_replications():
    rng = np.random.default_rng(2024)
    replications = 300
    score_hits, category_hits = 0, 0
    for replication in range(replications):
        correct = rng.binomial(SIZES, TRUTH)
        low, high = score_interval(list(zip(correct.tolist(), SIZES.tolist())), seed=replication)
        score_hits += low <= TRUTH.mean() <= high
        for k, n, p in zip(correct, SIZES, TRUTH):
            lo, hi = wilson_interval(int(k), int(n))
            category_hits += lo <= p <= hi
    assert 0.92 <= score_hits / replications <= 0.98
    assert 0.92 <= category_hits / (replications * len(TRUTH)) <= 0.98


def test_a_category_all_right_or_all_wrong_gets_a_real_interval():
    low, high = wilson_interval(14, 14)
    assert high == 1.0 and 0.7 < low < 0.85
    low, high = wilson_interval(0, 14)
    assert low == 0.0 and 0.15 < high < 0.3
    low, high = score_interval([(14, 14), (14, 14)], seed=1)  # the bootstrap alone would give [1, 1]
    assert high == 1.0 and low < 0.95
    low, high = score_interval([(10, 20), (5, 20)], fixed=1, seed=1)  # an unscored category counts 0
    assert low < 0.25 < high < 0.5
    assert score_interval([(10, 20)], seed=3) == score_interval([(10, 20)], seed=3)  # seeded


def test_the_paired_test_never_separates_identical_predictors_and_separates_a_clearly_better_one():
    rng = np.random.default_rng(7)
    same = {"clean": rng.random(40) < 0.7, "noise": rng.random(40) < 0.5}
    assert paired_test(same, same) == 1.0
    better = {c: v | (rng.random(40) < 0.8) for c, v in same.items()}
    assert paired_test(better, same, seed=1) < ALPHA and paired_test(same, better, seed=1) < ALPHA
    one_flip = {"clean": same["clean"].copy(), "noise": same["noise"]}
    one_flip["clean"][np.flatnonzero(~one_flip["clean"])[0]] = True
    assert paired_test(one_flip, same, seed=1) > 0.5  # one image is noise
    with pytest.raises(ValueError, match="categories differ"):
        paired_test(same, {"clean": same["clean"]})


def test_the_paired_test_holds_its_level_on_equally_good_predictors():
    rng = np.random.default_rng(11)
    rejected = 0
    for trial in range(200):
        a = {c: rng.random(30) < 0.7 for c in ("x", "y", "z")}
        b = {c: rng.random(30) < 0.7 for c in ("x", "y", "z")}
        rejected += paired_test(a, b, seed=trial, flips=999) < ALPHA
    assert rejected / 200 <= 0.09


def test_shared_ranks_join_the_group_of_its_first_member():
    scores = [0.9, 0.7, 0.68, 0.66, 0.3]
    close = lambda i, j: abs(scores[i] - scores[j]) > 0.03  # noqa: E731 - "differ" as a rule of thumb
    # 0.66 is within 0.03 of 0.68 but not of 0.7, the group's first: it starts its own group
    assert shared_ranks(5, close) == ["1", "=2", "=2", "4", "5"]
    assert shared_ranks(3, lambda i, j: False) == ["=1", "=1", "=1"]
    assert shared_ranks(2, lambda i, j: True) == ["1", "2"]
    assert shared_ranks(0, lambda i, j: True) == []


def test_packed_correctness_round_trips():
    for size in (0, 1, 7, 8, 9, 1000):
        values = np.random.default_rng(size).random(size) < 0.5
        text = pack_bits(values)
        assert text.startswith(f"{size}:") and np.array_equal(unpack_bits(text), values)
    with pytest.raises(ValueError, match="not packed correctness"):
        unpack_bits("abc")
    with pytest.raises(ValueError, match="expected 2"):
        unpack_bits("9:AA==")
    assert seed_from("a") == seed_from("a") != seed_from("b")
