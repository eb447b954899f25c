"""The attack-track child (harness.scoring.attack_worker) in-process, and the MI-FGSM example's attack."""

from __future__ import annotations

import json
import re
import shutil

import numpy as np
import pytest

from harness.scoring import attack_worker

from helpers import EXAMPLE_SUBMISSIONS, check_budget

torch = pytest.importorskip("torch")

#: a model-free torch attack that records what it was called with (into its ``record`` file)
RECORDER = '''
import json
from types import SimpleNamespace

from harness import hookimpl
from harness.specs import AttackSpec


class Recorder:
    def __init__(self, eps=0.1, seed=0, record="", fail=False):
        self.config = SimpleNamespace(eps=eps, norm="linf")
        self.seed, self.record, self.fail = seed, record, fail

    def __call__(self, model, x, y=None, target=None):
        import torch

        if self.fail:
            raise RuntimeError("the attack broke\\non two lines")
        with open(self.record, "a") as handle:
            handle.write(json.dumps({"model": repr(model), "y": repr(y), "target": repr(target),
                                     "shape": list(x.shape), "seed": self.seed}) + "\\n")
        noise = torch.rand(x.shape, generator=torch.Generator().manual_seed(self.seed))
        return x + 3 * self.config.eps * (noise - 0.5)  # partly outside the budget: the organiser clips


@hookimpl
def harness_register_attacks():
    return [AttackSpec(name="recorder", factory=Recorder, framework="torch",
                       params={"eps": 0.1, "seed": 0, "record": "", "fail": False})]
'''


def settings(**changes):
    return {"eps": 0.1, "norm": "linf", "seed": 3, "profile": None, "attack": None, "framework": None, **changes}


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    """20 digits test images (uint8 N,H,W,C) saved as the child's images.npy."""
    from harness.data import load_dataset

    split = load_dataset("digits", progress=False).split("test")
    path = tmp_path_factory.mktemp("attack-images") / "images.npy"
    np.save(path, split.images[:20])
    return path


def recorder_submission(tmp_path, record, **params):
    folder = tmp_path / "recorder"
    folder.mkdir()
    (folder / "recorder_plugin.py").write_text(RECORDER)
    table = ", ".join(f"{k} = {json.dumps(v)}" for k, v in {"record": str(record), **params}.items())
    (folder / "submission.toml").write_text(
        f'name = "recorder"\nteam = "t"\ntrack = "attack"\nframework = "torch"\ndataset = "digits"\nseed = 5\n'
        f'plugins = ["recorder_plugin"]\n\n[attack]\nname = "recorder"\nparams = {{ {table} }}\n')
    return folder


def test_a_model_free_attack_gets_no_model_and_no_labels(tmp_path, clean):
    record = tmp_path / "calls.jsonl"
    out = tmp_path / "work"
    result = attack_worker.run(settings(), clean, out, submission=recorder_submission(tmp_path, record))
    calls = [json.loads(line) for line in record.read_text().splitlines()]
    assert calls == [{"model": "None", "y": "None", "target": "None", "shape": [20, 1, 8, 8], "seed": 3}]
    adversarial = np.load(out / "adversarial.npy")
    assert adversarial.dtype == np.float32 and adversarial.shape == (20, 8, 8, 1)
    assert np.abs(adversarial - np.load(clean) / 255.0).max() > 0.1  # handed back as returned, not clipped
    assert result == json.loads((out / "attack.json").read_text())
    assert (result["attack"], result["framework"], result["target"], result["surrogate"]) == \
        ("recorder", "torch", "none", None)
    # created with the contest's eps and seed (no norm parameter: none given); no to_dict: those arguments
    assert result["hyperparameters"] == {"record": str(record), "eps": 0.1, "seed": 3}
    assert set(result["seconds"]) == {"train", "load", "attack"}


def test_a_failing_attack_exits_3_with_one_line(tmp_path, clean, capsys):
    folder = recorder_submission(tmp_path, tmp_path / "calls.jsonl", fail=True)
    args = ["--settings", json.dumps(settings()), "--submission", str(folder), "--images", str(clean),
            "--out", str(tmp_path / "work")]
    assert attack_worker.main(args) == attack_worker.EXIT_FAILED
    assert capsys.readouterr().err == ("worker failed: attack 'recorder' failed with no model (no surrogate, no "
                                       "export: model-free attacks only): RuntimeError: the attack broke on two "
                                       "lines\n")
    assert not (tmp_path / "work" / "adversarial.npy").exists()
    # a gradient attack without a model fails with its own error; a norm the attack cannot take is named
    fgsm = settings(attack={"name": "fgsm", "params": {}}, framework="torch")
    assert attack_worker.main(["--settings", json.dumps(fgsm), "--images", str(clean), "--out",
                               str(tmp_path / "w2")]) == 3
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("worker failed: attack 'fgsm' failed with no model (no surrogate, "
                                                    "no export: model-free attacks only): AttributeError: ")
    l2 = settings(attack={"name": "recorder", "params": {}}, norm="l2")
    assert attack_worker.main(["--settings", json.dumps(l2), "--submission", str(folder), "--images", str(clean),
                               "--out", str(tmp_path / "w3")]) == 3
    assert capsys.readouterr().err == ("worker failed: attack 'recorder' has no 'norm' parameter, so it cannot "
                                       "attack in the contest's norm 'l2'\n")


