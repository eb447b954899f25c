"""Dataset contract, for every registered dataset: .params a mapping, .plan(skip_bad=...) a DatasetPlan.

Datasets that need a source get a tiny image folder (two classes of PNGs); one whose own layout that
folder does not match (Tiny ImageNet) may refuse it with a one-line DataError or UsageError."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pytest
from contract_helpers import variant_cases
from PIL import Image

from harness import registry
from harness.data import DatasetPlan
from harness.errors import UsageError


def _image_folder(root):
    rng = np.random.default_rng(0)
    for label in ("cats", "dogs"):
        (root / label).mkdir(parents=True)
        for i in range(4):
            Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(root / label / f"{i}.png")
    return str(root)


@pytest.mark.parametrize("name, framework", variant_cases("dataset"))
def test_dataset_has_params_and_plan(name, framework, tmp_path):
    spec = registry.get_dataset(name, framework=framework)
    params = {"source": _image_folder(tmp_path / "images")} if spec.needs_source else {}
    dataset = registry.create_dataset(name, framework=framework, **params)
    assert isinstance(dataset.params, Mapping)
    try:
        plan = dataset.plan(skip_bad=False)
    except UsageError as error:  # DataError included
        assert spec.needs_source and "\n" not in error.message, error.message
        return
    assert isinstance(plan, DatasetPlan) and plan.splits and plan.class_ids
