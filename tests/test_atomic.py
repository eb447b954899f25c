"""harness.atomic: atomic files and folders; a folder is swapped with renameat2(RENAME_EXCHANGE) where supported."""

from __future__ import annotations

import pytest

from harness import atomic


def test_atomic_directory_exchanges_an_existing_folder(tmp_path, monkeypatch):
    target = tmp_path / "site"
    target.mkdir()
    (target / "old.txt").write_text("old")
    calls = []
    real = atomic.exchange
    monkeypatch.setattr(atomic, "exchange", lambda a, b: calls.append((a, b)) or real(a, b))
    with atomic.atomic_directory(target) as tmp:
        (tmp / "new.txt").write_text("new")
        assert (target / "old.txt").read_text() == "old"  # untouched while the new one is written
    assert [p.name for p in target.iterdir()] == ["new.txt"]
    assert len(calls) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["site"]  # the old folder and the temp one are gone


def test_exchange_swaps_two_folders(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    (a / "x").write_text("a")
    if not atomic.exchange(a, b):
        pytest.skip("renameat2(RENAME_EXCHANGE) is not supported here (the fallback is tested below)")
    assert (b / "x").read_text() == "a" and not (a / "x").exists()


def test_fallback_renames_and_failure_keeps_the_old_folder(tmp_path, monkeypatch):
    target = tmp_path / "out"
    target.mkdir()
    (target / "old.txt").write_text("old")
    monkeypatch.setattr(atomic, "exchange", lambda a, b: False)  # a kernel or file system without it
    with pytest.raises(RuntimeError), atomic.atomic_directory(target) as tmp:
        (tmp / "half.txt").write_text("half")
        raise RuntimeError("build failed")
    assert [p.name for p in target.iterdir()] == ["old.txt"]
    with atomic.atomic_directory(target) as tmp:
        (tmp / "new.txt").write_text("new")
    assert [p.name for p in target.iterdir()] == ["new.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
