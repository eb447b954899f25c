"""The organiser's checks of returned adversarial images: the first problem named, nothing projected."""

from __future__ import annotations

import numpy as np
import pytest

from harness.errors import UsageError
from harness.scoring.adaptive import (AdaptiveOutcome, CategoryOutcome, check_adversarial, read_adaptive_outcome,
                                      write_adaptive_outcome)

CLEAN = np.full((3, 4, 4, 1), 128, dtype=np.uint8)
X = CLEAN.astype(np.float32) / 255


def with_change(index, value):
    out = X.copy()
    out[index] = value
    return out


@pytest.mark.parametrize("adversarial, norm, problem", [
    (X + 0.1, "linf", ""),
    (X[:2], "linf", "returned 2 images shaped (2, 4, 4, 1), expected (3, 4, 4, 1)"),
    (X[..., 0], "linf", "returned 3 images shaped (3, 4, 4), expected"),
    (CLEAN, "linf", "returned uint8 images"),
    (with_change((1, 0, 0, 0), np.nan), "linf", "image 1 is not finite (1 images"),
    (with_change((2, 0, 0, 0), np.inf), "linf", "image 2 is not finite"),
    (with_change((0, 1, 1, 0), 0.9), "linf", "image 0 is outside the linf ball: distance 0.398"),
    (with_change((0, 1, 1, 0), 1.02), "linf", "image 0 leaves [0, 1]"),
    (X + 0.1 + 2e-5, "linf", "image 0 is outside the linf ball"),
    (X + 0.1 + 5e-6, "linf", ""),  # float slack
    (X + 0.02, "l2", ""),  # l2 size 0.08
    (X + 0.05, "l2", "image 0 is outside the l2 ball: distance 0.2 > eps 0.1 (3 images)"),
])
def test_check_adversarial(adversarial, norm, problem):
    found = check_adversarial(adversarial, CLEAN, 0.1, norm)
    assert found.startswith(problem) if problem else found == ""


def test_outcome_round_trip_and_unreadable(tmp_path):
    outcome = AdaptiveOutcome({"a": CategoryOutcome("ok", "", np.ones((2, 3), np.float32), np.zeros((2, 3)),
                                                    ["zero-input-gradients"], {"eps": 0.1}),
                               "b": CategoryOutcome("failed", "attack child crashed: boom")})
    write_adaptive_outcome(tmp_path, outcome)
    back = read_adaptive_outcome(tmp_path)
    assert back.categories["a"].flags == ["zero-input-gradients"] and back.categories["a"].details == {"eps": 0.1}
    assert back.categories["a"].adversarial_logits.dtype == np.float32
    assert np.array_equal(back.categories["a"].clean_logits, np.ones((2, 3)))
    assert back.categories["b"].clean_logits is None and back.categories["b"].reason == "attack child crashed: boom"
    with pytest.raises(UsageError, match="unreadable adaptive outcome"):
        read_adaptive_outcome(tmp_path / "nowhere")


def test_robust_correct_needs_both_predictions_right_and_a_failed_category_counts_zero():
    clean = np.eye(3, dtype=np.float32)[[0, 1, 2, 0]]
    adversarial = np.eye(3, dtype=np.float32)[[0, 2, 2, 1]]
    labels = np.array([0, 1, 1, 0])
    assert CategoryOutcome("ok", "", clean, adversarial).robust_correct(labels).tolist() == [True, False, False, False]
    failed = CategoryOutcome("failed", "not exportable: no export")
    assert failed.robust_correct(labels).tolist() == [False] * 4
