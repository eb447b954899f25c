"""Export fixtures: tiny trained digits models, one per framework, as real model artifacts."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from helpers import TEST_SUBMISSIONS

TF_SUBMISSION = """
name = "tiny-tf"
team = "tests"
framework = "tf"
dataset = "digits"
seed = 0

[backbone]
name = "nsl-cnn"
params = { filters = [8, 16], hidden = 32 }

[defense]
name = "standard"

[training]
epochs = 3
batch_size = 32
optimizer = "adam"
lr = 0.003
"""


def _train(folder: Path, out: Path) -> Path:
    from harness.submission import load_submission
    from harness.workflow import train_submission

    return train_submission(load_submission(folder), out, progress=False, threads=1)


@pytest.fixture(scope="session")
def torch_artifact(tmp_path_factory) -> Path:
    """tests/submissions/tiny (small-cnn, 2 epochs on digits) trained into a model artifact."""
    pytest.importorskip("torch")
    return _train(TEST_SUBMISSIONS / "tiny", tmp_path_factory.mktemp("torch-artifact") / "model")


@pytest.fixture(scope="session")
def tf_artifact(tmp_path_factory) -> Path:
    """A tiny nsl-cnn (3 epochs on digits) trained into a model artifact."""
    for module in ("tensorflow", "tf_keras"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} is not installed")
    folder = tmp_path_factory.mktemp("tf-submission")
    (folder / "submission.toml").write_text(TF_SUBMISSION)
    return _train(folder, folder / "model")
