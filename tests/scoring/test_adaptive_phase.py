"""The adaptive phase end to end through ``harness score`` on the tiny torch model: phase 1 (child 1: load the
trained model, predict, export code-free) then phase 2 (two fresh sandboxed children of harness code only: attack
and predict), scored by the organiser; and the hostile case: a submission whose plugin, at import, replaces the
harness's attack functions gets the same adaptive accuracy as without it."""

from __future__ import annotations

import importlib.util
import json
import shutil

import numpy as np
import pytest

from harness.scoring.adaptive import (AdaptiveCategory, adaptive_categories, check_adversarial, read_adaptive_outcome,
                                     run_adaptive_phase)
from harness.scoring.split import open_split

#: the hostile plugin: at import, every attack the robustness module runs returns the clean images
DISARM = '''"""Replaces the harness's attack functions at import: every attack returns the clean images."""
import numpy as np

import harness.robustness.ensemble as ensemble
import harness.robustness.evaluate as evaluate


def _clean(runtime, model, attack, images, labels, batch_size):
    return np.asarray(images, dtype=np.float32) / 255.0


ensemble.run_member = _clean
evaluate.run_member = _clean
'''
CATEGORY = AdaptiveCategory(name="pgd", attack="pgd", eps=0.1, norm="linf", params={"steps": 5, "restarts": 1},
                            members=[], seed=7, indices=np.arange(0, 40, 2))


ADAPTIVE_RECIPE = """
[split]
dataset = "digits"
source = "test"
seed = 5150
public_fraction = 0.5
limit = 40

[[perturbations]]
category = "clean"
kind = "clean"

[[perturbations]]
category = "pgd"
kind = "adaptive"
name = "pgd"
eps = 0.1
params = { steps = 5, restarts = 1 }
"""


@pytest.fixture(scope="module")
def phases(submissions_dir, tiny_artifact, tmp_path_factory):
    """``harness score`` on a split with an adaptive PGD category for disarm (tiny's trained model and TOML plus
    the plugin, recorded in its artifact so child 1 imports it): (split, records, work folder). The honest
    numbers to compare with are computed by the same harness code in this process (no plugin imported)."""
    from harness.scoring.scorer import entries_from_paths, score_submissions
    from harness.scoring.split import build_split, load_recipe

    root = tmp_path_factory.mktemp("adaptive")
    (root / "recipe.toml").write_text(ADAPTIVE_RECIPE)
    build_split(load_recipe(root / "recipe.toml"), root / "split", references=root / "references", progress=False)
    disarm = root / "subs" / "disarm"
    shutil.copytree(submissions_dir / "tiny", disarm)
    toml = (disarm / "submission.toml").read_text().replace('name = "tiny"', 'name = "disarm"')
    (disarm / "submission.toml").write_text(toml.replace('seed = 0', 'seed = 0\nplugins = ["disarm_plugin"]'))
    (disarm / "disarm_plugin.py").write_text(DISARM)
    artifact = root / "disarm-model"
    shutil.copytree(tiny_artifact, artifact)
    info = json.loads((artifact / "model.json").read_text())
    info["submission"]["plugins"] = ["disarm_plugin"]
    (artifact / "model.json").write_text(json.dumps(info))
    entries = entries_from_paths([disarm], {"disarm": artifact})
    records = score_submissions(entries, root / "split", root / "db.sqlite", root / "leaderboard.csv",
                                profile="cpu", timeout=240, threads=1, work_dir=root / "work", progress=False)
    return root / "split", {r.submission: r for r in records}, root / "work"


def scratch_of(work, name):
    return next(work.glob(f"{name}-*"))


