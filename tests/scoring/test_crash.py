"""Crash safety: the organiser's ``harness score`` SIGKILLed at every numbered point of a run, then rerun.

crash_driver.py fakes the children (instant logits) and forks each run from one process that imported the
harness once, so that the 30-odd points cost seconds in all; test_score.py kills the real command once with
real children. After every kill the CSV on disk is complete
and parseable, and after the rerun each submission is scored exactly once with the uninterrupted run's scores.
"""

from __future__ import annotations

import csv
import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

DRIVER = Path(__file__).with_name("crash_driver.py")
NAMES = ("alpha", "broken", "gamma")  # scored, failed, scored: every kind of kill point, each transition


@pytest.fixture(scope="module")
def subs(submissions_dir, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("crash") / "subs"
    for name in NAMES:
        shutil.copytree(submissions_dir / "tiny", folder / name)
        text = (folder / name / "submission.toml").read_text()
        (folder / name / "submission.toml").write_text(text.replace('name = "tiny"', f'name = "{name}"'))
    return folder


def drive(jobs: list[tuple[int, Path]], subs: Path, split: Path) -> list[dict]:
    """Run ``harness score`` once per (kill point, folder) job, all from one driver process; their results."""
    command = [sys.executable, str(DRIVER), json.dumps([[k, str(f)] for k, f in jobs]), "score", str(subs),
               "--split", str(split), "-P", "cpu", "--db", "{out}/results.sqlite", "--leaderboard", "{out}/board.csv",
               "--work-dir", "{out}/work", "--sandbox", "none"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    results = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert [r["kill_at"] for r in results] == [k for k, _ in jobs], done.stdout
    return results


def log(folder: Path) -> str:
    return (folder / "output.log").read_text() if (folder / "output.log").exists() else ""


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
    [clean] = drive([(0, tmp_path / "clean")], subs, hidden_split)
    assert clean["code"] == 0, log(tmp_path / "clean")
    points = clean["points"]
    expected = table(tmp_path / "clean" / "results.sqlite")
    assert sorted(expected) == sorted(NAMES) and points >= 20
    folders = {kill_at: tmp_path / f"kill-{kill_at}" for kill_at in range(1, points + 1)}
    for killed in drive(list(folders.items()), subs, hidden_split):
        out = folders[killed["kill_at"]]
        assert killed["code"] == -9, (killed, log(out))
        db_rows = table(out / "results.sqlite") if (out / "results.sqlite").exists() else {}
        check_csv(out / "board.csv", db_rows)
    for rerun in drive([(0, folder) for folder in folders.values()], subs, hidden_split):
        out = Path(rerun["folder"])
        assert rerun["code"] == 0, (out.name, log(out))
        assert table(out / "results.sqlite") == expected, out.name  # every one exactly once, same scores
        check_csv(out / "board.csv", expected)
        with open(out / "board.csv", newline="") as handle:
            assert len(list(csv.DictReader(handle))) == 2 * len(NAMES)
    print(f"{points} kill points")
