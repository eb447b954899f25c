"""``harness demo`` end to end, on the demo recipe with two small submissions standing in for the examples."""

from __future__ import annotations

import csv
import shutil

import pytest
from typer.testing import CliRunner

from harness.cli.main import app
from harness.site import check_site

from helpers import EXAMPLE_SUBMISSIONS

pytestmark = pytest.mark.slow


def test_demo_builds_the_split_scores_and_shows_the_leaderboard(tmp_path, submissions_dir, cache_dir, monkeypatch):
    monkeypatch.chdir(tmp_path)  # relative paths, as `make demo` uses them
    folder = tmp_path / "submissions"
    folder.mkdir()
    shutil.copytree(submissions_dir / "tiny", folder / "tiny")
    shutil.copytree(submissions_dir / "crash", folder / "crash")
    shutil.copytree(EXAMPLE_SUBMISSIONS / "wrn50-hardening", folder / "wrn50-hardening")  # cpu profile needs a GPU
    recipe = (EXAMPLE_SUBMISSIONS / "digits-recipe.toml").read_text().replace('"cnn-baseline"', '"tiny"')
    recipe = recipe.split('[[attack_track.baselines]]\nname = "pgd"')[0]  # one baseline is enough here
    (folder / "digits-recipe.toml").write_text(recipe)
    out = tmp_path / "demo"
    args = ["demo", "--out", "demo", "--submissions", "submissions", "--no-progress", "--timeout", "240"]
    result = CliRunner().invoke(app, args, env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "1. hidden split" in result.output and "3. leaderboard" in result.output
    assert "wrn50-hardening skipped: its 'cpu' profile needs a GPU" in result.output
    with open(out / "leaderboard.csv", newline="") as handle:
        rows = [r for r in csv.DictReader(handle) if r["partition"] == "public"]
    assert {r["submission"]: r["status"] for r in rows} == {"tiny": "scored", "crash": "failed"}
    assert {"top1_clean", "top1_noise", "top1_geometry", "top1_fgsm", "top1_bim", "top1_unseen",
            "top1_pgd", "pgd_ci_low", "score_ci_high", "flags"} <= set(rows[0])
    tiny = next(r for r in rows if r["submission"] == "tiny")
    assert float(tiny["top1_pgd"]) < float(tiny["top1_clean"])  # white-box PGD on its own export hurts it
    assert (out / "leaderboard.png").read_bytes().startswith(b"\x89PNG")
    # the attack track ran: the baseline attacked its surrogate, tiny classified its images
    assert "public attack leaderboard" in result.output and "baseline-fgsm" in result.output
    with open(out / "leaderboard-attacks.csv", newline="") as handle:
        attacks = [r for r in csv.DictReader(handle) if r["partition"] == "public"]
    assert [(r["attack"], r["status"], r["defenses"]) for r in attacks] == [("baseline-fgsm", "ok", "1")]
    assert "top1_attacks" in rows[0]
    assert (out / "matrix.png").read_bytes().startswith(b"\x89PNG")
    # the static site: both boards, a page per submission with tiny's explained pictures, every link resolving
    assert "static site demo/site/index.html" in " ".join(result.output.split())
    assert check_site(out / "site") == []
    assert "tiny" in (out / "site" / "index.html").read_text() and (out / "site" / "attacks.html").is_file()
    page = next((out / "site" / "submissions").glob("tiny-*.html")).read_text()
    assert "Explain grid of tiny" in page and "Activation maps of tiny" in page
    again = CliRunner().invoke(app, args, env={"COLUMNS": "200"})  # a rerun reuses the split and the scores
    assert again.exit_code == 0, again.output
    assert "reusing" in again.output and "cached tiny" in " ".join(again.output.split())
    assert "cached baseline-fgsm" in " ".join(again.output.split())
