"""``harness train`` and ``harness evaluate`` on the tiny submission."""

from __future__ import annotations

import csv
import json
import re

import numpy as np
import pytest
from typer.testing import CliRunner

from harness.cli.main import app
from harness.submission import load_submission
from harness.workflow import load_model

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained(submissions_dir, tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    result = CliRunner().invoke(app, ["train", str(submissions_dir / "tiny"), "-P", "cpu", "--runs", str(runs)])
    assert result.exit_code == 0, result.output
    (runs / "train-output.txt").write_text(result.output)  # CliRunner is no terminal: progress lines
    return runs


PROGRESS_LINE = re.compile(r"^\[ *\d+\.\ds\] ")


def progress_lines(output: str, stage: str) -> list[str]:
    """The progress lines of ``stage`` in ``output``, without their elapsed-time prefix."""
    return [PROGRESS_LINE.sub("", line)[len(stage) + 2:] for line in output.splitlines()
            if PROGRESS_LINE.match(line) and PROGRESS_LINE.sub("", line).startswith(f"{stage}: ")]


def test_train_writes_the_artifact(trained, submissions_dir):
    folder = trained / "tiny" / "cpu"
    for name in ("model.json", "weights.pt", "metrics.json", "training_curves.png"):
        assert (folder / name).is_file(), name
    info = json.loads((folder / "model.json").read_text())
    assert info["submission"]["name"] == "tiny" and info["submission"]["profile"] == "cpu"
    assert info["num_classes"] == 10 and info["input_shape"] == [8, 8, 1]
    assert len(json.loads((folder / "metrics.json").read_text())["epochs"]) == 4


def test_training_prints_a_line_per_epoch_when_not_a_terminal(trained):
    lines = progress_lines((trained / "train-output.txt").read_text(), "train standard")
    assert lines[0] == "started" and lines[-1].startswith("finished in ")
    epochs = [line for line in lines if line.startswith("epoch ")]
    assert [line.split()[1] for line in epochs] == ["1/4", "2/4", "3/4", "4/4"]
    assert all(re.search(r"loss \d+\.\d+ acc .* \(\d+\.\ds\)$", line) for line in epochs)


def test_reloaded_model_predicts_like_the_trained_one(trained, cache_dir):
    from harness.data import load_dataset

    val = load_dataset("digits").split("val")
    first, second = load_model(trained / "tiny" / "cpu"), load_model(trained / "tiny" / "cpu")
    logits = first.predict_logits(val.images)
    assert logits.shape == (len(val), 10) and logits.dtype == np.float32
    np.testing.assert_array_equal(logits, second.predict_logits(val.images))
    assert (logits.argmax(1) == val.labels).mean() > 0.8


def test_evaluate_table_and_csv(trained, submissions_dir):
    csv_path = trained / "eval.csv"
    result = CliRunner().invoke(app, ["evaluate", str(submissions_dir / "tiny"), "-P", "cpu", "--runs", str(trained),
                                      "--eps", "0.1", "--bim-steps", "3", "--limit", "100", "--csv", str(csv_path)],
                                env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    assert "…" not in result.output and max(map(len, result.output.splitlines())) <= 80, result.output
    assert "bim-3 25.5/255" in result.output  # set names whole, one row each
    rows = list(csv.DictReader(csv_path.open()))
    assert [r["set"] for r in rows] == ["clean", "augmented", "fgsm 25.5/255", "bim-3 25.5/255"]
    top1 = {r["set"]: float(r["top1"]) for r in rows}
    assert top1["clean"] > 0.8
    assert top1["bim-3 25.5/255"] <= top1["fgsm 25.5/255"] + 0.05 and top1["fgsm 25.5/255"] < top1["clean"]
    assert all(float(r["top5"]) >= float(r["top1"]) for r in rows)
    assert "top-1 / top-5 on the val split" in result.output


def test_evaluate_untrained_submission_says_train_first(submissions_dir, tmp_path):
    result = CliRunner().invoke(app, ["evaluate", str(submissions_dir / "tiny"), "--runs", str(tmp_path)])
    assert result.exit_code == 2
    assert "not a trained model (no model.json)" in result.output and "harness train SUBMISSION" in result.output


def test_train_rejects_an_unknown_profile(submissions_dir):
    result = CliRunner().invoke(app, ["train", str(submissions_dir / "tiny"), "-P", "gpu"])
    assert result.exit_code == 2 and "no profile 'gpu'" in result.output
    assert load_submission(submissions_dir / "tiny", "cpu").training["epochs"] == 4


def test_evaluate_robust_runs_the_ensemble_with_sanity_checks(trained, submissions_dir):
    pytest.importorskip("art")
    result = CliRunner().invoke(app, ["evaluate", str(submissions_dir / "tiny"), "-P", "cpu", "--runs", str(trained),
                                      "--eps", "0.1", "--limit", "24", "--robust", "--apgd-iters", "5",
                                      "--square-queries", "20", "--corruptions", "holdout",
                                      "--csv", str(trained / "robust-eval.csv")], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    folder = trained / "tiny" / "cpu" / "robustness"
    report = json.loads((folder / "robustness.json").read_text())
    robust = {row["eps"]: row["accuracy"] for row in report["robust_accuracy"]}
    assert sorted(robust) == pytest.approx([2 / 255, 4 / 255, 8 / 255, 0.1])
    assert robust[max(robust)] <= report["clean_accuracy"]
    assert (folder / "robustness.png").read_bytes().startswith(b"\x89PNG")
    assert (folder / "corruptions.csv").is_file()
    assert "ensemble (worst case)" in result.output and "sanity flags:" in result.output
    lines = progress_lines(result.output, "evaluate --robust")  # not a terminal: a line per attack x eps
    for attack in ("pgd", "apgd-ce", "apgd-t", "square"):
        for eps in ("2/255", "4/255", "8/255", "25.5/255"):
            assert any(re.fullmatch(rf"{attack} eps {eps} done \(robust \d+\.\d%\)", line) for line in lines), \
                (attack, eps, lines)
    assert lines[-1].startswith("finished in ")
    corruptions = progress_lines(result.output, "corruptions")
    assert len([line for line in corruptions if " done (accuracy " in line]) == 4  # the holdout suite


def test_evaluate_runs_the_chosen_registered_attacks(trained, submissions_dir):
    csv_path = trained / "attacks.csv"
    result = CliRunner().invoke(app, ["evaluate", str(submissions_dir / "tiny"), "-P", "cpu", "--runs", str(trained),
                                      "--eps", "0.1", "--limit", "40", "--csv", str(csv_path),
                                      "--attack", "pgd:steps=3,restarts=2", "--attack", "fgsm:eps=0.05"],
                                env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    rows = {r["set"]: float(r["top1"]) for r in csv.DictReader(csv_path.open())}
    assert list(rows) == ["clean", "augmented", "pgd(steps=3, restarts=2) 25.5/255", "fgsm 12.8/255"]
    assert rows["pgd(steps=3, restarts=2) 25.5/255"] < rows["clean"]


@pytest.mark.parametrize("option, message", [
    (["--attack", "pgdd"], "Unknown attack 'pgdd'. Did you mean 'pgd'?"),
    (["--attack", "pgd:steps"], "--attack 'pgd:steps': expected NAME[:key=value,...]"),
    (["--attack", "pgd:stepz=3"], "attack 'pgd' has no parameter 'stepz'. Did you mean 'steps'?"),
    (["--robust", "--robust-attack", "squar"], "Unknown attack 'squar'. Did you mean 'square'?"),
])
def test_evaluate_rejects_bad_attack_choices_in_one_line(trained, submissions_dir, option, message):
    result = CliRunner().invoke(app, ["evaluate", str(submissions_dir / "tiny"), "-P", "cpu", "--runs", str(trained),
                                      "--limit", "8", *option], env={"COLUMNS": "300"})
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output


def test_evaluate_robust_with_chosen_members(trained, submissions_dir):
    pytest.importorskip("art")
    result = CliRunner().invoke(app, ["evaluate", str(submissions_dir / "tiny"), "-P", "cpu", "--runs", str(trained),
                                      "--limit", "16", "--robust", "--robust-attack", "pgd:steps=3,restarts=1",
                                      "--robust-attack", "square", "--square-queries", "10",
                                      "--csv", str(trained / "members.csv")], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    report = json.loads((trained / "tiny" / "cpu" / "robustness" / "robustness.json").read_text())
    assert list(report["attacks"]) == ["pgd", "square"]
    assert report["attacks"]["pgd"]["params"][0]["steps"] == 3
    assert report["attacks"]["square"]["params"][0]["max_iter"] == 10


def test_a_third_party_attack_in_evaluate_and_in_the_ensemble(trained, submissions_dir, thirdparty_plugins):
    """harness-extra, installed by pip with its entry point: its attack as an --attack column and as a member."""
    csv_path = trained / "extra.csv"
    result = CliRunner().invoke(app, ["evaluate", str(submissions_dir / "tiny"), "-P", "cpu", "--runs", str(trained),
                                      "--eps", "0.1", "--limit", "40", "--csv", str(csv_path),
                                      "--attack", "extra-rfgsm:alpha=0.05", "--robust", "--robust-attack",
                                      "extra-rfgsm", "--robust-attack", "pgd:steps=3,restarts=1"],
                                env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    rows = {r["set"]: float(r["top1"]) for r in csv.DictReader(csv_path.open())}
    assert list(rows) == ["clean", "augmented", "extra-rfgsm(alpha=0.05) 25.5/255"]
    assert rows["extra-rfgsm(alpha=0.05) 25.5/255"] < rows["clean"]
    report = json.loads((trained / "tiny" / "cpu" / "robustness" / "robustness.json").read_text())
    assert list(report["attacks"]) == ["extra-rfgsm", "pgd"]
    params = report["attacks"]["extra-rfgsm"]["params"]  # one run per eps, recorded from the attack's config
    assert [p["alpha"] for p in params] == pytest.approx([p["eps"] / 2 for p in params]) and len(params) == 4
