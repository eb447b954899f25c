"""A scoring child's report (``harness score --explain N``): the worker writes it, the Ray executor ships it, the
organiser checks every array and number of it (hostile files fail the report with a reason, never the record)
and draws its pictures."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from PIL import Image

from harness.explain import Explained, Explanation, LayerMaps
from harness.scoring import report
from harness.scoring.child_run import Entry, Job, RunSettings
from harness.scoring.ray_executor import keep_returned, returned_files, task_request
from harness.scoring.report import BadReport, read_explained, read_history, report_details


def made_up(count: int = 2, classes: int = 10) -> Explained:
    """A report's content made up (no framework): 8x8 grey images, one 4x4 layer of 3 channels."""
    rng = np.random.default_rng(0)
    versions = [Explanation(rng.random((count, 8, 8, 1), dtype=np.float32), np.tile(np.arange(5), (count, 1)),
                            np.full((count, 5), 0.2, np.float32), rng.normal(size=(count, 8, 8, 1)).astype(np.float32),
                            rng.random((count, 8, 8), dtype=np.float32)) for _ in range(2)]
    maps = [LayerMaps("conv_a", np.tile([2, 0, 1], (count, 1)), rng.random((count, 4, 4, 3), dtype=np.float32),
                      rng.random((count, 4, 4, 3), dtype=np.float32))]
    return Explained(versions[0], versions[1], [f"class {i}" for i in range(classes)], np.arange(count), maps)


def write_report(work, arrays=None, history=None, child=None):
    """A child's work folder holding ``arrays`` as explain.npz and ``history`` as history.json; its result's
    report entry."""
    folder = work / "report"
    folder.mkdir(parents=True, exist_ok=True)
    np.savez(folder / "explain.npz", **(made_up().arrays() if arrays is None else arrays))
    epochs = [{"epoch": e, "train_loss": 1.0 / e, "train_top1": 0.5, "train_top5": 0.9, "lr": 0.1, "seconds": 1.0,
               "val_loss": None if e == 1 else 0.5, "val_top1": None if e == 1 else 0.6} for e in (1, 2, 3)]
    text = json.dumps({"schema_version": 1, "meta": {}, "epochs": epochs}) if history is None else history
    (folder / "history.json").write_text(text)
    return child or {"status": "ok", "reason": "", "seconds": 0.1}


def test_a_good_report_is_drawn_and_its_history_kept(tmp_path):
    child = write_report(tmp_path / "work")
    details = report_details(tmp_path / "work", tmp_path / "reports" / "tiny-0123", child, name="tiny",
                             num_classes=10)
    assert details["report"] == {"status": "ok", "reason": "", "dir": str((tmp_path / "reports" / "tiny-0123")),
                                 "pictures": {"explain": "explain.png", "activations": "activations.png"}}
    assert [e["epoch"] for e in details["history"]] == [1, 2, 3]
    assert details["history"][0] == {"epoch": 1, "train_loss": 1.0, "train_top1": 0.5, "val_loss": None,
                                     "val_top1": None, "lr": 0.1}
    for name in ("explain.png", "activations.png"):
        with Image.open(tmp_path / "reports" / "tiny-0123" / name) as image:
            assert image.size[0] > 300 and np.asarray(image.convert("L"), dtype=np.float32).std() > 0
    asked_one = report_details(tmp_path / "work", tmp_path / "one", child, name="tiny", images=1)["report"]
    assert asked_one == {"status": "failed", "reason": "explain.npz: labels has 2 images, expected 1 to 1"}
    # a failed report later: the earlier pictures go, the reason stays one line
    child = {"status": "failed", "reason": "UsageError: no\nconv layer"}
    details = report_details(tmp_path / "work", tmp_path / "reports" / "tiny-0123", child, name="tiny")
    assert details["report"] == {"status": "failed",
                                 "reason": "the scoring child's report failed: UsageError: no conv layer"}
    assert not (tmp_path / "reports" / "tiny-0123").exists() and len(details["history"]) == 3
    assert report_details(tmp_path / "none", tmp_path / "r", None, name="x") == {
        "history": [], "report": {"status": "none", "reason": "the scoring child made no report"}}


