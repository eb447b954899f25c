"""harness submission new: choices checked against the registry, folders never overwritten, output valid."""

from __future__ import annotations

import pytest

from harness.errors import PluginError, UsageError
from harness.scaffold import new_submission
from harness.submission import load_submission, validate_submission


@pytest.mark.parametrize("framework", ["torch", "tf"])
@pytest.mark.parametrize("with_plugin", [False, True])
def test_new_submission_validates_with_cpu_and_gpu_profiles(tmp_path, framework, with_plugin):
    folder = new_submission("alpha", out=tmp_path, framework=framework, with_plugin=with_plugin)
    assert validate_submission(folder) == []
    cpu = load_submission(folder, "cpu")
    assert cpu.framework == framework and cpu.dataset == "digits" and cpu.training["epochs"] <= 3
    assert load_submission(folder, "gpu").requires_gpu
    assert (folder / "team_plugins.py").is_file() == with_plugin
    assert (folder / "test_team_plugins.py").is_file() == with_plugin
    if with_plugin:
        assert cpu.plugins == ("team_plugins",) and cpu.backbone == "alpha-cnn"
        assert cpu.augmentations[0]["name"] == "alpha-invert"
        assert cpu.defense == ("alpha-noisy-training" if framework == "torch" else "standard")


def test_every_top_level_field_is_written_or_commented(tmp_path):
    from harness.submission import PROFILE_FIELDS, TOP_FIELDS

    text = (new_submission("alpha", out=tmp_path) / "submission.toml").read_text()
    for name in list(TOP_FIELDS) + list(PROFILE_FIELDS):
        assert name in text, name


def test_chosen_backbone_and_defense_are_used(tmp_path):
    folder = new_submission("beta", out=tmp_path, framework="tf", backbone="nsl-cnn",
                           defense="nsl-adversarial-regularization")
    loaded = load_submission(folder, "cpu")
    assert (loaded.backbone, loaded.defense) == ("nsl-cnn", "nsl-adversarial-regularization")


def test_unknown_backbone_is_a_did_you_mean_error(tmp_path):
    with pytest.raises(PluginError, match="Did you mean 'small-cnn'"):
        new_submission("alpha", out=tmp_path, backbone="small-cnm")
    assert not (tmp_path / "alpha").exists()


def test_backbone_of_another_framework_is_an_error(tmp_path):
    with pytest.raises(UsageError, match="--backbone 'small-cnn' is a torch backbone, not a tf one"):
        new_submission("alpha", out=tmp_path, framework="tf", backbone="small-cnn")


def test_bad_framework_and_name_are_errors(tmp_path):
    with pytest.raises(UsageError, match="--framework 'tourch'.*Did you mean 'torch'"):
        new_submission("alpha", out=tmp_path, framework="tourch")
    with pytest.raises(UsageError, match="submission name '../x'"):
        new_submission("../x", out=tmp_path)


def test_an_existing_folder_is_never_overwritten(tmp_path):
    (tmp_path / "alpha").mkdir()
    (tmp_path / "alpha" / "mine.txt").write_text("keep")
    with pytest.raises(UsageError, match="already exists"):
        new_submission("alpha", out=tmp_path)
    assert [p.name for p in (tmp_path / "alpha").iterdir()] == ["mine.txt"]



def test_cli_new_and_pack(tmp_path):
    from typer.testing import CliRunner

    from harness.cli.main import app

    runner = CliRunner()
    created = runner.invoke(app, ["submission", "new", "alpha", "--framework", "tf", "--out", str(tmp_path)])
    assert created.exit_code == 0 and (tmp_path / "alpha" / "submission.toml").is_file()
    again = runner.invoke(app, ["submission", "new", "alpha", "--out", str(tmp_path)])
    assert again.exit_code == 2 and "already exists" in again.output
    wrong = runner.invoke(app, ["submission", "new", "beta", "--backbone", "nsl-cnn", "--out", str(tmp_path)])
    assert wrong.exit_code == 2 and "is a tf backbone, not a torch one" in wrong.output
    packed = runner.invoke(app, ["submission", "pack", str(tmp_path / "alpha"), "--out", str(tmp_path)])
    assert packed.exit_code == 0 and len(list(tmp_path.glob("alpha-*.tar.gz"))) == 1
