"""`harness demo` end to end on a tiny budget."""

from __future__ import annotations

import csv

import pytest

pytest.importorskip("torch")

from typer.testing import CliRunner  # noqa: E402

from harness.cli.main import app  # noqa: E402


def test_demo_trains_two_defenses_and_writes_results(tmp_path, cache_dir):
    out = tmp_path / "demo"
    result = CliRunner().invoke(app, ["demo", "--out", str(out), "--epochs", "1", "--no-progress"], env={"COLUMNS": "160"})
    assert result.exit_code == 0, result.output
    for step in ("1/4 data", "2/4 plugins", "3/4 training", "4/4 robustness"):
        assert step in result.output
    rows = list(csv.DictReader((out / "results.csv").open()))
    assert [r["defense"] for r in rows] == ["standard", "pgd-adversarial-training"]
    for row in rows:
        clean, fgsm, pgd = (float(row[k]) for k in ("clean", "FGSM eps 0.1", "PGD-20 eps 0.1"))
        assert 0.5 < clean <= 1.0 and pgd <= clean
    assert (out / "results.png").read_bytes().startswith(b"\x89PNG")
    for defense in ("standard", "pgd-adversarial-training"):
        assert (out / defense / "metrics.json").is_file() and (out / defense / "training_curves.png").is_file()