def _set(key, value):
    def change(arrays):
        arrays[key] = value
    return change


BAD_ARRAYS = {
    "NaN": (_set("clean_saliency", np.full((2, 8, 8, 1), np.nan, np.float32)), "clean_saliency holds NaN"),
    "pickle": (_set("labels", np.array([{"a": 1}, None], dtype=object)), "unreadable"),
    "shape": (_set("adversarial_cam", np.zeros((2, 8, 7), np.float32)), "adversarial_cam has shape (2, 8, 7)"),
    "dtype": (_set("clean_top_ids", np.zeros((2, 5), np.float32)), "clean_top_ids has dtype float32"),
    "strings as bytes": (_set("class_names", np.array([b"a"] * 10)), "class_names has dtype"),
    "missing": (lambda arrays: arrays.pop("layer0_adversarial"), "layer0_adversarial is missing"),
    "too many images": (_set("labels", np.zeros(17, np.int64)), "labels has 17 images"),
    "label out of range": (_set("labels", np.array([0, 10])), "labels has values outside"),
    "class id out of range": (_set("clean_top_ids", np.full((2, 5), 12)), "clean_top_ids has values outside"),
    "class count": (_set("class_names", np.array(["a", "b"])), "class_names has 2 names, expected 10"),
    "long name": (_set("class_names", np.array(["x" * 101] * 10)), "longer than 100"),
    "huge image": (_set("clean_images", np.zeros((2, 513, 8, 1), np.float32)), "at most 512 pixels"),
    "pixels out of range": (_set("clean_images", np.full((2, 8, 8, 1), 2.0, np.float32)), "outside [-0.001"),
    "too many channels": (_set("layer0_channels", np.zeros((2, 7), np.int64)), "7 channels per image"),
    "too many layers": (_set("layers", np.array(["a", "b", "c"])), "names 3 layers, more than 2"),
}


@pytest.mark.parametrize("case", list(BAD_ARRAYS))
def test_bad_arrays_fail_the_report_with_a_reason_naming_them(tmp_path, case):
    change, message = BAD_ARRAYS[case]
    arrays = made_up().arrays()
    change(arrays)
    np.savez(tmp_path / "explain.npz", **arrays)
    with pytest.raises(BadReport) as caught:
        read_explained(tmp_path / "explain.npz", num_classes=10)
    assert str(caught.value).startswith("explain.npz: ") and message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_oversize_links_and_bombs_are_refused_before_reading(tmp_path, monkeypatch):
    np.savez(tmp_path / "explain.npz", **made_up().arrays())
    size = (tmp_path / "explain.npz").stat().st_size
    monkeypatch.setattr(report, "MAX_NPZ_BYTES", size - 1)
    with pytest.raises(BadReport, match=f"explain.npz: {size} bytes, more than"):
        read_explained(tmp_path / "explain.npz")
    monkeypatch.setattr(report, "MAX_NPZ_BYTES", size)  # small on disk, large unpacked: refused unpacked
    np.savez_compressed(tmp_path / "bomb.npz", a=np.zeros(10 * size, np.uint8))
    with pytest.raises(BadReport, match="bytes unpacked, more than"):
        read_explained(tmp_path / "bomb.npz")
    os.symlink(tmp_path / "explain.npz", tmp_path / "link.npz")
    with pytest.raises(BadReport, match="link.npz: not a plain file"):
        read_explained(tmp_path / "link.npz")
    (tmp_path / "text.npz").write_text("not a zip")
    with pytest.raises(BadReport, match="text.npz: not an npz archive"):
        read_explained(tmp_path / "text.npz")