def test_the_attack_submission_attacks_its_trained_surrogate(tmp_path, clean):
    folder = tmp_path / "mi-fgsm"
    shutil.copytree(EXAMPLE_SUBMISSIONS / "mi-fgsm", folder, ignore=shutil.ignore_patterns("__pycache__"))
    toml = folder / "submission.toml"
    toml.write_text(re.sub(r"training = \{ epochs = \d+ \}", "training = { epochs = 1 }", toml.read_text()))
    out = tmp_path / "work"
    result = attack_worker.run(settings(profile="cpu"), clean, out, submission=folder, threads=1)
    assert result["target"] == "surrogate" and (out / "surrogate" / "model.json").is_file()
    assert result["surrogate"]["backbone"] == "small-cnn" and result["surrogate"]["train_seconds"] > 0
    assert result["hyperparameters"] == {"eps": 0.1, "steps": 10, "decay": 1.0, "norm": "linf"}
    check_budget(np.load(clean) / np.float32(255.0), np.load(out / "adversarial.npy"), 0.1, "linf")


def test_white_box_on_an_export_with_a_baseline_attack(tmp_path, clean, tiny_artifact):
    from harness.export import export_model
    from harness.workflow import load_model

    export_model(load_model(tiny_artifact, threads=1), tmp_path / "export")
    out = tmp_path / "work"
    chosen = settings(attack={"name": "pgd", "params": {"steps": 3}}, framework="tf")  # the export's framework wins
    result = attack_worker.run(chosen, clean, out, export=tmp_path / "export", threads=1)
    assert (result["target"], result["framework"], result["surrogate"]) == ("export", "torch", None)
    assert result["hyperparameters"]["mode"] == "predicted" and result["hyperparameters"]["steps"] == 3
    adversarial = np.load(out / "adversarial.npy")
    images = np.load(clean)
    check_budget(images / np.float32(255.0), adversarial, 0.1, "linf")
    model = load_model(tiny_artifact, threads=1)
    before = model.predict_logits(images).argmax(1)
    after = model.runtime.predict_logits_float(model.model, adversarial).argmax(1)
    assert (before != after).mean() > 0.5  # white-box PGD at 0.1 flips most of the tiny model's predictions


# --------------------------------------------------------------------------- the MI-FGSM example's attack


@pytest.fixture(scope="module")
def mi_fgsm():
    """The example's plugin module registered for the module's tests: create(**params) -> the attack."""
    from harness.registry import create_attack
    from harness.submission import submission_plugins

    with submission_plugins(EXAMPLE_SUBMISSIONS / "mi-fgsm", ["mi_fgsm"]):
        yield lambda **params: create_attack("mi-fgsm", framework="torch", **params)


def test_mi_fgsm_stays_in_the_ball_and_beats_fgsm(mi_fgsm, tiny_artifact, clean):
    from harness.registry import create_attack
    from harness.workflow import load_model

    loaded = load_model(tiny_artifact, threads=1)
    images = np.load(clean)
    x = torch.from_numpy(images / np.float32(255.0)).permute(0, 3, 1, 2)
    predicted = loaded.predict_logits(images).argmax(1)
    fgsm = create_attack("fgsm", framework="torch", eps=0.1, mode="predicted")
    one_step = mi_fgsm(eps=0.1, steps=1, decay=0.0)
    assert torch.equal(one_step(loaded.model, x), fgsm(loaded.model, x))  # decay 0, one step: FGSM
    loaded.model.train()
    attack = mi_fgsm(eps=0.1)
    adversarial = attack(loaded.model, x)
    assert loaded.model.training  # the model's mode comes back as it was found
    loaded.model.eval()
    nhwc = adversarial.permute(0, 2, 3, 1).numpy()
    check_budget(images / np.float32(255.0), nhwc, 0.1, "linf")
    fooled = (loaded.runtime.predict_logits_float(loaded.model, nhwc).argmax(1) != predicted).sum()
    by_fgsm = (loaded.runtime.predict_logits_float(loaded.model, fgsm(loaded.model, x).permute(0, 2, 3, 1).numpy())
               .argmax(1) != predicted).sum()
    assert fooled >= by_fgsm and fooled > 0
    assert attack.config.to_dict() == {"eps": 0.1, "steps": 10, "decay": 1.0, "norm": "linf"}
    l2 = mi_fgsm(eps=1.0, norm="l2", steps=5)(loaded.model, x)
    check_budget(images / np.float32(255.0), l2.permute(0, 2, 3, 1).numpy(), 1.0, "l2")
    with pytest.raises(ValueError, match="mi-fgsm: steps must be an integer >= 1, got 0"):
        mi_fgsm(steps=0)
