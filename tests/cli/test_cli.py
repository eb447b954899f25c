"""Every CLI command through typer's CliRunner, plus start-up checks in a real subprocess."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from harness import __version__
from harness.cli.main import app
from helpers import make_tiny_imagenet

runner = CliRunner()


def invoke(*args: str, **env: str):
    return runner.invoke(app, list(args), env={"COLUMNS": "200", **env})


def test_version():
    result = invoke("--version")
    assert result.exit_code == 0 and result.output.strip() == f"harness {__version__}"


def test_help_lists_command_groups():
    result = invoke("--help")
    assert result.exit_code == 0
    for command in ("plugins", "data"):
        assert command in result.output


def test_plugins_lists_builtins_by_kind():
    result = invoke("plugins")
    assert result.exit_code == 0, result.output
    for kind, name in [("dataset", "digits"), ("dataset", "tiny-imagenet"), ("backbone", "small-cnn")]:
        assert any(kind in line and name in line for line in result.output.splitlines()), (kind, name)
    assert "harness" in result.output and __version__ in result.output


def test_plugins_filters():
    result = invoke("plugins", "datasets", "--pattern", "t*")
    assert result.exit_code == 0
    assert "tiny-imagenet" in result.output and "digits" not in result.output
    assert "1 plugins" in result.output
    result = invoke("plugins", "backbone", "--framework", "tf")
    assert "small-cnn" not in result.output


def test_plugins_unknown_kind_is_one_line_exit_2():
    result = invoke("plugins", "atack")
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines == ["Error: Unknown plugin kind 'atack'. Did you mean 'attack'? "
                     "Kinds: dataset, backbone, augmentation, attack, defense"]
    assert "Traceback" not in result.output


def test_data_prepare_and_info_digits(cache_dir):
    result = invoke("data", "prepare", "digits", "--no-progress")
    assert result.exit_code == 0, result.output
    assert "digits: 10 classes, 8x8x1 uint8" in result.output and "train" in result.output
    result = invoke("data", "info", "digits")
    assert result.exit_code == 0 and "checksums: verified" in result.output
    result = invoke("data", "info")
    assert result.exit_code == 0 and "digits" in result.output and "8x8x1" in result.output


def test_data_prepare_tiny_imagenet_with_skip_bad(cache_dir, tmp_path):
    tiny = make_tiny_imagenet(tmp_path)
    bad = tiny / "train" / "n01443537" / "images" / "n01443537_3.JPEG"
    bad.write_bytes(b"\xff\xd8\xff garbage")
    result = invoke("data", "prepare", "tiny-imagenet", "--source", str(tiny), "--no-progress")
    assert result.exit_code == 2
    assert result.output.splitlines()[0].startswith(f"Error: {bad}:")
    result = invoke("data", "prepare", "tiny-imagenet", "--source", str(tiny), "--skip-bad", "--no-progress")
    assert result.exit_code == 0, result.output
    assert "1 bad images skipped" in result.output
    result = invoke("data", "info", "tiny-imagenet", "--source", str(tiny))
    assert "class 0, synonym 0" in result.output


def test_data_prepare_with_params(cache_dir, tmp_path):
    from helpers import write_image

    for c in ("a", "b"):
        for i in range(4):
            write_image(tmp_path / "imgs" / c / f"{i}.png", size=(10, 10), seed=i)
    result = invoke("data", "prepare", "image-folder", "-s", str(tmp_path / "imgs"), "-p", "image_size=6",
                    "-p", "test_fraction=0", "--no-progress")
    assert result.exit_code == 0, result.output
    assert "6x6x3" in result.output
    result = invoke("data", "prepare", "image-folder", "-s", str(tmp_path / "imgs"), "-p", "image_sise=6")
    assert result.exit_code == 2
    assert "has no parameter 'image_sise'. Did you mean 'image_size'?" in result.output
    result = invoke("data", "prepare", "image-folder", "-p", "oops")
    assert result.exit_code == 2 and "--param 'oops': expected KEY=VALUE" in result.output


def test_data_info_of_unprepared_dataset(cache_dir):
    result = invoke("data", "info", "digits")
    assert result.exit_code == 2
    assert "Dataset 'digits' is not prepared" in result.output and "harness data prepare digits" in result.output


def test_debug_shows_traceback(cache_dir):
    result = invoke("data", "info", "digits", HARNESS_DEBUG="1")
    assert result.exit_code != 0 and result.exception is not None
    assert type(result.exception).__name__ == "DataError"


def _run(code: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "COLUMNS": "120"}
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)


def test_help_and_import_never_import_frameworks():
    code = (
        "import sys\n"
        "import harness, harness.registry, harness.data\n"
        "from harness.cli.main import app\n"
        "try:\n    app(['--help'])\nexcept SystemExit:\n    pass\n"
        "app(['plugins'], standalone_mode=False)\n"
        "print(sorted(m for m in ('torch', 'tensorflow', 'torchvision', 'keras') if m in sys.modules))\n"
    )
    result = _run(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_console_script_runs():
    script = os.path.join(os.path.dirname(sys.executable), "harness")
    if not os.path.exists(script):
        pytest.skip("console script not installed in this environment")
    result = subprocess.run([script, "plugins", "atack"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and "Did you mean 'attack'" in result.stderr


def test_errors_are_handled_once_at_the_root_for_every_command(monkeypatch):
    from harness.cli import doctor_cmd

    def broken() -> list:
        raise RuntimeError("boom")

    monkeypatch.setattr(doctor_cmd, "facts", broken)
    result = invoke("doctor")
    assert result.exit_code == 1
    assert [line for line in result.output.splitlines() if line.strip()] == [
        "Error: unexpected RuntimeError: boom", "Hint: rerun with HARNESS_DEBUG=1 for the traceback"]
    result = invoke("doctor", HARNESS_DEBUG="1")
    assert isinstance(result.exception, RuntimeError)
    result = invoke("plot", "curves", "--bogus")  # click's own usage errors pass through unchanged
    assert result.exit_code == 2 and "No such option" in result.output and "unexpected" not in result.output


@pytest.mark.parametrize("args", [("plugins",), ("doctor",), ("data", "info"), ("data", "info", "digits")])
def test_tables_fit_80_columns_without_ellipses(cache_dir, args):
    if args[0] == "data":
        assert runner.invoke(app, ["data", "prepare", "digits"]).exit_code == 0
    result = runner.invoke(app, list(args), env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    assert "…" not in result.output and max(map(len, result.output.splitlines())) <= 80, result.output
