"""Attack-track leaderboards on made-up records: the attack score, intervals, shared ranks, failures, white-box
runs combined, and the defenses' ``attacks`` category (worst case over every scored attack)."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from harness.scoring.attack_board import (attack_columns, attack_leaderboard_rows, render_attack_leaderboard,
                                          with_attack_category, write_attack_leaderboard)
from harness.scoring.stats import pack_bits, score_interval, sign_flip_test, unpack_bits
from harness.scoring.store import AttackRecord, MatrixRecord, ScoreRecord

SPLIT = "s" * 64


def attack(name: str, status: str = "ok", reason: str = "", defense: str = "", kind: str = "submission",
           clipped: int = 0) -> AttackRecord:
    return AttackRecord(attack=name, team="t", framework="torch", kind=kind, profile="cpu", content_hash=name * 3,
                        split_hash=SPLIT, harness_version="0", status=status, reason=reason, defense=defense,
                        defense_key=f"key-{defense}" if defense else "", clipped={"clipped": clipped},
                        isolation="ns")


def cell(run: AttackRecord, defense: str, clean, adversarial, status: str = "scored", reason: str = "",
         defense_key: str | None = None) -> MatrixRecord:
    """A matrix row with the same bits in both partitions."""
    clean, adversarial = np.asarray(clean, dtype=bool), np.asarray(adversarial, dtype=bool)
    fooled, right = int((clean & ~adversarial).sum()), int(clean.sum())
    values = {"count": len(clean), "clean_correct": right, "fooled": fooled, "success": fooled / right if right
              else 0.0}
    scored = status == "scored"
    return MatrixRecord(attack=run.attack, attack_kind=run.kind, attack_key=run.key, defense=defense,
                        defense_team="d", defense_key=defense_key or f"key-{defense}", split_hash=SPLIT,
                        harness_version="0", status=status, reason=reason,
                        metrics={p: values for p in ("public", "private")} if scored else {},
                        correct={p: {"clean": pack_bits(clean), "adversarial": pack_bits(adversarial)}
                                 for p in ("public", "private")} if scored else {})


def by_attack(rows):
    return {row["attack"]: row for row in rows}


def test_score_is_the_mean_over_defenses_of_fooled_over_clean_correct():
    run = attack("a")
    rows = [cell(run, "d1", [1, 1, 1, 1, 0, 0], [0, 0, 1, 1, 0, 1]),   # 2 fooled of 4 right: 0.5
            cell(run, "d2", [1, 1, 1, 1, 1, 0], [1, 1, 1, 1, 0, 0])]   # 1 of 5: 0.2
    (row,) = attack_leaderboard_rows([run], rows, "public")
    assert row["score"] == pytest.approx(0.35) and row["defenses"] == 2 and row["rank"] == "1"
    assert (row["vs_d1"], row["vs_d2"]) == (0.5, 0.2)
    assert row["score_ci_low"] <= row["score"] <= row["score_ci_high"] and row["score_ci_low"] < row["score_ci_high"]


def test_a_defense_right_on_no_clean_image_counts_zero_and_is_noted():
    run = attack("a")
    (row,) = attack_leaderboard_rows([run], [cell(run, "d1", [1, 1], [0, 0]), cell(run, "d2", [0, 0], [0, 0])],
                                     "public")
    assert row["score"] == 0.5 and "d2 gets no image right when clean" in row["reason"]


def test_equal_attacks_share_a_rank_and_very_different_ones_do_not():
    clean = np.ones(60, dtype=bool)
    strong, weak, twin = attack("strong"), attack("weak"), attack("twin")
    rows = [cell(strong, "d1", clean, np.zeros(60)), cell(weak, "d1", clean, np.ones(60)),
            cell(twin, "d1", clean, np.zeros(60))]
    ranks = {r["attack"]: r["rank"] for r in attack_leaderboard_rows([strong, weak, twin], rows, "public")}
    assert ranks == {"strong": "=1", "twin": "=1", "weak": "3"}


def test_failed_and_invalid_attacks_are_unranked_with_their_reason():
    good, broken, wrong = attack("good"), attack("broken", "failed", "timeout: 600 s"), attack("wrong", "invalid",
                                                                                               "attack.name: ...")
    rows = by_attack(attack_leaderboard_rows([good, broken, wrong], [cell(good, "d1", [1, 1], [0, 1])], "public"))
    assert rows["good"]["rank"] == "1"
    assert (rows["broken"]["rank"], rows["broken"]["status"], rows["broken"]["reason"]) == ("", "failed",
                                                                                            "timeout: 600 s")
    assert rows["wrong"]["status"] == "invalid" and rows["wrong"]["score"] == ""
    assert list(rows) == ["good", "broken", "wrong"]


def test_white_box_runs_combine_into_one_row_per_attack():
    first, second = attack("wb", defense="d1", clipped=2), attack("wb", defense="d2", clipped=3)
    third = attack("wb", "failed", "timeout: 300 s", defense="d3")
    rows = [cell(first, "d1", [1, 1, 1, 1], [0, 0, 0, 1]), cell(second, "d2", [1, 1, 0, 0], [1, 1, 0, 0])]
    (row,) = attack_leaderboard_rows([first, second, third], rows, "public")
    assert row["score"] == pytest.approx((0.75 + 0.0) / 2) and row["defenses"] == 2 and row["clipped"] == 5
    assert row["vs_d3"] == "failed" and row["reason"] == "vs d3: failed: timeout: 300 s"


def test_a_failed_matrix_cell_leaves_the_defense_out_of_the_score():
    run = attack("a")
    rows = [cell(run, "d1", [1, 1], [0, 1]), cell(run, "d2", [], [], status="failed", reason="crashed: boom")]
    (row,) = attack_leaderboard_rows([run], rows, "public")
    assert row["score"] == 0.5 and row["vs_d2"] == "failed" and "vs d2: failed: crashed: boom" in row["reason"]


def test_the_latest_run_of_an_attack_counts():
    old, new = attack("a"), attack("a")
    new.content_hash, new.finished_at = "changed", old.finished_at + 10
    rows = [cell(old, "d1", [1, 1], [1, 1]), cell(new, "d1", [1, 1], [0, 0])]
    (row,) = attack_leaderboard_rows([old, new], rows, "public")
    assert row["score"] == 1.0


def test_csv_and_terminal_table(tmp_path):
    runs = [attack(f"attack-{i}") for i in range(3)] + [attack("gone", "failed", "crashed: x")]
    rows = [cell(run, f"defense-number-{d}", np.ones(20), np.arange(20) % (i + 2) == 0)
            for i, run in enumerate(runs[:3]) for d in range(6)]
    path = write_attack_leaderboard(runs, rows, tmp_path / "attacks.csv")
    with open(path, newline="") as handle:
        written = list(csv.DictReader(handle))
    assert len(written) == 8 and {r["partition"] for r in written} == {"public", "private"}
    assert list(written[0]) == attack_columns(rows) and "vs_defense-number-5" in written[0]
    from rich.console import Console

    console = Console(width=80, record=True, color_system=None)
    console.print(render_attack_leaderboard(attack_columns(rows), attack_leaderboard_rows(runs, rows, "public"),
                                            "attacks", 80))
    text = console.export_text()
    assert max(len(line) for line in text.splitlines()) <= 80 and "attack-0" in text and "gone" in text


def test_sign_flip_test_on_real_valued_differences():
    assert sign_flip_test(np.zeros(10)) == 1.0
    assert sign_flip_test(np.full(40, 0.05)) < 0.001
    assert sign_flip_test(np.array([0.1, -0.1, 0.05, -0.05])) > 0.5


# --------------------------------------------------------------------------- the defenses' attacks category


def defense(name: str = "def", clean=(1, 1, 0, 1), noise=(1, 0, 0, 1), unscored: dict | None = None) -> ScoreRecord:
    values = {}
    for category, bits in (("clean", clean), ("noise", noise)):
        values[f"top1_{category}"] = float(np.mean(bits))
    values["score"] = float(np.mean([values["top1_clean"], values["top1_noise"]]))
    if unscored:
        values["unscored"] = unscored
    correct = {"clean": pack_bits(np.asarray(clean, bool)), "noise": pack_bits(np.asarray(noise, bool))}
    return ScoreRecord(submission=name, team="t", framework="torch", profile="cpu", content_hash=name,
                       split_hash=SPLIT, harness_version="0", status="scored",
                       metrics={"public": dict(values), "private": dict(values)},
                       correct={"public": dict(correct), "private": dict(correct)}, details={"bootstrap_seed": 5})


def test_attacks_category_is_the_worst_case_over_every_scored_attack():
    record = defense()
    clean = [1, 1, 1, 1, 0, 1]
    runs = [attack("a1"), attack("a2"), attack("base", kind="baseline")]
    rows = [cell(runs[0], "def", clean, [1, 0, 1, 1, 1, 1], defense_key=record.key),
            cell(runs[1], "def", clean, [1, 1, 0, 1, 0, 1], defense_key=record.key),
            cell(runs[2], "def", clean, [1, 1, 1, 0, 1, 1], defense_key=record.key),
            cell(attack("dead"), "def", [], [], status="failed", reason="x", defense_key=record.key)]
    (updated,) = with_attack_category([record], rows)
    assert updated is not record and "attacks" not in record.correct["public"]  # a copy
    values = updated.metrics["public"]
    worst = [True, False, False, False, False, True]  # right clean and on all three attacked versions
    assert list(unpack_bits(updated.correct["public"]["attacks"])) == worst
    assert values["top1_attacks"] == pytest.approx(2 / 6)
    assert values["attacks_ci_low"] < 2 / 6 < values["attacks_ci_high"]
    assert values["score"] == pytest.approx((0.75 + 0.5 + 2 / 6) / 3)
    assert (values["score_ci_low"], values["score_ci_high"]) == score_interval([(3, 4), (2, 4), (2, 6)], seed=5)
    assert list(values)[-3:] == ["score", "score_ci_low", "score_ci_high"]
    private = updated.metrics["private"]  # seeded per partition, as the scorer does
    assert (private["score_ci_low"], private["score_ci_high"]) == score_interval([(3, 4), (2, 4), (2, 6)], seed=6)
    assert "unscored" not in values


def test_a_defense_with_only_failed_rows_gets_the_category_unscored():
    record, other = defense("def"), defense("other")
    good = attack("a1")
    rows = [cell(good, "def", [], [], status="failed", reason="crashed: predict", defense_key=record.key),
            cell(good, "other", [1, 1], [1, 0], defense_key=other.key)]
    updated, fine = with_attack_category([record, other], rows)
    values = updated.metrics["public"]
    assert values["unscored"] == {"attacks": "a1: crashed: predict"} and values["top1_attacks"] == 0.0
    assert "attacks_ci_low" not in values and values["score"] == pytest.approx((0.75 + 0.5 + 0) / 3)
    assert (values["score_ci_low"], values["score_ci_high"]) == score_interval([(3, 4), (2, 4)], 1, seed=5)
    assert fine.metrics["public"]["top1_attacks"] == 0.5 and "unscored" not in fine.metrics["public"]


def test_records_are_unchanged_without_matrix_rows():
    record, failed = defense(), defense("bad")
    failed.status = "failed"
    assert with_attack_category([record, failed], []) == [record, failed]
    other_split = cell(attack("a"), "def", [1], [1], defense_key=record.key)
    other_split.split_hash = "t" * 64
    (same, still) = with_attack_category([record, failed], [other_split])
    assert same is record and still is failed


# --------------------------------------------------------------------------- the CLI


def attack_store(db):
    """A store with two defenses, a submitted attack, a baseline, a failed attack and their matrix rows."""
    from harness.scoring.store import ResultStore

    strong, weak = defense("strong"), defense("weak", clean=(1, 0, 0, 1))
    runs = [attack("sneaky"), attack("baseline-fgsm", kind="baseline"), attack("broken", "failed", "timeout: 9 s")]
    clean = np.ones(20, dtype=bool)
    rows = [cell(runs[0], "strong", clean, np.arange(20) % 4 > 0, defense_key=strong.key),
            cell(runs[0], "weak", clean, np.arange(20) % 4 == 0, defense_key=weak.key),
            cell(runs[1], "strong", clean, np.arange(20) % 2 == 0, defense_key=strong.key),
            cell(runs[1], "weak", [], [], status="failed", reason="crashed: predict", defense_key=weak.key)]
    with ResultStore(db) as store:
        for record in (strong, weak):
            store.add(record)
        for run in runs:
            store.add_attack(run)
        for row in rows:
            store.add_matrix(row)
    return rows


def test_leaderboard_command_shows_both_leaderboards_and_writes_the_attack_csv(tmp_path):
    from typer.testing import CliRunner

    from harness.cli.main import app

    attack_store(tmp_path / "db.sqlite")
    out = tmp_path / "attacks.csv"
    result = CliRunner().invoke(app, ["leaderboard", str(tmp_path / "db.sqlite"), "--attacks-csv", str(out)],
                                env={"COLUMNS": "100"})
    assert result.exit_code == 0, result.output
    text = result.output
    assert "public leaderboard" in text and "attacks" in text  # the defense table's new category
    assert "public attack leaderboard" in text and "sneaky" in text and "baseline-fgsm" in text
    assert "broken: failed: timeout: 9 s" in text and "baseline-fgsm: vs weak: failed: crashed: predict" in text
    with open(out, newline="") as handle:
        written = list(csv.DictReader(handle))
    assert {(r["attack"], r["partition"]) for r in written} == {(a, p) for a in ("sneaky", "baseline-fgsm", "broken")
                                                                for p in ("public", "private")}
    assert next(r for r in written if r["attack"] == "sneaky")["vs_weak"] == "0.75"
    plain = CliRunner().invoke(app, ["leaderboard", str(tmp_path / "plain.csv")])
    assert plain.exit_code == 2
