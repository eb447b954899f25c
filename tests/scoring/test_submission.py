"""submission.toml: parsing, profiles, and every problem reported with its field and a suggestion."""

from __future__ import annotations


import pytest
from typer.testing import CliRunner

from harness.cli.main import app
from harness.errors import UsageError
from harness.submission import SubmissionError, content_hash, load_submission, validate_submission

from helpers import EXAMPLE_SUBMISSIONS as EXAMPLES, TEST_SUBMISSIONS as SUBMISSIONS

BASE = """
name = "x"
team = "t"
framework = "torch"
dataset = "digits"

[backbone]
name = "small-cnn"

[defense]
name = "standard"
"""


def write(tmp_path, text):
    folder = tmp_path / "sub"
    folder.mkdir(exist_ok=True)
    (folder / "submission.toml").write_text(text)
    return folder


def messages(folder):
    return [str(p) for p in validate_submission(folder)]


def test_every_example_submission_is_valid():
    folders = sorted(p.parent for p in EXAMPLES.glob("*/submission.toml"))
    assert {f.name for f in folders} >= {"trades", "wrn50-hardening"}
    for folder in folders:
        assert messages(folder) == [], folder


def test_profile_merges_over_the_base(tmp_path):
    sub = load_submission(EXAMPLES / "trades", "cpu")
    # another backbone: its params reset
    assert (sub.dataset, sub.backbone, sub.backbone_params) == ("digits", "small-cnn", {})
    assert sub.training["epochs"] == 6 and sub.training["optimizer"] == "sgd"  # merged with the base
    assert sub.defense_params == {"beta": 6.0, "eps": 0.1, "steps": 5}
    base = load_submission(EXAMPLES / "trades")
    assert base.dataset == "tiny-imagenet" and base.backbone == "wide_resnet50_2"
    assert load_submission(EXAMPLES / "wrn50-hardening", "cpu").requires_gpu


def test_malformed_toml_names_file_and_line(tmp_path):
    folder = write(tmp_path, 'name = "x"\nteam = \n')
    assert messages(folder)[0].startswith("not valid TOML: ")
    assert "line 2" in messages(folder)[0]


def test_every_problem_is_reported_with_field_and_suggestion(tmp_path):
    text = BASE.replace('name = "small-cnn"', 'name = "small-cnm"').replace('team = "t"', "team = 3")
    text += '\n[trainig]\nepochs = 1\n'
    assert messages(write(tmp_path, text)) == [
        "team: must be a string, got 3",
        "trainig: unknown field. Did you mean 'training'? Fields: name, team, framework, dataset, description, "
        "seed, plugins, dataset_params, backbone, augmentations, defense, training, profiles, track, attack",
    ]
    text = BASE.replace('name = "small-cnn"', 'name = "small-cnm"') + '[training]\nepoch = 1\nlr = -1\n'
    found = messages(write(tmp_path, text))
    assert found[0].startswith("backbone.name: Unknown backbone 'small-cnm'. Did you mean 'small-cnn'? Available: ")
    assert found[1].startswith("training.epoch: unknown training knob. Did you mean 'epochs'?")
    assert found[2] == "training: lr must be positive, got -1"


def test_missing_fields_and_bad_framework(tmp_path):
    assert messages(write(tmp_path, 'name = "x"\n')) == [
        "team: missing (required)", "framework: missing (required)", "dataset: missing (required)",
        "backbone: missing (required)", "defense: missing (required)"]
    text = BASE.replace('framework = "torch"', 'framework = "pytorch"')
    assert messages(write(tmp_path, text)) == [
        "framework: must be one of torch, tf, got 'pytorch'. Did you mean 'torch'?"]


def test_unknown_parameters_and_plugin_params_table(tmp_path):
    text = BASE.replace('name = "small-cnn"', 'name = "small-cnn"\nparams = { widht = 3 }')
    text += '\n[[augmentations]]\nname = "hflip"\nq = 0.5\n'
    assert messages(write(tmp_path, text)) == [
        "backbone.params.widht: backbone 'small-cnn' has no parameter 'widht'. Did you mean 'width'? "
        "Parameters: width, hidden, dropout",
        "augmentations[0].q: augmentation 'hflip' has no parameter 'q'. Parameters: severity, p, seed"]


