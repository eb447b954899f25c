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


def old_store(db, split_hash: str, metrics: str) -> None:
    """A store of the first schema (no isolation, flags, details or correct columns) with one scored row."""
    with sqlite3.connect(db) as connection:
        connection.execute(OLD_SCHEMA)
        connection.execute("INSERT INTO results VALUES ('k', 'old', 't', 'tf', 'cpu', 'c', ?, '0', 'scored', '', ?, "
                           "1.0, 2.0, 0.5)", (split_hash, metrics))


def test_an_older_store_gains_the_isolation_column_and_keeps_its_rows(tmp_path):
    db = tmp_path / "old.sqlite"
    old_store(db, "s", "{}")
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


def category_record(name: str, status: str, finished_at: float, content: str = "") -> ScoreRecord:
    """A record with long category names (the headers an 80-column table must abbreviate)."""
    values = {"clean_top1": 0.9, "clean_top5": 1.0, "top1_frame-shift": 0.5, "top1_geometric": 0.25,
              "top1_unseen-corruptions": 0.75, "top1_gaussian-noise": 0.6, "top1_fgsm": 0.3, "score": 0.48}
    return ScoreRecord(submission=name, team="t", framework="torch", profile="cpu", content_hash=content or name * 4,
                       split_hash="s" * 64, harness_version="0", status=status, finished_at=finished_at,
                       reason="" if status == "scored" else "crashed: RuntimeError: boom",
                       metrics={p: dict(values) for p in ("public", "private")} if status == "scored" else {})


def test_the_leaderboard_shows_each_submissions_latest_result_and_the_store_keeps_the_history(tmp_path):
    db = tmp_path / "results.sqlite"
    with ResultStore(db) as store:
        store.add(category_record("alpha", "failed", 1.0, "a1"))
        store.add(category_record("alpha", "scored", 2.0, "a2"))
        store.add(category_record("beta", "scored", 1.5))
        records = store.records()
    board = write_leaderboard(records, tmp_path / "board.csv")
    with open(board, newline="") as handle:
        public = [r for r in csv.DictReader(handle) if r["partition"] == "public"]
    assert [(r["submission"], r["status"]) for r in public] == [("alpha", "scored"), ("beta", "scored")]
    with sqlite3.connect(db) as connection:
        assert sorted(connection.execute("SELECT submission, status FROM latest_results")) == [
            ("alpha", "scored"), ("beta", "scored")]
    runner = CliRunner()
    shown = runner.invoke(app, ["leaderboard", str(db)], env={"COLUMNS": "200"})
    assert shown.exit_code == 0, shown.output
    assert shown.output.count("alpha") == 1 and "crashed" not in shown.output
    history = runner.invoke(app, ["leaderboard", str(db), "--history"], env={"COLUMNS": "200"})
    assert history.exit_code == 0, history.output
    assert history.output.count("alpha") == 2 and "crashed: RuntimeError: boom" in history.output
    refused = runner.invoke(app, ["leaderboard", str(board), "--history"])
    assert refused.exit_code == 2 and "--history needs the SQLite results store" in refused.output


def test_leaderboard_tables_fit_80_columns_with_abbreviated_headers_and_a_legend(tmp_path):
    db = tmp_path / "results.sqlite"
    with ResultStore(db) as store:
        for i, name in enumerate(("a-rather-long-submission", "second", "third")):
            store.add(category_record(name, "scored", float(i)))
        store.add(category_record("broken", "invalid", 5.0))
        write_leaderboard(store.records(), tmp_path / "board.csv")
    runner = CliRunner()
    for args in ([str(tmp_path / "board.csv")], [str(db)], [str(db), "--history"]):
        shown = runner.invoke(app, ["leaderboard", *args], env={"COLUMNS": "80"})
        assert shown.exit_code == 0, shown.output
        assert "…" not in shown.output, shown.output
        assert max(map(len, shown.output.splitlines())) <= 80, shown.output
    table = runner.invoke(app, ["leaderboard", str(db)], env={"COLUMNS": "80"}).output
    legend = " ".join(table.split())
    assert "geom. = geometric" in legend and "un-co = unseen-corruptions" in legend, table
    wide = runner.invoke(app, ["leaderboard", str(db)], env={"COLUMNS": "200"}).output
    assert "unseen-corruptions" in wide and "un-co" not in wide  # full headers where they fit


def test_short_headers_are_unique_and_only_for_long_names():
    from harness.scoring.leaderboard import short_headers

    assert short_headers(["rank", "score", "gaussian-blur", "gaussian-noise", "fgsm", "gaussian", "gaussian-nose"]) == {
        "gaussian-blur": "ga-bl", "gaussian-noise": "ga-no", "gaussian": "gaus.", "gaussian-nose": "ga-n1"}
