"""Fixtures of the site tests: synthetic stores (site_data.py), no training."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from site_data import png, record  # noqa: E402

from harness.scoring.store import ResultStore  # noqa: E402


@pytest.fixture
def report_dir(tmp_path) -> Path:
    """A report folder with the two pictures the scorer's report step draws."""
    folder = tmp_path / "reports" / "r1"
    folder.mkdir(parents=True)
    (folder / "explain.png").write_bytes(png(12, 8, 40))
    (folder / "activations.png").write_bytes(png(10, 10, 200))
    return folder


@pytest.fixture
def plain_store(tmp_path, report_dir) -> Path:
    """A plain store: three scored submissions (one rescored), one failed, one invalid."""
    db = tmp_path / "plain.sqlite"
    with ResultStore(db) as store:
        store.add(record("alpha", "red", 0.81, 0.6131, finished_at=1_790_000_001, report_dir=report_dir,
                         flags=("pgd: zero-gradients",)))
        store.add(record("beta", "blue", 0.52, 0.4747, finished_at=1_790_000_002, content="b" * 64))
        store.add(record("beta", "blue", 0.66, 0.5858, finished_at=1_790_000_005, content="c" * 64))
        store.add(record("gamma", "green", 0.33, 0.2929, finished_at=1_790_000_003))
        store.add(record("delta", "green", 0, 0, status="failed", reason="crashed: out of memory",
                         finished_at=1_790_000_004))
        store.add(record("eps", "grey", 0, 0, status="invalid", reason="submission.toml: unknown field 'foo'",
                         finished_at=1_790_000_006))
    return db
