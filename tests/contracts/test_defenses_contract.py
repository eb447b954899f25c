"""Defense contract, for every registered defense and framework variant: created with the training knobs
(a tiny config), it is a trainer whose fit takes (model, train, val, out_dir, *, resume)."""

from __future__ import annotations

import inspect

import pytest
from contract_helpers import require, variant_cases

from harness import registry
from harness.training import TrainingConfig

TINY = {"epochs": 1, "batch_size": 4, "progress": False, "seed": 0}


@pytest.mark.parametrize("name, framework", variant_cases("defense"))
def test_defense_takes_training_knobs_and_fits_by_contract(name, framework):
    require(framework)
    spec = registry.get_defense(name, framework=framework)
    knobs = {k: v for k, v in TINY.items() if k in spec.params}
    assert set(TrainingConfig.defaults()) <= set(spec.params), f"{name}: every defense takes the training knobs"
    trainer = registry.create_defense(name, framework=framework, **knobs)
    parameters = inspect.signature(trainer.fit).parameters
    assert list(parameters)[:4] == ["model", "train", "val", "out_dir"]
    assert parameters["resume"].kind is inspect.Parameter.KEYWORD_ONLY
