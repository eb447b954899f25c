"""harness.training.config: the knobs every trainer shares, and the package's framework-free import."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from harness.errors import UsageError
from harness.training import TrainingConfig


def test_importing_training_does_not_import_a_framework():
    code = "import sys, harness.training; print(any(m in sys.modules for m in ('torch', 'tensorflow', 'matplotlib')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_config_defaults_are_plain_values_and_round_trip():
    defaults = TrainingConfig.defaults()
    assert defaults["optimizer"] == "sgd" and defaults["stage_lrs"] == [[0.01, 0.001], [0.001, 0.0001]]
    json.dumps(defaults)  # a plugin spec's params must be plain data
    assert TrainingConfig(**defaults) == TrainingConfig()


def test_config_split_separates_defense_knobs():
    config, rest = TrainingConfig.split({"epochs": 3, "lr": 0.1, "beta": 6.0})
    assert (config.epochs, config.lr, rest) == (3, 0.1, {"beta": 6.0})


@pytest.mark.parametrize(
    "params, words",
    [
        ({"optimizer": "adamw"}, ["optimizer", "adam"]),
        ({"schedule": "cosin"}, ["schedule", "Did you mean 'cosine'"]),
        ({"unfreeze": "some"}, ["unfreeze"]),
        ({"epochs": 0}, ["epochs"]),
        ({"lr": 0}, ["lr"]),
        ({"gamma": 2.0}, ["gamma"]),
        ({"unfreeze": "progressive", "stage_lrs": [[0.001, 0.01]]}, ["stage_lrs"]),
    ],
)
def test_config_rejects_bad_values_by_name(params, words):
    with pytest.raises(UsageError) as info:
        TrainingConfig(**params)
    for word in words:
        assert word in info.value.message
