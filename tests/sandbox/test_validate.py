"""``harness submission validate`` imports a submission's own plugin modules only in a sandboxed child."""

from __future__ import annotations

import shutil
import sys

import pytest
from typer.testing import CliRunner

from harness.cli.main import app
from harness.sandbox.choice import PROBLEMS

from helpers import TEST_SUBMISSIONS

pytestmark = pytest.mark.skipif(all(PROBLEMS[k]() for k in PROBLEMS), reason="no isolation works here")


@pytest.fixture
def planted(tmp_path):
    """snoop, whose plugin module writes a marker file of the organiser's at import time."""
    folder = tmp_path / "snoop"
    shutil.copytree(TEST_SUBMISSIONS / "snoop", folder, ignore=shutil.ignore_patterns("__pycache__"))
    marker = tmp_path / "organiser" / "imported.txt"
    marker.parent.mkdir()
    module = folder / "snoop_plugin.py"
    module.write_text(f"try:\n    open({str(marker)!r}, 'a').write('imported at import time\\n')\n"
                      "except OSError:\n    pass\n" + module.read_text())
    return folder, marker


def validate(*args: str):
    return CliRunner().invoke(app, ["submission", "validate", *args], env={"COLUMNS": "200"})


def test_plugin_modules_are_imported_only_in_the_sandbox(planted):
    folder, marker = planted
    result = validate(str(folder))
    assert result.exit_code == 0 and f"ok {folder}" in result.output, result.output
    assert not marker.exists()  # its import-time code ran, but could not reach the organiser's folder
    assert "snoop_plugin" not in sys.modules


def test_sandbox_none_imports_them_here_as_asked(planted):
    folder, marker = planted
    result = validate(str(folder), "--sandbox", "none")
    assert result.exit_code == 0 and marker.read_text() == "imported at import time\n"


def test_problems_found_in_the_sandbox_name_the_organisers_folder(planted):
    folder, _ = planted
    text = (folder / "submission.toml").read_text().replace('name = "snoop-fit"', 'name = "snoop-fitt"')
    (folder / "submission.toml").write_text(text)
    (folder / "broken").mkdir()
    (folder / "broken" / "submission.toml").write_text(text.replace('"snoop_plugin"', '"broken_plugin"'))
    (folder / "broken" / "broken_plugin.py").write_text("raise RuntimeError('no luck')\n")
    result = validate(str(folder), str(folder / "broken"))
    assert result.exit_code == 2
    assert "defense.name: Unknown defense 'snoop-fitt'. Did you mean 'snoop-fit'?" in result.output, result.output
    assert "failed to import: RuntimeError: no luck" in result.output
    assert "/sandbox" not in result.output
