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
    """``harness score`` on a split with an adaptive PGD category, for tiny and for disarm (tiny's model and
    TOML plus the plugin, recorded in its artifact so child 1 imports it): (split, records, work folder)."""
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
    entries = entries_from_paths([submissions_dir / "tiny", disarm], {"tiny": tiny_artifact, "disarm": artifact})
    records = score_submissions(entries, root / "split", root / "db.sqlite", root / "leaderboard.csv",
                                profile="cpu", timeout=240, threads=1, work_dir=root / "work", progress=False)
    return root / "split", {r.submission: r for r in records}, root / "work"


def scratch_of(work, name):
    return next(work.glob(f"{name}-*"))


def test_phase_attacks_the_exported_model_within_budget(phases):
    split_dir, records, work = phases
    record = records["tiny"]
    assert record.status == "scored", record.reason
    outcome = read_adaptive_outcome(scratch_of(work, "tiny")).categories["pgd"]
    assert outcome.status == "ok", outcome.reason
    split = open_split(split_dir)
    pgd = [c for c in adaptive_categories(split) if c.name == "pgd"][0]
    assert outcome.clean_logits.shape == outcome.adversarial_logits.shape == (len(pgd.indices), 10)
    clean = np.load(split.images_path)[pgd.indices]
    adversarial = np.load(scratch_of(work, "tiny") / "adaptive-children" / "pgd" / "adversarial.npy")
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


def test_plugin_replacing_attacks_at_import_changes_nothing(phases, monkeypatch):
    split_dir, records, work = phases
    assert records["disarm"].status == "scored", records["disarm"].reason
    assert records["disarm"].metrics == records["tiny"].metrics  # the same adaptive (and every other) accuracy
    honest, hostile = (read_adaptive_outcome(scratch_of(work, name)).categories["pgd"] for name in ("tiny", "disarm"))
    assert hostile.status == "ok", hostile.reason
    assert np.array_equal(hostile.clean_logits.argmax(1), honest.clean_logits.argmax(1))
    assert np.array_equal(hostile.adversarial_logits.argmax(1), honest.adversarial_logits.argmax(1))
    # the control: imported where the attack runs, the plugin would have disarmed it
    from harness.export import load_exported
    from harness.robustness import ensemble, evaluate, evaluate_robustness

    monkeypatch.setattr(evaluate, "run_member", evaluate.run_member)  # undone after the test
    monkeypatch.setattr(ensemble, "run_member", ensemble.run_member)
    exported = load_exported(scratch_of(work, "tiny") / "work" / "export", threads=1)
    split = open_split(split_dir)
    pgd = [c for c in adaptive_categories(split) if c.name == "pgd"][0]
    clean = np.load(split.images_path)[pgd.indices]
    predicted = exported.predict_logits(clean).argmax(1)
    spec = importlib.util.spec_from_file_location("disarm_plugin_here", split_dir.parent / "subs" / "disarm"
                                                  / "disarm_plugin.py")
    spec.loader.exec_module(importlib.util.module_from_spec(spec))
    report = evaluate_robustness(exported.runtime, exported.model, clean, predicted, eps=(0.1,),
                                 attacks={"pgd": pgd.params}, seed=7, progress=False)
    assert report.robust_accuracy[0.1] == 1.0  # nothing attacked: every prediction kept
    assert (honest.adversarial_logits.argmax(1) == predicted).mean() < 1.0


def test_not_exportable_fails_every_category_without_a_child(tmp_path, hidden_split):
    outcome = run_adaptive_phase(None, "RuntimeError: data-dependent control flow",
                                 hidden_split / "images" / "images.npy", [CATEGORY], tmp_path, timeout=5, threads=1)
    result = outcome.categories["pgd"]
    assert (result.status, result.reason) == ("failed", "not exportable: RuntimeError: data-dependent control flow")
    assert result.clean_logits is None and not (tmp_path / "adaptive-children").exists()
    assert read_adaptive_outcome(tmp_path).categories["pgd"].reason == result.reason
