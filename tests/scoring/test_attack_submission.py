"""Attack submissions (track = "attack"): every rule of submission.toml with its one-line problem, loading,
training the surrogate, and ``harness submission validate``."""

from __future__ import annotations

import shutil

import pytest
from typer.testing import CliRunner

from harness.cli.main import app
from harness.errors import UsageError
from harness.submission import (TOP_FIELDS, load_submission, read_toml, submission_track, toml_problems,
                                validate_submission)
from harness.toml_schema import check_table

from helpers import EXAMPLE_SUBMISSIONS

ATTACK = """
name = "x"
team = "t"
track = "attack"
framework = "torch"
dataset = "digits"

[attack]
name = "fgsm"
"""
SURROGATE = '\n[backbone]\nname = "small-cnn"\n\n[defense]\nname = "standard"\n'
NO_EPS = '''
from harness import hookimpl
from harness.specs import AttackSpec


@hookimpl
def harness_register_attacks():
    return [AttackSpec(name="no-eps", factory=lambda steps=1: None, framework="torch", params={"steps": 1})]
'''


def write(tmp_path, text, **files):
    folder = tmp_path / "sub"
    folder.mkdir(exist_ok=True)
    (folder / "submission.toml").write_text(text)
    for name, content in files.items():
        (folder / name).write_text(content)
    return folder


def messages(folder):
    return [str(p) for p in validate_submission(folder)]


def test_an_attack_submission_with_and_without_a_surrogate_loads(tmp_path):
    bare = load_submission(write(tmp_path, ATTACK.replace('name = "fgsm"', 'name = "pgd"\nparams = { steps = 3 }')))
    assert (bare.track, bare.attack, dict(bare.attack_params)) == ("attack", "pgd", {"steps": 3})
    assert (bare.backbone, bare.defense, bare.has_surrogate) == ("", "", False)
    assert bare.to_dict()["track"] == "attack" and bare.to_dict()["attack_params"] == {"steps": 3}
    surrogate = load_submission(write(tmp_path, ATTACK + SURROGATE + "\n[training]\nepochs = 1\n"))
    assert surrogate.has_surrogate and (surrogate.backbone, surrogate.defense) == ("small-cnn", "standard")
    example = load_submission(EXAMPLE_SUBMISSIONS / "mi-fgsm", "gpu")
    assert (example.attack, example.attack_params, example.dataset) == ("mi-fgsm", {"steps": 20, "decay": 1.0},
                                                                        "tiny-imagenet")
    assert load_submission(EXAMPLE_SUBMISSIONS / "cnn-baseline").track == "defense"


def test_track_and_attack_table_per_track(tmp_path):
    assert messages(write(tmp_path, ATTACK.replace('"attack"\nframework', '"atack"\nframework'))) == [
        "track: must be one of defense, attack, got 'atack'. Did you mean 'attack'?"]
    assert messages(write(tmp_path, ATTACK.split("[attack]")[0])) == [
        'attack: missing (required for track = "attack"): the attack plugin to submit, as [attack] name = "...", '
        'params = { ... }']
    defense = ATTACK.replace('track = "attack"\n', "") + SURROGATE
    assert messages(write(tmp_path, defense)) == [
        'attack: only an attack submission has an [attack] table: set track = "attack" or remove it']
    # a defense submission still needs its backbone and defense, with the same messages as before
    assert messages(write(tmp_path, 'name = "x"\ntrack = "defense"\n')) == [
        "team: missing (required)", "framework: missing (required)", "dataset: missing (required)",
        "backbone: missing (required)", "defense: missing (required)"]


def test_a_surrogate_needs_backbone_and_defense_and_only_it_trains(tmp_path):
    assert messages(write(tmp_path, ATTACK + '\n[backbone]\nname = "small-cnn"\n')) == [
        "defense: missing: a surrogate model needs both [backbone] and [defense] (or neither), and [backbone] is given"]
    assert messages(write(tmp_path, ATTACK + '\n[defense]\nname = "standard"\n')) == [
        "backbone: missing: a surrogate model needs both [backbone] and [defense] (or neither), and [defense] is given"]
    text = ATTACK + '\n[training]\nepochs = 1\n\n[[augmentations]]\nname = "hflip"\n'
    assert messages(write(tmp_path, text)) == [
        "training: only a surrogate model is trained: add [backbone] and [defense], or remove training",
        "augmentations: only a surrogate model is trained: add [backbone] and [defense], or remove augmentations"]
    # a profile adding half a surrogate is caught too
    assert messages(write(tmp_path, ATTACK + '\n[profiles.cpu]\nbackbone = { name = "small-cnn" }\n')) == [
        "profiles.cpu.defense: missing: a surrogate model needs both [backbone] and [defense] (or neither), and "
        "[backbone] is given"]


