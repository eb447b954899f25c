"""The scoring child's export step: after predicting, the model is exported into OUT/export and the
outcome recorded in result.json; an export that fails is recorded, and the worker still succeeds."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
from helpers import TEST_SUBMISSIONS

from harness.export import load_exported
from harness.scoring import worker


def test_worker_exports_after_predicting(torch_artifact, tmp_path):
    from harness.data import load_dataset

    images = np.asarray(load_dataset("digits").split("test").images[:20])
    np.save(tmp_path / "images.npy", images)
    out = tmp_path / "out"
    result = worker.run(TEST_SUBMISSIONS / "tiny", None, tmp_path / "images.npy", out, torch_artifact, threads=1)
    assert result["export"]["status"] == "exported" and result["export"]["format"] == "torch.export"
    assert result["export"]["reason"] == "" and result["export"]["seconds"] > 0
    assert json.loads((out / "result.json").read_text()) == result
    exported = load_exported(out / "export", threads=1)
    np.testing.assert_allclose(exported.predict_logits(images), np.load(out / "predictions.npy"), atol=1e-4)

    skipped = worker.run(TEST_SUBMISSIONS / "tiny", None, tmp_path / "images.npy", tmp_path / "skipped", torch_artifact,
                         threads=1, export=False)
    assert "export" not in skipped and not (tmp_path / "skipped" / "export").exists()


def test_a_failed_export_is_recorded_not_raised(tmp_path, monkeypatch):
    pytest.importorskip("torch")
    import torch

    import harness.export
    import harness_torch.runtime as runtime

    class Branchy(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = torch.nn.Linear(64, 3)

        def forward(self, x):
            y = self.linear(x.flatten(1))
            return y if y.sum() > 0 else -y

    loaded = SimpleNamespace(model=Branchy(), runtime=runtime, info={"num_classes": 3, "input_shape": [8, 8, 1]})
    record = worker.export_step(loaded, tmp_path / "export")
    assert record["status"] == "not exportable" and record["format"] == "torch.export"
    assert record["reason"].startswith("torch.export failed: GuardOnDataDependentSymNode")
    assert not (tmp_path / "export").exists()

    def broken(*args, **kwargs):
        raise MemoryError("out of memory\nwhile exporting")

    monkeypatch.setattr(harness.export, "export_model", broken)
    record = worker.export_step(loaded, tmp_path / "export")
    assert record["status"] == "not exportable" and record["reason"] == "MemoryError: out of memory while exporting"
