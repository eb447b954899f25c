"""The adaptive phase end to end on the tiny torch model: phase 1 (``run_child``: load the trained model,
predict, export code-free) then phase 2 (``run_adaptive_phase``: attack and predict in two fresh sandboxed
children of harness code only), and the hostile case: a submission whose plugin, at import, replaces the
harness's attack functions gets the same adaptive accuracy as without it."""

from __future__ import annotations

import importlib.util
import json
import shutil

import numpy as np
import pytest

from harness.scoring.adaptive import AdaptiveCategory, check_adversarial, read_adaptive_outcome, run_adaptive_phase
from harness.scoring.child_run import read_entry, run_child

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


def phase_one(folder, artifact, scratch):
    """Child 1 for the submission in ``folder`` with the trained ``artifact``: its export folder."""
    status, reason = run_child(read_entry(folder, artifact), "cpu", scratch.parents[1] / "images.npy", scratch,
                               timeout=240, threads=1)
    assert status == "ok", reason
    result = json.loads((scratch / "work" / "result.json").read_text())
    assert result["export"]["status"] == "exported", result["export"]
    return scratch / "work" / "export"


@pytest.fixture(scope="module")
def phases(hidden_split, submissions_dir, tiny_artifact, tmp_path_factory):
    """Both phases for tiny and for disarm (tiny's model and TOML plus the plugin): {name: (export, outcome)}."""
    root = tmp_path_factory.mktemp("adaptive")
    shutil.copyfile(hidden_split / "images" / "images.npy", root / "images.npy")
    disarm = root / "disarm"
    shutil.copytree(submissions_dir / "tiny", disarm)
    toml = (disarm / "submission.toml").read_text().replace('name = "tiny"', 'name = "disarm"')
    (disarm / "submission.toml").write_text(toml.replace('seed = 0', 'seed = 0\nplugins = ["disarm_plugin"]'))
    (disarm / "disarm_plugin.py").write_text(DISARM)
    artifact = root / "disarm-model"  # tiny's trained model, recorded as needing the plugin (imported on load)
    shutil.copytree(tiny_artifact, artifact)
    info = json.loads((artifact / "model.json").read_text())
    info["submission"]["plugins"] = ["disarm_plugin"]
    (artifact / "model.json").write_text(json.dumps(info))
    found = {}
    for name, folder, model in (("tiny", submissions_dir / "tiny", tiny_artifact), ("disarm", disarm, artifact)):
        scratch = root / "runs" / name
        export = phase_one(folder, model, scratch)
        outcome = run_adaptive_phase(export, "", root / "images.npy", [CATEGORY], scratch, timeout=240,
                                     threads=1, num_classes=10)
        found[name] = (export, outcome, scratch)
    return found


def test_phase_attacks_the_exported_model_within_budget(phases, hidden_split):
    export, outcome, scratch = phases["tiny"]
    result = outcome.categories["pgd"]
    assert result.status == "ok", result.reason
    assert result.clean_logits.shape == result.adversarial_logits.shape == (20, 10)
    assert isinstance(result.flags, list)
    clean = np.load(hidden_split / "images" / "images.npy")[CATEGORY.indices]
    adversarial = np.load(scratch / "adaptive-children" / "pgd" / "adversarial.npy")
    assert check_adversarial(adversarial, clean, CATEGORY.eps, "linf") == ""
    changed = result.adversarial_logits.argmax(1) != result.clean_logits.argmax(1)
    assert changed.mean() > 0.3  # the attack works on this undefended model
    details = result.details
    assert details["eps_ladder"] == [0.05, 0.1] and details["seed"] == 7
    assert details["hyperparameters"]["pgd"][-1]["steps"] == 5 and details["projections"] == 0
    assert set(details["seconds"]) >= {"attack_child", "predict_child", "attack"}
    again = read_adaptive_outcome(scratch).categories["pgd"]
    assert again.status == "ok" and np.array_equal(again.adversarial_logits, result.adversarial_logits)
    assert again.flags == result.flags and again.details == json.loads(json.dumps(result.details))


def test_plugin_replacing_attacks_at_import_changes_nothing(phases, hidden_split, monkeypatch):
    honest, hostile = phases["tiny"][1].categories["pgd"], phases["disarm"][1].categories["pgd"]
    assert hostile.status == "ok", hostile.reason
    assert np.array_equal(hostile.clean_logits.argmax(1), honest.clean_logits.argmax(1))
    assert np.array_equal(hostile.adversarial_logits.argmax(1), honest.adversarial_logits.argmax(1))
    # the control: imported where the attack runs, the plugin would have disarmed it
    from harness.export import load_exported
    from harness.robustness import ensemble, evaluate, evaluate_robustness

    monkeypatch.setattr(evaluate, "run_member", evaluate.run_member)  # undone after the test
    monkeypatch.setattr(ensemble, "run_member", ensemble.run_member)
    exported = load_exported(phases["tiny"][0], threads=1)
    clean = np.load(hidden_split / "images" / "images.npy")[CATEGORY.indices]
    predicted = exported.predict_logits(clean).argmax(1)
    spec = importlib.util.spec_from_file_location("disarm_plugin_here", phases["disarm"][2].parents[1] / "disarm"
                                                  / "disarm_plugin.py")
    spec.loader.exec_module(importlib.util.module_from_spec(spec))
    report = evaluate_robustness(exported.runtime, exported.model, clean, predicted, eps=(0.1,),
                                 attacks={"pgd": CATEGORY.params}, seed=7, progress=False)
    assert report.robust_accuracy[0.1] == 1.0  # nothing attacked: every prediction kept
    assert (honest.adversarial_logits.argmax(1) == predicted).mean() < 1.0


def test_not_exportable_fails_every_category_without_a_child(tmp_path, hidden_split):
    outcome = run_adaptive_phase(None, "RuntimeError: data-dependent control flow",
                                 hidden_split / "images" / "images.npy", [CATEGORY], tmp_path, timeout=5, threads=1)
    result = outcome.categories["pgd"]
    assert (result.status, result.reason) == ("failed", "not exportable: RuntimeError: data-dependent control flow")
    assert result.clean_logits is None and not (tmp_path / "adaptive-children").exists()
    assert read_adaptive_outcome(tmp_path).categories["pgd"].reason == result.reason
