"""A SIGKILL anywhere in ``harness contest run`` (snapshot, ledger, scoring child, store) and then a rerun: every
inbox entry recorded once, every accepted entry scored once, the same results as an uninterrupted run."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from contest_helpers import tiny_copy, write_contest
from harness.pack import pack_submission

pytest.importorskip("torch")

DRIVER = Path(__file__).with_name("contest_driver.py")
#: (point, n): the kill points of contest_driver.py this test arms, one run each
KILLS = [("take", 2), ("recorded", 1), ("recorded", 3), ("child", 1), ("stored", 1), ("child", 2), ("stored", 2)]


def contents(db: Path) -> tuple[list, dict]:
    """(the ledger's entries, {submission: (status, metrics)}); a submission stored twice fails the test."""
    connection = sqlite3.connect(db)
    entries = connection.execute("SELECT inbox_path, team, status, submission, reason FROM contest_entries "
                                 "ORDER BY id").fetchall()
    rows = connection.execute("SELECT submission, status, metrics FROM results").fetchall()
    names = [r[0] for r in rows]
    assert len(names) == len(set(names)), f"a submission scored twice: {names}"
    return entries, {r[0]: (r[1], json.loads(r[2])) for r in rows}


def test_sigkill_anywhere_then_rerun(tmp_path, contest_split):
    inbox = tmp_path / "inbox"
    tiny_copy(inbox / "alpha" / "tiny", team="alpha")
    pack_submission(tiny_copy(tmp_path / "beta-tiny", team="beta"), inbox / "beta" / "tiny.tar.gz")
    tiny_copy(inbox / "beta" / "other", team="alpha", name="other")  # rejected: its team is not its folder's
    jobs, outputs = [], {}
    for point, n in [(None, 0), *KILLS]:
        name = f"{point}-{n}"
        outputs[name] = tmp_path / name
        contest = write_contest(tmp_path / "contests" / name, f'name = "k"\nsplit = "{contest_split}"\n'
                                f'sandbox = "none"\noutput = "{outputs[name]}"\n')
        job = [str(contest), str(inbox), str(tmp_path / "logs" / name)]
        jobs += [[point, n, *job]] + ([[None, 0, *job]] if point else [])  # killed, then run again
    done = subprocess.run([sys.executable, str(DRIVER), json.dumps(jobs)], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    codes = [json.loads(line)["code"] for line in done.stdout.splitlines() if line.startswith("{")]
    assert codes == [0] + [-9, 0] * len(KILLS), done.stdout
    summary = (tmp_path / "logs" / "None-0" / "output.log").read_text()
    assert "2 accepted, 1 rejected" in summary and "beta/other" in summary and "rejected" in summary, summary
    expected = contents(outputs["None-0"] / "results.sqlite")
    assert [e[2] for e in expected[0]] == ["accepted", "accepted", "rejected"]
    assert sorted(expected[1]) == ["alpha.tiny.v1", "beta.tiny.v1"]
    assert {status for status, _ in expected[1].values()} == {"scored"}
    for name, out in outputs.items():
        assert contents(out / "results.sqlite") == expected, (name, (tmp_path / "logs" / name / "output.log"))