def test_defense_that_does_not_fit_the_framework(tmp_path, fresh_plugins):
    from harness.plugins import get_plugin_manager
    from harness.registry import clear_cache

    get_plugin_manager().load_module("framework_variant_plugin")
    clear_cache()
    # trades exists for torch only ("standard" has a tf variant too)
    text = BASE.replace('[defense]\nname = "standard"', '[defense]\nname = "trades"\n') + \
        '\n[[augmentations]]\nname = "variant-aug"\n'
    text = text.replace('framework = "torch"', 'framework = "tf"')
    found = messages(write(tmp_path, text))
    assert "backbone.name: backbone 'small-cnn' is for torch, but framework is 'tf'." in found
    assert "defense.name: defense 'trades' is for torch, but framework is 'tf'." in found
    assert "augmentations[0].name: augmentation 'variant-aug' is for torch, but framework is 'tf'." in found


def test_profiles_are_checked_too(tmp_path):
    text = BASE + '\n[profiles.cpu]\ntraining = { epochs = 0 }\nbackbone = { params = { hiden = 3 } }\ngpus = 1\n'
    assert messages(write(tmp_path, text)) == [
        "profiles.cpu.gpus: not allowed in a profile. Profiles may set: dataset, dataset_params, backbone, "
        "augmentations, defense, training, requires_gpu, description, attack",
        "profiles.cpu.backbone.params.hiden: backbone 'small-cnn' has no parameter 'hiden'. Did you mean 'hidden'? "
        "Parameters: width, hidden, dropout",
        "profiles.cpu.training: epochs must be at least 1, got 0"]
    with pytest.raises(UsageError, match=r"no profile 'gpu'. Did you mean 'cpu'\? Profiles: cpu$"):
        load_submission(write(tmp_path, BASE + "\n[profiles.cpu]\n"), "gpu")


def test_plugin_modules_must_exist_and_import(tmp_path):
    folder = write(tmp_path, BASE.replace('dataset = "digits"', 'dataset = "digits"\nplugins = ["mine"]'))
    assert messages(folder) == [f"plugins[0]: no module 'mine' in {folder} (expected mine.py or mine/__init__.py)"]
    (folder / "mine.py").write_text("raise ImportError('no luck')\n")
    assert messages(folder) == ["plugins: module 'mine' failed to import: ImportError: no luck"]


def test_load_raises_one_line_with_the_count(tmp_path):
    folder = write(tmp_path, 'name = "x"\n')
    with pytest.raises(SubmissionError) as info:
        load_submission(folder)
    assert info.value.message == f"{folder / 'submission.toml'}: team: missing (required) (and 4 more problems)"


def test_content_hash_ignores_caches(tmp_path):
    folder = write(tmp_path, BASE)
    first = content_hash(folder)
    (folder / "__pycache__").mkdir()
    (folder / "__pycache__" / "x.pyc").write_bytes(b"123")
    assert content_hash(folder) == first
    (folder / "extra.py").write_text("x = 1\n")
    assert content_hash(folder) != first


def test_validate_command(tmp_path):
    runner = CliRunner()
    ok = runner.invoke(app, ["submission", "validate", str(SUBMISSIONS / "tiny")])
    assert ok.exit_code == 0 and "ok" in ok.output
    bad = runner.invoke(app, ["submission", "validate", str(write(tmp_path, 'name = "x"\n'))], env={"COLUMNS": "300"})
    assert bad.exit_code == 2
    assert "5 problem(s)" in bad.output and "team: missing (required)" in bad.output


TEAM_PLUGINS = '''
import torch

from harness import hookimpl
from harness.specs import AttackSpec, BackboneSpec

TEAM = "{team}"


class TeamNet(torch.nn.Module):
    team = TEAM

    def __init__(self, num_classes, input_shape, **params):
        super().__init__()
        self.linear = torch.nn.Linear(int(torch.tensor(input_shape).prod()), num_classes)

    def forward(self, x):
        return self.linear(x.flatten(1))


@hookimpl
def harness_register_backbones():
    return [BackboneSpec(name="team-net", factory=TeamNet, framework="torch", params={{"{param}": 1}})]


@hookimpl
def harness_register_attacks():
    return [AttackSpec(name="team-attack", factory=lambda **p: TEAM, framework="torch", description=TEAM)]
'''


