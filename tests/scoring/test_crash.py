"""Crash safety: the organiser's ``harness score`` SIGKILLed at every numbered point of a run, then rerun.

crash_driver.py fakes the children (instant logits) so that each of the 30-odd points costs about a second;
test_score.py kills the real command once with real children. After every kill the CSV on disk is complete
and parseable, and after the rerun each submission is scored exactly once with the uninterrupted run's scores.
"""

from __future__ import annotations

import csv
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

DRIVER = Path(__file__).with_name("crash_driver.py")
NAMES = ("alpha", "beta", "broken", "gamma")


@pytest.fixture(scope="module")
def subs(submissions_dir, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("crash") / "subs"
    for name in NAMES:
        shutil.copytree(submissions_dir / "tiny", folder / name)
        text = (folder / name / "submission.toml").read_text()
        (folder / name / "submission.toml").write_text(text.replace('name = "tiny"', f'name = "{name}"'))
    return folder


def drive(kill_at: int, subs: Path, split: Path, out: Path) -> subprocess.CompletedProcess:
    command = [sys.executable, str(DRIVER), str(kill_at), "score", str(subs), "--split", str(split), "-P", "cpu",
               "--db", str(out / "results.sqlite"), "--leaderboard", str(out / "board.csv"),
               "--work-dir", str(out / "work"), "--sandbox", "none"]
    return subprocess.run(command, capture_output=True, text=True, timeout=120)


def table(db: Path) -> dict[str, tuple[str, str]]:
    rows = sqlite3.connect(db).execute("SELECT submission, status, metrics FROM results").fetchall()
    names = [r[0] for r in rows]
    assert len(names) == len(set(names)), f"a submission scored twice: {names}"
    return {r[0]: (r[1], r[2]) for r in rows}


def check_csv(board: Path, db_rows: dict) -> None:
    """Complete and parseable: a header, two full rows per submission, each one the store has."""
    if not board.exists():
        return
    with open(board, newline="") as handle:
        reader = csv.DictReader(handle)
        rows = list(reader)
    assert reader.fieldnames and reader.fieldnames[0] == "rank"
    assert all(None not in r and None not in r.values() for r in rows), "a truncated row"
    submissions = [r["submission"] for r in rows]
    assert len(rows) % 2 == 0 and set(submissions) <= set(db_rows)
    assert sorted(submissions) == sorted(2 * sorted(set(submissions)))


def test_kill_at_every_point_then_rerun(subs, hidden_split, tmp_path):
    clean = drive(0, subs, hidden_split, tmp_path / "clean")
    assert clean.returncode == 0, clean.stderr
    points = int(clean.stdout.strip().splitlines()[-1].split()[1])
    expected = table(tmp_path / "clean" / "results.sqlite")
    assert sorted(expected) == sorted(NAMES) and points >= 20
    for kill_at in range(1, points + 1):
        out = tmp_path / f"kill-{kill_at}"
        killed = drive(kill_at, subs, hidden_split, out)
        assert killed.returncode == -9, (kill_at, killed.stdout, killed.stderr)
        db_rows = table(out / "results.sqlite") if (out / "results.sqlite").exists() else {}
        check_csv(out / "board.csv", db_rows)
        rerun = drive(0, subs, hidden_split, out)
        assert rerun.returncode == 0, (kill_at, rerun.stderr)
        assert table(out / "results.sqlite") == expected, kill_at  # every one exactly once, same scores
        check_csv(out / "board.csv", expected)
        with open(out / "board.csv", newline="") as handle:
            assert len(list(csv.DictReader(handle))) == 2 * len(NAMES)
    print(f"{points} kill points")
