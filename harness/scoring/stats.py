"""Leaderboard statistics on per-image correctness: intervals, the paired test, shared ranks (numpy, seeded).

* :func:`wilson_interval`: a category's accuracy (a binomial proportion) gets the Wilson score interval.
* :func:`score_interval`: the score (the mean of the category accuracies) gets a stratified percentile
  bootstrap over images; a category whose images all agree is resampled with Wilson's smoothing
  (:func:`_category_replicates`), so it never adds false certainty.
* :func:`paired_test`: two submissions on the same images: a stratified sign-flip test of the score
  difference over the images where exactly one of them is right (two-sided).
* :func:`shared_ranks`: in score order, a submission joins the group of the group's first submission when the
  paired test does not tell them apart; a group of more than one shows ``=k``.
* :func:`pack_bits` / :func:`unpack_bits`: per-image bool vectors as text for the store.
* :func:`bootstrap_weights` / :func:`sign_flip_test`: the attack track's pieces (:mod:`.attack_board`): how often
  each image is drawn in each bootstrap replicate (one draw shared by every attack and defense), and the
  sign-flip test of paired per-image differences of any size.

docs/competition.md ("Intervals and ranks") states each rule exactly.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Callable, Mapping, Sequence

import numpy as np

#: two-sided 95%: the normal quantile, bootstrap replicates, sign-flip draws, the test's level
Z95 = 1.959963984540054
REPLICATES = 2000
FLIPS = 9999
ALPHA = 0.05


def seed_from(text: str) -> int:
    """A 64-bit seed derived from ``text`` (e.g. the split hash: the split's own seed stays secret)."""
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")


def wilson_interval(correct: int, total: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval of ``correct`` / ``total``: never zero-width, inside [0, 1]."""
    if total <= 0:
        raise ValueError("a category needs at least one image")
    p = correct / total
    denominator = 1 + z * z / total
    centre = (p + z * z / (2 * total)) / denominator
    half = z * np.sqrt(p * (1 - p) / total + z * z / (4 * total * total)) / denominator
    low = 0.0 if correct == 0 else max(0.0, float(centre - half))  # exact at the ends (no rounding residue)
    return low, 1.0 if correct == total else min(1.0, float(centre + half))


def _category_replicates(correct: int, total: int, rng: np.random.Generator, replicates: int) -> np.ndarray:
    """Bootstrap replicates of one category's accuracy. Resampling ``total`` of its images with replacement
    gives exactly Binomial(total, p)/total with p its accuracy, drawn here directly. A category where every
    image agrees (p = 0 or 1) would give zero spread; it is resampled around p with the spread of
    Binomial(total, c)/total, c = Wilson's centre (p + z^2/2n) / (1 + z^2/n), clipped into [0, 1]."""
    p = correct / total
    if 0 < correct < total:
        return rng.binomial(total, p, size=replicates) / total
    centre = (p + Z95 * Z95 / (2 * total)) / (1 + Z95 * Z95 / total)
    deviation = rng.binomial(total, centre, size=replicates) / total - centre
    return np.clip(p + deviation, 0.0, 1.0)


def score_interval(counts: Sequence[tuple[int, int]], fixed: int = 0, seed: int = 0,
                   replicates: int = REPLICATES) -> tuple[float, float]:
    """95% percentile bootstrap interval of the score = mean over categories of correct/total, stratified
    (each category resampled within itself). ``counts``: (correct, total) per measured category; ``fixed``:
    categories that count 0 without being measured (unscored). Widened to hold the score itself."""
    categories = len(counts) + fixed
    if not categories:
        return 0.0, 0.0
    rng = np.random.default_rng(seed)
    total = np.zeros(replicates)
    for correct, count in counts:
        total += _category_replicates(correct, count, rng, replicates)
    low, high = np.percentile(total / categories, [2.5, 97.5])
    score = sum(c / n for c, n in counts) / categories
    return float(min(low, score)), float(max(high, score))


def paired_test(a: Mapping[str, np.ndarray], b: Mapping[str, np.ndarray], seed: int = 0,
                flips: int = FLIPS) -> float:
    """Two-sided p-value that submissions ``a`` and ``b`` (per category, per-image correctness on the same
    images, same order) have the same score. Statistic: D = mean over categories of (a_i - b_i) averaged over
    the category's images. Under the null each image's two outcomes are exchangeable, so each discordant
    image's difference flips sign with probability 1/2, independently; p = (1 + #{|D*| >= |D|}) / (1 + flips)
    over ``flips`` seeded sign-flip draws (per category the flipped sum is 2 Binomial(m, 1/2) - m for its m
    discordant images). No discordant image: p = 1."""
    if list(a) != list(b):
        raise ValueError(f"paired test: categories differ ({', '.join(a)} vs {', '.join(b)})")
    rng = np.random.default_rng(seed)
    weight = 1.0 / len(a) if a else 0.0
    observed, null = 0.0, np.zeros(flips)
    for category in a:
        x, y = np.asarray(a[category], dtype=bool), np.asarray(b[category], dtype=bool)
        if x.shape != y.shape or not len(x):
            raise ValueError(f"paired test: category '{category}' has {len(x)} vs {len(y)} images")
        discordant = int((x != y).sum())
        observed += weight * (int(x.sum()) - int(y.sum())) / len(x)
        if discordant:
            null += weight * (2 * rng.binomial(discordant, 0.5, size=flips) - discordant) / len(x)
    extreme = int((np.abs(null) >= abs(observed) - 1e-12).sum())
    return (1 + extreme) / (1 + flips)


def shared_ranks(count: int, differ: Callable[[int, int], bool]) -> list[str]:
    """Ranks of ``count`` submissions sorted best first. Walking down, submission i joins the current group
    when ``differ(first, i)`` is False (first = the group's first, highest-scored member), else starts a new
    group ranked i + 1. Members of a group of more than one show ``=k``, others ``k``: 1, =2, =2, 4."""
    groups: list[list[int]] = []
    for i in range(count):
        if groups and not differ(groups[-1][0], i):
            groups[-1].append(i)
        else:
            groups.append([i])
    ranks = [""] * count
    for group in groups:
        label = f"={group[0] + 1}" if len(group) > 1 else str(group[0] + 1)
        for i in group:
            ranks[i] = label
    return ranks


def pack_bits(values: np.ndarray) -> str:
    """A bool vector as ``"N:base64"`` (numpy packbits, 8 images a byte)."""
    values = np.asarray(values, dtype=bool).reshape(-1)
    return f"{len(values)}:{base64.b64encode(np.packbits(values).tobytes()).decode('ascii')}"


def unpack_bits(text: str) -> np.ndarray:
    """The bool vector of :func:`pack_bits`; ValueError on text it did not write."""
    count, sep, data = str(text).partition(":")
    if not sep or not count.isdigit():
        raise ValueError(f"not packed correctness: {str(text)[:40]!r}")
    raw = np.frombuffer(base64.b64decode(data, validate=True), dtype=np.uint8)
    if len(raw) != (int(count) + 7) // 8:
        raise ValueError(f"packed correctness holds {len(raw)} bytes, expected {(int(count) + 7) // 8}")
    return np.unpackbits(raw)[: int(count)].astype(bool)


def bootstrap_weights(count: int, seed: int = 0, replicates: int = REPLICATES) -> np.ndarray:
    """(replicates, count) int array: how often each of ``count`` images is drawn in each replicate of a
    bootstrap over images (``count`` draws with replacement). A statistic that is a function of per-image
    sums gets its replicates by a matrix product with these weights."""
    if count <= 0:
        raise ValueError("a bootstrap over images needs at least one image")
    rng = np.random.default_rng(seed)
    return rng.multinomial(count, np.full(count, 1.0 / count), size=replicates)


def sign_flip_test(differences: np.ndarray, seed: int = 0, flips: int = FLIPS) -> float:
    """Two-sided p-value that paired per-image differences ``differences`` (a_i - b_i, any real values: each
    image's share of two statistics that are sums over images) have sum 0. Under the null each image's two
    outcomes are exchangeable, so each difference flips sign with probability 1/2, independently;
    p = (1 + #{|sum s_i d_i| >= |sum d_i|}) / (1 + flips) over ``flips`` seeded draws. All zero: p = 1."""
    d = np.asarray(differences, dtype=np.float64).reshape(-1)
    d = d[d != 0]
    if not len(d):
        return 1.0
    rng = np.random.default_rng(seed)
    observed, extreme = abs(float(d.sum())), 0
    for start in range(0, flips, 1000):  # chunks: flips x images signs never held at once
        signs = rng.integers(0, 2, size=(min(1000, flips - start), len(d)), dtype=np.int8) * 2 - 1
        extreme += int((np.abs(signs @ d) >= observed - 1e-12).sum())
    return (1 + extreme) / (1 + flips)
