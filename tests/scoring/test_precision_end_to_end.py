"""bf16 end to end in both frameworks: train a tiny submission in bf16 (torch: standard; TensorFlow: NSL
adversarial regularization), evaluate it (fp32 attacks), and score the artifact through the sandboxed scorer
(the child loads, predicts and exports it)."""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest

from harness.data import load_dataset
from harness.scoring.scorer import entries_from_paths, score_submissions
from harness.submission import load_submission
from harness.workflow import evaluate_model, load_model, train_submission
from helpers import tensorflow_for_tests

pytestmark = pytest.mark.slow

#: the tiny test submission's torch model; for TensorFlow the NSL tutorial CNN
BACKBONES = {"torch": 'name = "small-cnn"\nparams = { width = 16, hidden = 64 }',
             "tf": 'name = "nsl-cnn"'}
#: TensorFlow trains with NSL adversarial regularization: its neighbours follow the training precision too
DEFENSES = {"torch": "standard", "tf": "nsl-adversarial-regularization"}


def bf16_submission(folder, framework):
    folder.mkdir()
    (folder / "submission.toml").write_text(
        f'name = "bf16-{framework}"\nteam = "tests"\nframework = "{framework}"\ndataset = "digits"\nseed = 0\n\n'
        f'[backbone]\n{BACKBONES[framework]}\n\n[defense]\nname = "{DEFENSES[framework]}"\n\n'
        '[training]\nepochs = 1\nbatch_size = 64\noptimizer = "adam"\nlr = 0.003\nprecision = "bf16"\n')
    return folder


@pytest.mark.parametrize("framework", ["torch", "tf"])
def test_bf16_trains_evaluates_and_scores(framework, hidden_split, tmp_path):
    if framework == "tf":
        tensorflow_for_tests()
    submission = load_submission(bf16_submission(tmp_path / f"bf16-{framework}", framework))
    artifact = train_submission(submission, tmp_path / "model", progress=False, threads=1)
    meta = json.loads((artifact / "metrics.json").read_text())["meta"]
    assert (meta["precision"], meta["compile"], meta["params"]["precision"]) == ("bf16", False, "bf16")

    loaded = load_model(artifact)
    val = load_dataset("digits").split("val")
    logits = loaded.predict_logits(val.images[:64])
    assert logits.dtype == np.float32 and np.isfinite(logits).all()  # the saved model predicts in float32
    results = evaluate_model(loaded, val.images[:64], val.labels[:64], eps=0.1, bim_steps=2, progress=False)
    assert set(results) == {"clean", "augmented", "fgsm 25.5/255", "bim-2 25.5/255"}
    assert results["clean"]["top1"] > 0.3  # one epoch (22 Adam steps) learns something
    assert results["bim-2 25.5/255"]["top1"] <= results["clean"]["top1"]

    board = tmp_path / "leaderboard.csv"
    score_submissions(entries_from_paths([submission.root], {submission.name: artifact}), hidden_split,
                      tmp_path / "results.sqlite", board, profile=None, timeout=180, work_dir=tmp_path / "work",
                      threads=1)
    row = next(r for r in csv.DictReader(board.open()) if r["submission"] == submission.name)
    assert row["status"] == "scored", row["reason"]
    assert 0.3 < float(row["clean_top1"]) <= 1.0
    shutil.rmtree(tmp_path / "work", ignore_errors=True)
