"""Fixtures for the competition workflow: test submissions, a recipe, a small hidden split."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

pytest.importorskip("torch")

from helpers import TEST_SUBMISSIONS as SUBMISSIONS  # noqa: E402

RECIPE = """
[split]
dataset = "digits"
source = "test"
seed = 4242
public_fraction = 0.3
limit = 120

[[perturbations]]
category = "clean"
kind = "clean"
weight = 2

[[perturbations]]
category = "noise"
kind = "augmentation"
name = "gaussian-noise"
severity = 3

[[perturbations]]
category = "fgsm"
kind = "attack"
name = "fgsm"
params = { eps = 0.1 }
reference = "{reference}"
reference_profile = "cpu"
"""


@pytest.fixture(scope="session")
def submissions_dir(tmp_path_factory) -> Path:
    """A copy of tests/submissions (tests may add to it)."""
    target = tmp_path_factory.mktemp("subs") / "submissions"
    shutil.copytree(SUBMISSIONS, target, ignore=shutil.ignore_patterns("__pycache__"))
    return target


def write_recipe(folder: Path, reference: Path, **changes: str) -> Path:
    text = RECIPE.replace("{reference}", str(reference))
    for old, new in changes.items():
        text = text.replace(old, new)
    path = folder / "recipe.toml"
    path.write_text(text)
    return path


@pytest.fixture(scope="session")
def hidden_split(tmp_path_factory, submissions_dir) -> Path:
    """A 120-image split: clean, gaussian noise and FGSM against the tiny reference submission."""
    from harness.scoring.split import build_split, load_recipe

    folder = tmp_path_factory.mktemp("split")
    recipe = write_recipe(folder, submissions_dir / "tiny")
    build_split(load_recipe(recipe), folder / "split", references=folder / "references", progress=False)
    return folder / "split"


@pytest.fixture(scope="session")
def tiny_artifact(hidden_split) -> Path:
    """The tiny reference model the split was built with: scoring tiny with it needs no training."""
    return next((hidden_split.parent / "references").rglob("model.json")).parent


def scored_tiny_record(split_dir: Path, artifact: Path, export_dir: Path | None, name: str = "tiny"):
    """The record ``harness score`` stores for the tiny model on ``split_dir``, made in this process (no child):
    its predictions scored as the scorer scores them and, with ``export_dir``, its code-free export there."""
    import numpy as np

    from harness import __version__
    from harness.export import export_model
    from harness.scoring.scorer import correctness, score_metrics
    from harness.scoring.split import open_split
    from harness.scoring.stats import seed_from
    from harness.scoring.store import ScoreRecord
    from harness.workflow import load_model

    split = open_split(split_dir)
    loaded = load_model(artifact)
    logits = np.asarray(loaded.predict_logits(np.load(split.images_path)))
    seed = seed_from(split.split_hash)
    metrics, correct = score_metrics(correctness(logits, split.labels, 1), split, seed=seed)
    details = {"bootstrap_seed": seed}
    if export_dir is not None:
        export_model(loaded, export_dir)
        details["export_dir"] = str(Path(export_dir).resolve())
    else:
        details["export"] = {"status": "not exportable", "reason": "custom op"}
    return ScoreRecord(submission=name, team="tests", framework="torch", profile="cpu", content_hash=name * 8,
                       split_hash=split.split_hash, harness_version=__version__, status="scored", metrics=metrics,
                       correct=correct, details=details)