@pytest.mark.parametrize("text, message", [
    ('{"epochs": [{"epoch": 1, "train_loss": NaN, "train_top1": 0.5, "lr": 0.1}]}', "epoch 0 train_loss is not"),
    ('{"epochs": [{"epoch": 1, "train_loss": 1, "train_top1": 0.5, "lr": "fast"}]}', "epoch 0 lr is not"),
    ('{"epochs": [{"epoch": true, "train_loss": 1, "train_top1": 0.5, "lr": 0.1}]}', "epoch 0 epoch is not"),
    ('{"epochs": {}}', "no list of epochs"),
    ("[" * 100_000, "not JSON"),
    ('{"epochs": [' + ",".join(["{}"] * 1001) + "]}", "1001 epochs, more than 1000"),
    ("x" * (2**20 + 1), "more than the 1048576 allowed"),
])
def test_bad_histories_fail_with_a_reason(tmp_path, text, message):
    (tmp_path / "history.json").write_text(text)
    with pytest.raises(BadReport) as caught:
        read_history(tmp_path / "history.json")
    assert message in str(caught.value)
    child = write_report(tmp_path / "work", history=text)  # the whole report fails, nothing is drawn
    details = report_details(tmp_path / "work", tmp_path / "reports" / "x", child, name="x", num_classes=10)
    assert details["report"]["status"] == "failed" and message in details["report"]["reason"]
    assert details["history"] == [] and not (tmp_path / "reports" / "x").exists()


def test_the_ray_task_asks_for_the_report_and_ships_its_two_files_back(tmp_path):
    entry = Entry(root=tmp_path, name="tiny", team="t", framework="torch", content_hash="c" * 64)
    settings = RunSettings("cpu", 60.0, 1, "auto", None, ("digits", "test"), explain=3)
    assert task_request(Job(entry, "k" * 64, tmp_path / "s"), settings, None, "d" * 64)["explain"] == 3
    worker = tmp_path / "worker"
    write_report(worker / "work")
    (worker / "work" / "report" / "other.bin").write_bytes(b"x")  # not a report file: stays on the node
    names = returned_files(worker)
    assert names == ["work/report/history.json", "work/report/explain.npz"]
    files = {name: (worker / name).read_bytes() for name in names}
    files["work/report/../../escape.txt"] = b"x"
    organiser = tmp_path / "organiser" / "scratch"
    keep_returned(organiser, {"files": files, "status": "ok", "reason": ""})
    assert (organiser / "work" / "report" / "explain.npz").read_bytes() == files["work/report/explain.npz"]
    assert not (tmp_path / "organiser" / "escape.txt").exists()


def test_the_worker_reports_on_validation_images_end_to_end(tmp_path, submissions_dir, hidden_split, tiny_artifact):
    from harness.scoring.split import open_split
    from harness.scoring.worker import run

    split = open_split(hidden_split)
    result = run(submissions_dir / "tiny", "cpu", split.images_path, tmp_path / "work", tiny_artifact, 1,
                 export=False, explain=2)
    assert result["report"]["status"] == "ok", result["report"]
    assert "report" in json.loads((tmp_path / "work" / "result.json").read_text())
    with np.load(tmp_path / "work" / "report" / "explain.npz", allow_pickle=False) as npz:
        assert npz["labels"].tolist() == [0, 1]  # the first image of each of the first two classes
        assert npz["clean_images"].shape == (2, 8, 8, 1) and len(npz["layers"]) == 2
    details = report_details(tmp_path / "work", tmp_path / "reports" / "tiny-k", result["report"], name="tiny",
                             num_classes=10)
    assert details["report"]["status"] == "ok", details["report"]
    assert len(details["history"]) == 4 and details["history"][-1]["val_top1"] is not None  # the cpu profile
    for name in details["report"]["pictures"].values():
        with Image.open(tmp_path / "reports" / "tiny-k" / name) as image:
            assert np.asarray(image.convert("L"), dtype=np.float32).std() > 0
