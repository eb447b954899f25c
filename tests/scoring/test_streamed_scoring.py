"""The organiser reads what children write a chunk at a time: the same checks and figures as whole arrays."""

from __future__ import annotations

import numpy as np
import pytest

from harness.chunks import ENV
from harness.errors import UsageError
from harness.scoring.adaptive import check_adversarial
from harness.scoring.child_run import open_predictions
from harness.scoring.scorer import correctness, predicted_classes


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch):
    monkeypatch.setenv(ENV, "256")


def test_top_k_and_predicted_classes_equal_the_whole_array_formulas(tmp_path):
    rng = np.random.default_rng(0)
    logits = rng.integers(0, 4, size=(700, 10)).astype(np.float32)  # many ties
    labels = rng.integers(0, 10, size=700)
    np.save(tmp_path / "logits.npy", logits)
    mapped = open_predictions(tmp_path / "logits.npy", 700, 10)
    assert isinstance(mapped, np.memmap)
    for k in (1, 5):
        whole = (np.argpartition(-logits, k - 1, axis=1)[:, :k] == labels.reshape(-1, 1)).any(axis=1)
        assert np.array_equal(correctness(mapped, labels, k), whole)
    assert np.array_equal(predicted_classes(mapped), logits.argmax(axis=1))


def test_bad_rows_found_in_a_later_chunk(tmp_path):
    logits = np.zeros((600, 3), dtype=np.float64)
    logits[[300, 599], 1] = np.nan
    np.save(tmp_path / "logits.npy", logits)
    with pytest.raises(UsageError, match=r"^predictions contain 2 NaN or infinite values$"):
        open_predictions(tmp_path / "logits.npy", 600, 3)
    np.save(tmp_path / "text.npy", np.array(["a"] * 600).reshape(600, 1))
    with pytest.raises(UsageError, match=r"^predictions must be numbers, got <U1$"):
        open_predictions(tmp_path / "text.npy", 600, 1)


def test_adversarial_checks_name_the_first_bad_image_across_chunks(tmp_path):
    clean = np.full((600, 4, 4, 1), 128, dtype=np.uint8)
    adversarial = clean.astype(np.float32) / 255
    adversarial[[400, 500], 0, 0, 0] = 0.99  # outside the 0.1 ball, second and third chunks
    np.save(tmp_path / "adversarial.npy", adversarial)
    mapped = np.load(tmp_path / "adversarial.npy", mmap_mode="r")
    assert check_adversarial(mapped, clean, 0.1, "linf") == (
        "image 400 is outside the linf ball: distance 0.488039 > eps 0.1 (2 images)")
    adversarial[550, 1, 1, 0] = np.nan  # not finite outranks outside the ball
    found = check_adversarial(adversarial, clean, 0.1, "linf")
    assert found == "image 550 is not finite (1 images with NaN or infinity)"
