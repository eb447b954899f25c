"""The organiser's side of the adaptive phase, without children: robust correctness replaces top-1 on adaptive
images, flags land with their category, a failed or missing outcome is unscored with its reason, and an export
that predicts otherwise than the submission's own child is flagged ``export-mismatch``."""

from __future__ import annotations

import numpy as np

from harness.scoring.adaptive import AdaptiveCategory, AdaptiveOutcome, CategoryOutcome, write_adaptive_outcome
from harness.scoring.scorer import EXPORT_MISMATCH, adaptive_results
from harness.scoring.split import HiddenSplit

LABELS = np.array([0, 1, 2, 3, 4, 5, 6, 7, 8, 9])


def split() -> HiddenSplit:
    categories = ["clean"] * 4 + ["pgd"] * 3 + ["square"] * 3
    return HiddenSplit(root=None, split_hash="h" * 64, ids=[f"img-{i}" for i in range(10)], labels=LABELS,
                       categories=categories, public=np.arange(10) % 2 == 0, summary={})


def category(name: str, indices: list[int]) -> AdaptiveCategory:
    return AdaptiveCategory(name=name, attack=name, eps=0.1, norm="linf", params={}, members=[], seed=1,
                            indices=np.array(indices))


def one_hot(classes) -> np.ndarray:
    return np.eye(10, dtype=np.float32)[np.asarray(classes)]


def test_robust_correctness_flags_and_unscored_categories(tmp_path):
    logits = one_hot(LABELS)  # child 1: every image right
    top1 = np.ones(10, dtype=bool)
    write_adaptive_outcome(tmp_path, AdaptiveOutcome({
        # image 4: adversarial wrong; image 5: clean wrong (so not robust); image 6: both right
        "pgd": CategoryOutcome("ok", "", one_hot([4, 0, 6]), one_hot([0, 0, 6]), ["zero-input-gradients"],
                               {"seed": 1}),
        "square": CategoryOutcome("failed", "adversarial images rejected: image 0 is not finite (1 images with NaN "
                                            "or infinity)")}))
    flags, details = [], {}
    unscored = adaptive_results(top1, logits, split(), [category("pgd", [4, 5, 6]), category("square", [7, 8, 9])],
                                tmp_path, flags, details)
    assert top1.tolist() == [True] * 4 + [False, False, True] + [False] * 3
    assert unscored == {"square": "adversarial images rejected: image 0 is not finite (1 images with NaN or "
                                  "infinity)"}
    # image 5's export prediction differs from child 1's: 1 of 3 > 2%, so the category is flagged
    assert flags == ["pgd: zero-input-gradients", f"pgd: {EXPORT_MISMATCH}"]
    assert details["adaptive"]["pgd"]["export_disagreements"] == 1 and details["adaptive"]["pgd"]["seed"] == 1
    assert details["adaptive"]["square"]["status"] == "failed"


def test_no_outcome_leaves_every_adaptive_category_unscored(tmp_path):
    top1 = np.ones(10, dtype=bool)
    unscored = adaptive_results(top1, one_hot(LABELS), split(), [category("pgd", [4, 5, 6])], tmp_path, [], {})
    assert list(unscored) == ["pgd"] and unscored["pgd"].startswith("the adaptive phase left no outcome")
    assert not top1[[4, 5, 6]].any() and top1[:4].all()