def test_the_attack_plugin_is_checked(tmp_path):
    found = messages(write(tmp_path, ATTACK.replace('"fgsm"', '"fgsn"')))
    assert len(found) == 1 and found[0].startswith("attack.name: Unknown attack 'fgsn'. Did you mean 'fgsm'?")
    assert messages(write(tmp_path, ATTACK.replace('"fgsm"', '"fgsm"\nparams = { stpes = 2 }'))) == [
        "attack.params.stpes: attack 'fgsm' has no parameter 'stpes'. Parameters: eps, norm, mode, seed"]
    assert messages(write(tmp_path, ATTACK.replace('"fgsm"', '"fgsm"\nsteps = 2'))) == [
        "attack.steps: unknown field. Put the attack's parameters under attack.params"]
    text = ATTACK.replace('framework = "torch"', 'framework = "tf"\nplugins = ["mi_fgsm"]').replace(
        '"fgsm"', '"mi-fgsm"')
    folder = write(tmp_path, text)
    shutil.copy(EXAMPLE_SUBMISSIONS / "mi-fgsm" / "mi_fgsm.py", folder)
    assert messages(folder) == ["attack.name: attack 'mi-fgsm' is for torch, but framework is 'tf'."]
    text = ATTACK.replace('dataset = "digits"', 'dataset = "digits"\nplugins = ["no_eps"]').replace(
        '"fgsm"', '"no-eps"')
    assert messages(write(tmp_path, text, **{"no_eps.py": NO_EPS})) == [
        "attack.name: attack 'no-eps' has no 'eps' parameter: the contest sets every attack's budget through it "
        "(list eps in its spec's params)"]


def test_eps_norm_and_seed_belong_to_the_contest(tmp_path):
    text = ATTACK.replace('"fgsm"', '"fgsm"\nparams = { eps = 0.3, norm = "l2", seed = 1, mode = "predicted" }')
    assert messages(write(tmp_path, text)) == [
        "attack.params.eps: set by the contest (the recipe's [attack_track] eps), not by the attack submission",
        "attack.params.norm: set by the contest (the recipe's [attack_track] norm), not by the attack submission",
        "attack.params.seed: set by the submission's top-level seed, not in [attack] params"]
    text = ATTACK + '\n[profiles.cpu]\nattack = { params = { eps = 0.3 } }\n'
    assert messages(write(tmp_path, text)) == [
        "profiles.cpu.attack.params.eps: set by the contest (the recipe's [attack_track] eps), not by the attack "
        "submission"]


def test_the_toml_only_checks_accept_an_attack_without_a_surrogate(tmp_path):
    """What the scorer checks without importing a submission's code (its plugin modules): the schema alone."""
    folder = write(tmp_path, ATTACK)
    data = read_toml(folder / "submission.toml")
    assert check_table(data, TOP_FIELDS)[1] == [] and toml_problems(data, folder) == []
    assert submission_track(folder) == "attack" and submission_track(EXAMPLE_SUBMISSIONS / "trades") == "defense"
    data = read_toml(write(tmp_path, ATTACK.replace('track = "attack"\n', "").split("[attack]")[0]) / "submission.toml")
    assert [str(p) for p in toml_problems(data, folder)] == ["backbone: missing (required)",
                                                             "defense: missing (required)"]


def test_training_an_attack_without_a_surrogate_is_a_one_line_error(tmp_path):
    from harness.workflow import train_submission

    folder = write(tmp_path, ATTACK)
    with pytest.raises(UsageError, match=r"sub/submission.toml: attack submission 'x' has no surrogate model "
                                         r"\(\[backbone\] and \[defense\]\): nothing to train$"):
        train_submission(load_submission(folder), tmp_path / "model")
    result = CliRunner().invoke(app, ["evaluate", str(folder), "--runs", str(tmp_path / "runs")],
                                env={"COLUMNS": "300"})
    assert result.exit_code == 2 and "has no model to evaluate (no surrogate" in result.output


def test_validate_says_attack_track_and_imports_its_module_in_the_sandbox():
    from harness.sandbox.choice import PROBLEMS

    runner = CliRunner()
    sandbox = "none" if all(PROBLEMS[k]() for k in PROBLEMS) else "auto"
    result = runner.invoke(app, ["submission", "validate", str(EXAMPLE_SUBMISSIONS / "mi-fgsm"), "--sandbox", sandbox],
                           env={"COLUMNS": "300"})
    assert result.exit_code == 0 and result.output.strip().endswith("mi-fgsm (attack track)"), result.output