def test_phase_attacks_the_exported_model_within_budget(phases):
    split_dir, records, work = phases
    record = records["disarm"]
    assert record.status == "scored", record.reason
    outcome = read_adaptive_outcome(scratch_of(work, "disarm")).categories["pgd"]
    assert outcome.status == "ok", outcome.reason
    split = open_split(split_dir)
    pgd = [c for c in adaptive_categories(split) if c.name == "pgd"][0]
    assert outcome.clean_logits.shape == outcome.adversarial_logits.shape == (len(pgd.indices), 10)
    clean = np.load(split.images_path)[pgd.indices]
    adversarial = np.load(scratch_of(work, "disarm") / "adaptive-children" / "pgd" / "adversarial.npy")
    assert check_adversarial(adversarial, clean, 0.1, "linf") == ""
    changed = outcome.adversarial_logits.argmax(1) != outcome.clean_logits.argmax(1)
    assert changed.mean() > 0.3  # the attack works on this undefended model
    # the organiser's numbers: robust = clean and adversarial both right, per partition, with intervals
    robust = outcome.robust_correct(split.labels[pgd.indices])
    public = split.public[pgd.indices]
    assert record.metrics["public"]["top1_pgd"] == pytest.approx(robust[public].mean())
    assert record.metrics["private"]["top1_pgd"] == pytest.approx(robust[~public].mean())
    assert record.metrics["public"]["pgd_ci_low"] <= record.metrics["public"]["top1_pgd"]
    clean_top1 = record.metrics["public"]["top1_clean"]
    assert record.metrics["public"]["top1_pgd"] < clean_top1  # white-box PGD at 0.1 hurts an undefended model
    details = record.details["adaptive"]["pgd"]
    assert details["status"] == "ok" and details["eps_ladder"] == [0.05, 0.1] and details["seed"] == pgd.seed
    assert details["hyperparameters"]["pgd"][-1]["steps"] == 5 and details["projections"] == 0
    assert details["export_disagreements"] == 0 and record.details["export"]["status"] == "exported"
    assert set(details["seconds"]) >= {"attack_child", "predict_child", "attack"}
    assert all(flag.startswith("pgd: ") for flag in record.flags)
    header = (split_dir.parent / "leaderboard.csv").read_text().splitlines()[0].split(",")
    assert {"top1_pgd", "pgd_ci_low", "pgd_ci_high", "flags"} <= set(header)


def test_plugin_replacing_attacks_at_import_changes_nothing(phases, tmp_path, monkeypatch):
    """disarm's plugin ran in child 1 (it loaded the model); its adaptive accuracy equals what the same harness
    code gives on the same export here, where no plugin is imported; imported here, the plugin would have
    disarmed the attack (the control: so this test can fail)."""
    import torch

    from harness.robustness import ensemble, evaluate
    from harness.scoring import exported_worker

    split_dir, records, work = phases
    split = open_split(split_dir)
    pgd = [c for c in adaptive_categories(split) if c.name == "pgd"][0]
    export = scratch_of(work, "disarm") / "work" / "export"
    hostile = read_adaptive_outcome(scratch_of(work, "disarm")).categories["pgd"]
    assert hostile.status == "ok", hostile.reason
    np.save(tmp_path / "clean.npy", np.load(split.images_path)[pgd.indices])
    threads = torch.get_num_threads()
    monkeypatch.setattr(evaluate, "run_member", evaluate.run_member)  # undone after the test
    monkeypatch.setattr(ensemble, "run_member", ensemble.run_member)
    try:
        exported_worker.attack(export, tmp_path / "clean.npy", tmp_path / "honest", pgd.settings(), threads=1)
        exported_worker.predict(export, tmp_path / "clean.npy", tmp_path / "honest" / "adversarial.npy",
                                tmp_path / "honest", threads=1)
        honest_adversarial = np.load(tmp_path / "honest" / "adversarial_logits.npy").argmax(1)
        spec = importlib.util.spec_from_file_location("disarm_plugin_here", split_dir.parent / "subs" / "disarm"
                                                      / "disarm_plugin.py")
        spec.loader.exec_module(importlib.util.module_from_spec(spec))  # the control: the plugin imported here
        exported_worker.attack(export, tmp_path / "clean.npy", tmp_path / "disarmed", pgd.settings(), threads=1)
    finally:
        torch.set_num_threads(threads)
    labels = split.labels[pgd.indices]
    honest_clean = np.load(tmp_path / "honest" / "clean_logits.npy").argmax(1)
    honest_robust = (honest_clean == labels) & (honest_adversarial == labels)
    assert np.array_equal(hostile.robust_correct(labels), honest_robust)
    assert np.array_equal(hostile.adversarial_logits.argmax(1), honest_adversarial)
    public = split.public[pgd.indices]
    assert records["disarm"].metrics["public"]["top1_pgd"] == pytest.approx(honest_robust[public].mean())
    disarmed = np.load(tmp_path / "disarmed" / "adversarial.npy")
    assert np.allclose(disarmed, np.load(tmp_path / "clean.npy") / 255.0)  # patched: the clean images came back
    assert (honest_adversarial != honest_clean).mean() > 0.3  # unpatched, the attack changes predictions


def test_not_exportable_fails_every_category_without_a_child(tmp_path, hidden_split):
    outcome = run_adaptive_phase(None, "RuntimeError: data-dependent control flow",
                                 hidden_split / "images" / "images.npy", [CATEGORY], tmp_path, timeout=5, threads=1)
    result = outcome.categories["pgd"]
    assert (result.status, result.reason) == ("failed", "not exportable: RuntimeError: data-dependent control flow")
    assert result.clean_logits is None and not (tmp_path / "adaptive-children").exists()
    assert read_adaptive_outcome(tmp_path).categories["pgd"].reason == result.reason