def team_submission(tmp_path, team: str, param: str):
    """A submission whose team_plugins.py registers 'team-net' taking only ``param``, and 'team-attack'."""
    folder = tmp_path / team
    folder.mkdir()
    (folder / "team_plugins.py").write_text(TEAM_PLUGINS.format(team=team, param=param))
    text = BASE.replace('name = "x"', f'name = "{team}"').replace('dataset = "digits"', 'dataset = "digits"\n'
                                                                  'plugins = ["team_plugins"]')
    text = text.replace('name = "small-cnn"', f'name = "team-net"\nparams = {{ {param} = 2 }}')
    (folder / "submission.toml").write_text(text + "\n[training]\nepochs = 1\n")
    return folder


def test_two_submissions_with_same_named_plugin_modules_see_only_their_own(tmp_path, fresh_plugins):
    from harness.registry import get_attack, list_backbones
    from harness.submission import submission_plugins
    from harness.workflow import load_model, train_submission

    first, second = team_submission(tmp_path, "first", "width"), team_submission(tmp_path, "second", "depth")
    # validated one after the other: each backbone takes only its own parameter
    assert messages(first) == [] and messages(second) == [] and messages(first) == []
    result = CliRunner().invoke(app, ["submission", "validate", str(first), str(second), "--sandbox", "none"])
    assert result.exit_code == 0, result.output
    for folder in (first, second):
        submission = load_submission(folder)
        with submission_plugins(submission.root, submission.plugins):
            assert get_attack("team-attack").description == folder.name
        artifact = train_submission(submission, tmp_path / "runs" / folder.name, progress=False)
        assert load_model(artifact).model.team == folder.name
    assert "team-net" not in list_backbones()  # nothing left registered after the work


def extra_submission(tmp_path, augmentation: str):
    return write(tmp_path, BASE + f"\n[[augmentations]]\n{augmentation}\n\n[training]\nepochs = 1\n")


def test_thirdparty_augmentation_in_a_submission_is_validated(tmp_path, thirdparty_plugins):
    folder = extra_submission(tmp_path, 'name = "extra-invert-patch"\np = 0.5')
    assert messages(folder) == []
    result = CliRunner().invoke(app, ["submission", "validate", str(folder)])
    assert result.exit_code == 0 and "ok" in result.output, result.output
    folder = extra_submission(tmp_path, 'name = "extra-invert-patch"\nprob = 0.5')
    assert messages(folder) == ["augmentations[0].prob: augmentation 'extra-invert-patch' has no parameter 'prob'. "
                                "Parameters: severity, p"]


def test_thirdparty_augmentation_in_training(tmp_path, thirdparty_plugins):
    from harness.workflow import train_submission

    submission = load_submission(extra_submission(tmp_path, 'name = "extra-invert-patch"\nseverity = 2'))
    assert train_submission(submission, tmp_path / "run", progress=False).joinpath("model.json").is_file()


def test_thirdparty_plugins_are_seen_by_the_sandboxed_validation(tmp_path, thirdparty_plugins):
    """A submission with its own plugin modules is checked in a child: the organiser's plugin environment
    (PYTHONPATH, HARNESS_PLUGINS) goes with it, so the installed package is seen there too."""
    folder = extra_submission(tmp_path, 'name = "extra-invert-patch"\np = 0.5')
    (folder / "team_plugins.py").write_text("X = 1\n")
    text = (folder / "submission.toml").read_text().replace('dataset = "digits"',
                                                            'dataset = "digits"\nplugins = ["team_plugins"]')
    (folder / "submission.toml").write_text(text)
    result = CliRunner().invoke(app, ["submission", "validate", str(folder)], env={"COLUMNS": "300"})
    assert result.exit_code == 0 and "ok" in result.output, result.output


def test_precision_memory_format_and_compile_are_checked_where_they_are_set(tmp_path):
    text = BASE + '\n[training]\nprecision = "bf17"\nmemory_format = "nhwc"\ncompile = "yes"\n'
    assert messages(write(tmp_path, text)) == [
        "training: precision must be one of fp32, bf16, fp16, got 'bf17'. Did you mean 'bf16'?"]
    text = BASE.replace('name = "standard"', 'name = "standard"\nparams = { compile = "yes" }')
    assert messages(write(tmp_path, text)) == ["defense.params: compile must be true or false, got 'yes'"]
    text = BASE.replace('name = "standard"', 'name = "standard"\nparams = { precision = "bf16" }')
    ok = text + '\n[training]\nmemory_format = "channels_last"\ncompile = true\n'
    assert messages(write(tmp_path, ok)) == []
    assert load_submission(write(tmp_path, ok)).trainer_params()["precision"] == "bf16"
