"""Sandbox selection (auto = bwrap, ns, landlock, else refuse), child limits and ``harness doctor``."""

from __future__ import annotations

import subprocess
import sys

import pytest
from typer.testing import CliRunner

from harness.cli.main import app
from harness.errors import UsageError
from harness.sandbox import choice
from harness.sandbox.choice import bwrap_problem, choose_isolation, ns_problem
from harness.sandbox.limits import Limits, preexec


@pytest.fixture
def no_bwrap(monkeypatch):
    bwrap_problem.cache_clear()
    monkeypatch.setattr(choice.shutil, "which", lambda name: None)
    yield
    bwrap_problem.cache_clear()


@pytest.fixture
def nothing_isolates(monkeypatch, no_bwrap):
    monkeypatch.setitem(choice.PROBLEMS, "ns", lambda: "namespaces refused here (unshare: Operation not permitted)")
    monkeypatch.setitem(choice.PROBLEMS, "landlock", lambda: "Landlock not supported by this kernel")


@pytest.mark.skipif(ns_problem() is not None, reason=f"namespaces refused here: {ns_problem()}")
def test_auto_takes_the_namespace_sandbox_without_bwrap(no_bwrap):
    isolation = choose_isolation("auto")
    assert isolation.kind == "ns" and isolation.mapped and "no network" in isolation.reason


def test_auto_falls_back_to_landlock_when_namespaces_are_refused(monkeypatch, no_bwrap):
    monkeypatch.setitem(choice.PROBLEMS, "ns", lambda: "namespaces refused here")
    monkeypatch.setitem(choice.PROBLEMS, "landlock", lambda: None)
    isolation = choose_isolation("auto")
    assert isolation.kind == "landlock" and not isolation.mapped


def test_auto_refuses_when_nothing_isolates_and_says_what_to_do(nothing_isolates):
    with pytest.raises(UsageError) as caught:
        choose_isolation("auto")
    message = caught.value.message
    assert message.startswith("no isolation works on this machine (bwrap: bwrap not found")
    assert "ns: namespaces refused here" in message and "landlock: Landlock not supported" in message
    assert "install bubblewrap" in caught.value.hint and "--sandbox none" in caught.value.hint


def test_score_refuses_before_anything_runs_when_nothing_isolates(nothing_isolates, tmp_path):
    (tmp_path / "sub").mkdir()
    result = CliRunner().invoke(app, ["score", str(tmp_path / "sub"), "--split", str(tmp_path),
                                      "--db", str(tmp_path / "db.sqlite")])
    assert result.exit_code == 2 and "Error: no isolation works on this machine" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "db.sqlite").exists()


def test_a_named_sandbox_fails_loudly_when_it_cannot_run(no_bwrap, tmp_path):
    with pytest.raises(UsageError, match="--sandbox bwrap: bwrap not found"):
        choose_isolation("bwrap")
    result = CliRunner().invoke(app, ["score", str(tmp_path), "--split", str(tmp_path), "--sandbox", "bwrap"])
    assert result.exit_code == 2 and "Error: --sandbox bwrap: bwrap not found" in result.output
    assert "Traceback" not in result.output


def test_unknown_and_renamed_sandboxes_are_usage_errors(tmp_path):
    result = CliRunner().invoke(app, ["score", str(tmp_path), "--split", str(tmp_path), "--sandbox", "docker"])
    assert result.exit_code == 2
    assert "--sandbox 'docker': expected one of auto, bwrap, ns, landlock, none" in result.output
    with pytest.raises(UsageError, match="--sandbox process is now called --sandbox none"):
        choose_isolation("process")


def test_none_is_always_available_and_says_it_isolates_nothing(nothing_isolates):
    isolation = choose_isolation("none")
    assert isolation.kind == "none" and "no isolation" in isolation.reason and not isolation.mapped


def test_doctor_lists_every_layer():
    result = CliRunner().invoke(app, ["doctor"], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    for layer in ("isolation", "bwrap", "ns", "landlock", "uid switch", "network", "torch", "gpu"):
        assert f"│ {layer} " in result.output, layer
    expected = "works (--sandbox ns)" if ns_problem() is None else ns_problem()
    assert expected in result.output


def test_doctor_says_scoring_is_refused_when_nothing_isolates(nothing_isolates):
    result = CliRunner().invoke(app, ["doctor"], env={"COLUMNS": "250"})
    assert result.exit_code == 0 and "NONE: no isolation works on this machine" in result.output


def test_child_limits_are_set_between_fork_and_exec():
    limits = Limits(cpu_seconds=77, memory_bytes=3 << 30, open_files=321, processes=50, file_bytes=1 << 30)
    out = subprocess.run([sys.executable, "-c", "import os, resource as r; print(os.getpid() == os.getpgid(0), "
                          "r.getrlimit(r.RLIMIT_CPU), r.getrlimit(r.RLIMIT_AS)[0], r.getrlimit(r.RLIMIT_NOFILE), "
                          "r.getrlimit(r.RLIMIT_FSIZE)[0])"],
                         preexec_fn=preexec(limits), capture_output=True, text=True, check=True).stdout.split(" ", 1)
    assert out[0] == "True"  # its own process group (and session)
    assert out[1].strip() == f"(77, 82) {3 << 30} (321, 321) {1 << 30}"
