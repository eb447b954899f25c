"""Intervals, shared ranks and flags from score_metrics through the store to the CSV and the terminal table."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from harness.cli.main import app
from harness.scoring.leaderboard import flag_lines, leaderboard_columns, leaderboard_rows, write_leaderboard
from harness.scoring.scorer import correctness, score_metrics
from harness.scoring.split import HiddenSplit
from harness.scoring.stats import unpack_bits
from harness.scoring.store import ResultStore, ScoreRecord

from test_store import old_store

CATEGORIES = {"clean": 40, "noise": 40, "adaptive-pgd": 40}


def fake_split() -> HiddenSplit:
    """120 images, 40 per category in a shuffled order, 30% public in each category."""
    rng = np.random.default_rng(0)
    categories = rng.permutation(np.repeat(list(CATEGORIES), list(CATEGORIES.values()))).tolist()
    public = np.zeros(120, dtype=bool)
    for category in CATEGORIES:
        public[[i for i, c in enumerate(categories) if c == category][:12]] = True
    return HiddenSplit(root=Path("/nowhere"), split_hash="h" * 64, ids=[f"img-{i:05d}" for i in range(120)],
                       labels=rng.integers(0, 10, 120), categories=categories, public=public,
                       summary={"categories": CATEGORIES})


def record(name: str, metrics: dict, correct: dict, flags: list[str] = (), finished_at: float = 1.0) -> ScoreRecord:
    return ScoreRecord(submission=name, team="t", framework="torch", profile="cpu", content_hash=name * 4,
                       split_hash="h" * 64, harness_version="0", status="scored", metrics=metrics,
                       correct=correct, flags=list(flags), details={"adaptive": {"eps": 0.1, "seed": 3}},
                       finished_at=finished_at)


def scored(split: HiddenSplit, accuracy: float, seed: int, **options) -> tuple[dict, dict]:
    top1 = np.random.default_rng(seed).random(len(split.ids)) < accuracy
    return score_metrics(top1, split, seed=5, **options)


def test_score_metrics_gives_intervals_packed_correctness_and_unscored_reasons():
    split = fake_split()
    logits = np.eye(10)[split.labels] * 0.5
    logits[::2] += np.eye(10)[(split.labels[::2] + 1) % 10]  # every other image wrong, its label second
    top1, top5 = correctness(logits, split.labels, 1), correctness(logits, split.labels, 5)
    assert top1.sum() == 60 and top5.all()
    metrics, correct = score_metrics(top1, split, top5_clean=top5, seed=1)
    public = metrics["public"]
    assert list(public) == ["clean_top1", "clean_top5", "top1_clean", "clean_ci_low", "clean_ci_high", "top1_noise",
                            "noise_ci_low", "noise_ci_high", "top1_adaptive-pgd", "adaptive-pgd_ci_low",
                            "adaptive-pgd_ci_high", "score", "score_ci_low", "score_ci_high"]
    for category in CATEGORIES:
        mask = split.public & (np.asarray(split.categories) == category)
        assert np.array_equal(unpack_bits(correct["public"][category]), top1[mask])
        assert public[f"{category}_ci_low"] <= public[f"top1_{category}"] <= public[f"{category}_ci_high"]
    assert public["score"] == np.mean([public[f"top1_{c}"] for c in CATEGORIES])
    assert public["score_ci_low"] < public["score"] < public["score_ci_high"]
    assert score_metrics(top1, split, top5_clean=top5, seed=1) == (metrics, correct)  # seeded

    lost, lost_correct = score_metrics(top1, split, unscored={"adaptive-pgd": "not exportable: custom op"})
    values = lost["private"]
    assert values["unscored"] == {"adaptive-pgd": "not exportable: custom op"} and "clean_top5" not in values
    assert values["top1_adaptive-pgd"] == 0.0 and "adaptive-pgd_ci_low" not in values
    assert values["score"] == (values["top1_clean"] + values["top1_noise"]) / 3  # counts 0
    assert not unpack_bits(lost_correct["private"]["adaptive-pgd"]).any()


def test_store_round_trips_flags_details_and_correctness_and_migrates_older_stores(tmp_path):
    db = tmp_path / "old.sqlite"
    old_store(db, "h", '{"public": {"score": 0.5}, "private": {"score": 0.5}}')
    split = fake_split()
    metrics, correct = scored(split, 0.6, 1)
    new = record("new", metrics, correct, ["zero-input-gradients"])
    with ResultStore(db) as store:
        store.add(new)
        old, back = store.records()
    assert (old.flags, old.details, old.correct, old.isolation) == ([], {}, {}, "")
    assert back == new
    rows = leaderboard_rows([old, back], "public")  # a pair without stored correctness: ranked by score alone
    assert [(r["submission"], r["rank"]) for r in rows] == [("new", "1"), ("old", "2")]
    assert rows[0]["flags"] == "zero-input-gradients" and rows[1]["flags"] == ""


def test_csv_has_intervals_flags_and_shared_ranks(tmp_path):
    split = fake_split()
    records = [record("strong", *scored(split, 0.95, 1)), record("also-strong", *scored(split, 0.93, 2)),
               record("weak", *scored(split, 0.2, 3), flags=["accuracy-rises-with-eps", "zero-input-gradients"]),
               record("unexported", *scored(split, 0.9, 4, unscored={"adaptive-pgd": "not exportable: custom op"}))]
    board = write_leaderboard(records, tmp_path / "board.csv")
    with open(board, newline="") as handle:
        reader = csv.DictReader(handle)
        rows = {r["submission"]: r for r in reader if r["partition"] == "public"}
    assert reader.fieldnames == leaderboard_columns(records)
    assert reader.fieldnames[6:9] == ["top1_clean", "clean_ci_low", "clean_ci_high"]
    assert reader.fieldnames[15:18] == ["score", "score_ci_low", "score_ci_high"] and "flags" in reader.fieldnames
    # the two strong ones are not told apart on 36 public images: one group, shown =1
    assert (rows["strong"]["rank"], rows["also-strong"]["rank"]) == ("=1", "=1")
    assert rows["weak"]["rank"] == "4" and rows["weak"]["flags"] == "accuracy-rises-with-eps;zero-input-gradients"
    assert rows["unexported"]["top1_adaptive-pgd"] == "not exportable: custom op"
    assert rows["unexported"]["rank"] == "3"  # its adaptive category counts 0
    assert float(rows["weak"]["score_ci_low"]) < float(rows["weak"]["score"]) < float(rows["weak"]["score_ci_high"])

    lines = flag_lines(list(rows.values()))
    assert lines == ["!1 unexported: adaptive-pgd not scored (counts 0): not exportable: custom op",
                     "!2 weak: flags: accuracy-rises-with-eps, zero-input-gradients"]
    runner = CliRunner()
    for width in ("80", "200"):
        shown = runner.invoke(app, ["leaderboard", str(board)], env={"COLUMNS": width})
        assert shown.exit_code == 0, shown.output
        assert max(map(len, shown.output.splitlines())) <= int(width) and "…" not in shown.output, shown.output
        assert "=1" in shown.output and "!2 weak: flags: accuracy-rises-with-eps" in shown.output
        assert "n/a" in shown.output and "=k: rank shared" in " ".join(shown.output.split())
    wide = runner.invoke(app, ["leaderboard", str(board)], env={"COLUMNS": "200"}).output
    low, high = (float(rows["strong"][f"score_ci_{end}"]) * 100 for end in ("low", "high"))
    assert "95% CI" in wide and f"{low:.1f}-{high:.1f}" in wide


def test_the_store_leaderboard_shows_the_same_ranks(tmp_path):
    split = fake_split()
    db = tmp_path / "results.sqlite"
    with ResultStore(db) as store:
        for i, (name, accuracy) in enumerate((("a", 0.9), ("b", 0.88), ("c", 0.1))):
            store.add(record(name, *scored(split, accuracy, i)))
    shown = CliRunner().invoke(app, ["leaderboard", str(db)], env={"COLUMNS": "80"})
    assert shown.exit_code == 0, shown.output
    ranks = [line.split()[0] for line in shown.output.splitlines() if line.split()[1:2] in (["a"], ["b"], ["c"])]
    assert ranks == ["=1", "=1", "3"], shown.output


def test_eight_categories_and_long_names_fit_80_columns_without_folding_a_name():
    from rich.console import Console

    from harness.scoring.leaderboard import render_leaderboard

    categories = ["clean", "noise", "geometry", "fgsm", "bim", "pgd", "unseen", "attacks"]
    columns = ["rank", "submission", "team", "framework", "clean_top1"] + [f"top1_{c}" for c in categories] + [
        "score", "score_ci_low", "score_ci_high", "partition", "status", "isolation"]
    rows = [{"rank": str(i + 1), "submission": name, "team": "t", "framework": "torch", "clean_top1": 1.0,
             **{f"top1_{c}": 0.5 for c in categories}, "score": 0.5, "score_ci_low": 0.4, "score_ci_high": 0.6,
             "partition": "public", "status": "scored", "isolation": "ns"}
            for i, name in enumerate(("cnn-baseline", "mobilenet-nsl", "wrn50-hardening"))]
    console = Console(width=80, record=True, color_system=None)
    console.print(render_leaderboard(columns, rows, "public leaderboard", 80))
    lines = console.export_text().splitlines()
    assert max(map(len, lines)) <= 80
    for name in ("cnn-baseline", "mobilenet-nsl", "wrn50-hardening"):
        assert any(name in line for line in lines), "\n".join(lines)  # on one line, not folded
