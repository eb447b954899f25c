"""Hostile submissions scored by the real scorer: each fails with its reason (or scores without the labels),
finds no labels, changes nothing outside its scratch folder and leaves the honest submission's score as it was.

The ``peek`` test needs bubblewrap (a plain child running as the organiser's user can read what it guesses);
it skips with the reason where bwrap cannot run. The others run under either isolation.
"""

from __future__ import annotations

import csv
import hashlib
import json
import shutil
import time
from pathlib import Path

import pytest

from harness.scoring.sandbox import bwrap_problem
from harness.scoring.scorer import LOG_CAP, STDERR_TAIL, entries_from_paths, score_submissions
from harness.scoring.split import verify_split
from harness.scoring.store import ResultStore

from helpers import survivors

pytestmark = pytest.mark.slow
needs_bwrap = pytest.mark.skipif(bwrap_problem() is not None, reason=f"needs bubblewrap: {bwrap_problem()}")


def tree_digest(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        digest.update(str(path.relative_to(folder)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def metrics_of(db: Path, name: str) -> dict:
    with ResultStore(db) as store:
        return next(r.metrics for r in store.records() if r.submission == name)


@pytest.fixture(scope="module")
def tiny_artifact(hidden_split) -> Path:
    """The tiny reference model the split was built with: scoring it needs no training."""
    return next((hidden_split.parent / "references").rglob("model.json")).parent


@pytest.fixture(scope="module")
def baseline(hidden_split, submissions_dir, tiny_artifact, tmp_path_factory):
    """The honest submission alone."""
    out = tmp_path_factory.mktemp("baseline")
    entries = entries_from_paths([submissions_dir / "tiny"], {"tiny": tiny_artifact})
    score_submissions(entries, hidden_split, out / "db.sqlite", out / "board.csv", profile="cpu", timeout=240,
                      work_dir=out / "work", threads=1)
    return metrics_of(out / "db.sqlite", "tiny")


@pytest.fixture(scope="module")
def hostile(hidden_split, submissions_dir, tiny_artifact, tmp_path_factory):
    """tiny + every hostile submission in one store; peek only where bubblewrap runs (it would vandalise)."""
    out = tmp_path_factory.mktemp("hostile")
    db, board, outside = out / "results.sqlite", out / "leaderboard.csv", out / "outside"
    outside.mkdir()
    (outside / "canary.txt").write_text("untouched\n")
    subs = out / "subs"
    names = ["tiny", "flood", "hog"] + ([] if bwrap_problem() else ["peek"])
    for name in names + ["forkbomb"]:
        shutil.copytree(submissions_dir / name, subs / name)
    targets = {"split": str(hidden_split), "labels": str(hidden_split / "organiser" / "labels.npy"),
               "db": str(db), "leaderboard": str(board), "outside": str(outside),
               "canary": str(outside / "canary.txt"), "work": str(out / "work")}
    (subs / "peek" / "targets.json").write_text(json.dumps(targets)) if "peek" in names else None
    digests = {name: tree_digest(subs / name) for name in names + ["forkbomb"]}
    score_submissions(entries_from_paths([subs / n for n in names], {"tiny": tiny_artifact}), hidden_split, db,
                      board, profile="cpu", timeout=240, work_dir=out / "work", threads=1, memory_gb=4)
    with ResultStore(db) as store:
        before_bomb = {r.submission: (r.status, r.reason, r.finished_at) for r in store.records()}
    started = time.monotonic()
    score_submissions(entries_from_paths([subs / "forkbomb"]), hidden_split, db, board, profile="cpu", timeout=20,
                      work_dir=out / "work", threads=1)
    return {"db": db, "board": board, "work": out / "work", "outside": outside, "subs": subs, "names": names,
            "digests": digests, "before_bomb": before_bomb, "bomb_seconds": time.monotonic() - started}


def row(board: Path, name: str) -> dict[str, str]:
    with open(board, newline="") as handle:
        return next(r for r in csv.DictReader(handle) if r["submission"] == name and r["partition"] == "public")


def test_honest_score_is_unchanged_by_hostile_neighbours(hostile, baseline):
    assert metrics_of(hostile["db"], "tiny") == baseline
    assert row(hostile["board"], "tiny")["status"] == "scored"


def test_memory_hog_is_stopped_by_the_address_space_limit(hostile):
    hog = row(hostile["board"], "hog")
    assert (hog["status"], hog["reason"]) == ("failed", "crashed: MemoryError")


def test_flood_is_capped_and_still_scored(hostile):
    assert row(hostile["board"], "flood")["status"] == "scored"
    logs = next(hostile["work"].glob("flood-*"))
    for name in ("stdout.log", "stderr.log"):
        size = (logs / name).stat().st_size
        assert LOG_CAP <= size <= LOG_CAP + STDERR_TAIL + 200, (name, size)
        assert b"[harness: log capped at" in (logs / name).read_bytes()


def test_fork_bomb_is_killed_whole_on_timeout(hostile):
    bomb = row(hostile["board"], "forkbomb")
    assert (bomb["status"], bomb["reason"]) == ("failed", "timeout: no result after 20 s (process group killed)")
    assert hostile["bomb_seconds"] < 90
    forks = next(hostile["work"].glob("forkbomb-*/work/forks.txt"))
    assert int(forks.read_text()) > 0
    time.sleep(0.5)
    assert survivors("harness-forkbomb-marker") == []


@needs_bwrap
def test_peek_finds_reads_and_writes_nothing(hostile, hidden_split):
    report = json.loads(next(hostile["work"].glob("peek-*/work/peek-report.json")).read_text())
    assert (report["found"], report["read"], report["wrote"], report["network"]) == ([], [], [], [])
    assert report["cwd"] == "/sandbox/work"  # the same whatever the organiser's folders are
    assert not any(str(hidden_split) in arg or "organiser" in arg for arg in report["argv"])
    assert row(hostile["board"], "peek")["status"] == "scored"  # predicted at chance, without the labels


def test_nothing_outside_scratch_changed(hostile, hidden_split):
    verify_split(hidden_split)  # no file of the split changed, added or removed
    assert [p.name for p in hostile["outside"].iterdir()] == ["canary.txt"]
    assert (hostile["outside"] / "canary.txt").read_text() == "untouched\n"
    for name, digest in hostile["digests"].items():
        assert tree_digest(hostile["subs"] / name) == digest, f"{name}'s folder changed"
    with ResultStore(hostile["db"]) as store:
        records = {r.submission: (r.status, r.reason, r.finished_at) for r in store.records()}
    assert sorted(records) == sorted(hostile["names"] + ["forkbomb"])  # one row each, none added or removed
    assert {k: v for k, v in records.items() if k != "forkbomb"} == hostile["before_bomb"]
    with open(hostile["board"], newline="") as handle:
        assert len(list(csv.DictReader(handle))) == 2 * len(records)


def test_fork_bomb_in_a_plain_process_is_killed_whole(hidden_split, submissions_dir, tmp_path):
    """The same without bubblewrap: the process group (and RLIMIT_NPROC, for users other than root)."""
    score_submissions(entries_from_paths([submissions_dir / "forkbomb"]), hidden_split, tmp_path / "db.sqlite",
                      tmp_path / "board.csv", profile="cpu", timeout=20, work_dir=tmp_path / "work", threads=1,
                      sandbox="process")
    bomb = row(tmp_path / "board.csv", "forkbomb")
    assert (bomb["status"], bomb["reason"]) == ("failed", "timeout: no result after 20 s (process group killed)")
    time.sleep(0.5)
    assert survivors("harness-forkbomb-marker") == []
