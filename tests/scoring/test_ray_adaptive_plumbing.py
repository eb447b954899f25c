"""What a Ray task carries for the adaptive phase and sends back, without a cluster: the request holds each
adaptive category's settings and image positions (never labels), and the outcome folder travels back whole
while nothing outside it or ``RETURNED_FILES`` is written on the organiser's side."""

from __future__ import annotations

import json

import numpy as np

from harness.scoring.adaptive import (AdaptiveCategory, AdaptiveOutcome, CategoryOutcome, read_adaptive_outcome,
                                      write_adaptive_outcome)
from harness.scoring.child_run import Entry, Job, RunSettings
from harness.scoring.ray_executor import keep_returned, returned_files, task_request

CATEGORY = AdaptiveCategory(name="pgd", attack="pgd", eps=0.1, norm="linf", params={"steps": 5}, members=[],
                            seed=11, indices=np.array([3, 7, 9]))


def test_request_carries_the_adaptive_settings_and_positions_only(tmp_path):
    entry = Entry(root=tmp_path, name="tiny", team="t", framework="torch", content_hash="c" * 64)
    settings = RunSettings("cpu", 60.0, 1, "auto", None, ("digits", "test"))
    request = task_request(Job(entry, "k" * 64, tmp_path / "scratch"), settings, None, "d" * 64,
                           [CATEGORY.to_dict()], 10)
    sent = json.loads(json.dumps(request))  # plain data, as Ray pickles it
    assert sent["num_classes"] == 10 and sent["adaptive"] == [{
        "name": "pgd", "attack": "pgd", "eps": 0.1, "norm": "linf", "params": {"steps": 5}, "members": [],
        "seed": 11, "indices": [3, 7, 9]}]
    again = AdaptiveCategory.from_dict(sent["adaptive"][0])
    assert again.settings() == CATEGORY.settings() and np.array_equal(again.indices, CATEGORY.indices)


def test_the_outcome_travels_back_and_nothing_else_is_written(tmp_path):
    worker = tmp_path / "worker"
    (worker / "work").mkdir(parents=True)
    (worker / "work" / "predictions.npy").write_bytes(b"p")
    (worker / "work" / "export").mkdir()
    (worker / "work" / "export" / "model.pt2").write_bytes(b"big")  # stays on the node
    logits = np.eye(3, 10, dtype=np.float32)
    write_adaptive_outcome(worker, AdaptiveOutcome({"pgd": CategoryOutcome(
        "ok", "", logits, logits[::-1].copy(), ["accuracy-rises-with-eps"], {"seed": 11})}))
    names = returned_files(worker)
    assert "work/predictions.npy" in names and "adaptive/outcome.json" in names
    assert not any("export" in name for name in names)
    files = {name: (worker / name).read_bytes() for name in names}
    files["../escape.txt"] = b"x"  # a name outside the outcome folder is never written
    files["adaptive/../../escape.txt"] = b"x"
    organiser = tmp_path / "organiser" / "scratch"
    keep_returned(organiser, {"files": files, "status": "ok", "reason": ""})
    assert not (tmp_path / "organiser" / "escape.txt").exists() and not (tmp_path / "escape.txt").exists()
    outcome = read_adaptive_outcome(organiser).categories["pgd"]
    assert outcome.status == "ok" and outcome.flags == ["accuracy-rises-with-eps"]
    assert np.array_equal(outcome.adversarial_logits, logits[::-1])


def test_with_an_attack_track_the_export_travels_back_too(tmp_path):
    entry = Entry(root=tmp_path, name="tiny", team="t", framework="torch", content_hash="c" * 64)
    settings = RunSettings("cpu", 60.0, 1, "auto", None, ("digits", "test"))
    assert task_request(Job(entry, "k" * 64, tmp_path / "s"), settings, None, "d" * 64, export=True)["export"]
    worker = tmp_path / "worker"
    (worker / "work" / "export" / "saved_model" / "variables").mkdir(parents=True)
    (worker / "work" / "export" / "export.json").write_text("{}")
    (worker / "work" / "export" / "saved_model" / "variables" / "v.index").write_bytes(b"v")
    names = returned_files(worker, export=True)
    assert names == ["work/export/export.json", "work/export/saved_model/variables/v.index"]
    files = {name: (worker / name).read_bytes() for name in names}
    files["work/export/../../escape.txt"] = b"x"  # never outside the export folder
    organiser = tmp_path / "organiser" / "scratch"
    keep_returned(organiser, {"files": files, "status": "ok", "reason": ""})
    assert (organiser / "work" / "export" / "saved_model" / "variables" / "v.index").read_bytes() == b"v"
    assert not (organiser / "escape.txt").exists() and not (tmp_path / "organiser" / "escape.txt").exists()
