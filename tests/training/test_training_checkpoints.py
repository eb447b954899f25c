"""harness.training.checkpoints: which checkpoint a resumed run continues from, and whether it may."""

from __future__ import annotations

import pytest

from harness.errors import UsageError
from harness.training import check_resume, find_checkpoint


def test_find_checkpoint_starts_afresh_or_finds_the_file(tmp_path):
    assert find_checkpoint(False, tmp_path, "checkpoint.pt") is None
    assert find_checkpoint(True, tmp_path, "checkpoint.pt") is None  # nothing saved yet
    (tmp_path / "checkpoint.pt").write_bytes(b"x")
    assert find_checkpoint(True, tmp_path, "checkpoint.pt") == tmp_path / "checkpoint.pt"
    assert find_checkpoint(str(tmp_path / "checkpoint.pt"), None, "checkpoint.pt") == tmp_path / "checkpoint.pt"
    with pytest.raises(UsageError, match="needs out_dir"):
        find_checkpoint(True, None, "checkpoint.pt")
    with pytest.raises(UsageError, match="not found"):
        find_checkpoint(tmp_path / "nope.pt", tmp_path, "checkpoint.pt")


def test_check_resume_allows_only_resumable_changes(tmp_path):
    saved = {"epochs": 2, "lr": 0.01, "progress": True}
    check_resume(tmp_path, "standard", {"epochs": 5, "lr": 0.01, "progress": False}, "standard", saved)
    with pytest.raises(UsageError, match="lr 0.01 -> 0.5"):
        check_resume(tmp_path, "standard", {**saved, "lr": 0.5}, "standard", saved)
    with pytest.raises(UsageError, match="written by defense 'trades', not 'standard'"):
        check_resume(tmp_path, "standard", saved, "trades", saved)


def test_check_resume_reads_a_knob_the_checkpoint_predates_as_its_default(tmp_path):
    saved = {"epochs": 3, "lr": 0.01}  # written before precision / memory_format / compile existed
    check_resume(tmp_path, "standard", {**saved, "precision": "fp32", "compile": False}, "standard", saved)
    with pytest.raises(UsageError, match="precision 'fp32' -> 'bf16'"):
        check_resume(tmp_path, "standard", {**saved, "precision": "bf16"}, "standard", saved)
