"""The results store records how each result was isolated, also in stores written before that column."""

from __future__ import annotations

import csv
import sqlite3

from typer.testing import CliRunner

from harness.cli.main import app
from harness.scoring.leaderboard import write_leaderboard
from harness.scoring.store import ResultStore, ScoreRecord

OLD_SCHEMA = """CREATE TABLE results (key TEXT PRIMARY KEY, submission TEXT NOT NULL, team TEXT NOT NULL,
framework TEXT NOT NULL, profile TEXT NOT NULL, content_hash TEXT NOT NULL, split_hash TEXT NOT NULL,
harness_version TEXT NOT NULL, status TEXT NOT NULL, reason TEXT NOT NULL DEFAULT '',
metrics TEXT NOT NULL DEFAULT '{}', train_seconds REAL, predict_seconds REAL, finished_at REAL NOT NULL)"""


def record(name: str, isolation: str) -> ScoreRecord:
    return ScoreRecord(submission=name, team="t", framework="torch", profile="cpu", content_hash=name * 4,
                       split_hash="s" * 64, harness_version="0", status="scored", isolation=isolation,
                       metrics={p: {"score": 0.5, "top1_clean": 0.5} for p in ("public", "private")})


def test_an_older_store_gains_the_isolation_column_and_keeps_its_rows(tmp_path):
    db = tmp_path / "old.sqlite"
    with sqlite3.connect(db) as connection:
        connection.execute(OLD_SCHEMA)
        connection.execute("INSERT INTO results VALUES ('k', 'old', 't', 'tf', 'cpu', 'c', 's', '0', 'scored', '', "
                           "'{}', 1.0, 2.0, 3.0)")
    with ResultStore(db) as store:
        assert [(r.submission, r.isolation) for r in store.records()] == [("old", "")]
        store.add(record("new", "ns"))
        assert [(r.submission, r.isolation) for r in store.records()] == [("old", ""), ("new", "ns")]


def test_the_leaderboard_csv_says_how_each_row_was_isolated(tmp_path):
    board = write_leaderboard([record("a", "ns"), record("b", "none")], tmp_path / "board.csv")
    with open(board, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert {(r["submission"], r["isolation"]) for r in rows} == {("a", "ns"), ("b", "none")}
    shown = CliRunner().invoke(app, ["leaderboard", str(board)], env={"COLUMNS": "200"})
    assert shown.exit_code == 0 and "isolation: none, ns" in " ".join(shown.output.split())  # caption wraps


def test_sandbox_none_warns_before_anything_runs(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "submission.toml").write_text('name = "x"\nframework = "torch"\n')
    result = CliRunner().invoke(app, ["score", str(tmp_path / "sub"), "--split", str(tmp_path / "nowhere"),
                                      "--sandbox", "none", "--db", str(tmp_path / "db.sqlite")])
    assert "Warning: --sandbox none: submission code runs unisolated" in result.output
    assert result.exit_code == 2 and not (tmp_path / "db.sqlite").exists()
