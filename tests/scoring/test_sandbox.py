"""Sandbox selection, child limits and ``harness doctor`` (fast: no framework in the child)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from harness.cli.main import app
from harness.errors import UsageError
from harness.scoring import sandbox
from harness.scoring.sandbox import Limits, bwrap_problem, choose_isolation, preexec


@pytest.fixture
def no_bwrap(monkeypatch):
    bwrap_problem.cache_clear()
    monkeypatch.setattr(sandbox.shutil, "which", lambda name: None)
    yield
    bwrap_problem.cache_clear()


def test_auto_falls_back_to_a_plain_process_with_the_reason(no_bwrap):
    isolation = choose_isolation("auto")
    assert isolation.kind == "process" and "bwrap not found" in isolation.reason


def test_sandbox_bwrap_fails_loudly_when_it_cannot_run(no_bwrap, tmp_path):
    with pytest.raises(UsageError, match="--sandbox bwrap: bwrap not found"):
        choose_isolation("bwrap")
    result = CliRunner().invoke(app, ["score", str(tmp_path), "--split", str(tmp_path), "--sandbox", "bwrap"])
    assert result.exit_code == 2 and "Error: --sandbox bwrap: bwrap not found" in result.output
    assert "Traceback" not in result.output


def test_unknown_sandbox_is_a_usage_error(tmp_path):
    result = CliRunner().invoke(app, ["score", str(tmp_path), "--split", str(tmp_path), "--sandbox", "docker"])
    assert result.exit_code == 2 and "--sandbox 'docker': expected one of auto, bwrap, process" in result.output


def test_process_is_always_available():
    assert choose_isolation("process").kind == "process"


def test_doctor_reports_isolation_and_why():
    result = CliRunner().invoke(app, ["doctor"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    expected = "isolation" if bwrap_problem() else "bwrap: bubblewrap runs here"
    assert expected in result.output and "torch" in result.output and "gpu" in result.output


def test_child_limits_are_set_between_fork_and_exec():
    limits = Limits(cpu_seconds=77, memory_bytes=3 << 30, open_files=321, processes=50, file_bytes=1 << 30)
    out = subprocess.run([sys.executable, "-c", "import os, resource as r; print(os.getpid() == os.getpgid(0), "
                          "r.getrlimit(r.RLIMIT_CPU), r.getrlimit(r.RLIMIT_AS)[0], r.getrlimit(r.RLIMIT_NOFILE), "
                          "r.getrlimit(r.RLIMIT_FSIZE)[0])"],
                         preexec_fn=preexec(limits), capture_output=True, text=True, check=True).stdout.split(" ", 1)
    assert out[0] == "True"  # its own process group (and session)
    assert out[1].strip() == f"(77, 82) {3 << 30} (321, 321) {1 << 30}"


@pytest.mark.skipif(bwrap_problem() is not None, reason=f"needs bubblewrap: {bwrap_problem()}")
def test_bwrap_child_sees_no_network_and_no_organiser_files(tmp_path):
    secret = tmp_path / "organiser" / "labels.npy"
    secret.parent.mkdir()
    secret.write_bytes(b"secret")
    work, tmp, sub = tmp_path / "work", tmp_path / "tmp", tmp_path / "sub"
    for folder in (work, tmp, sub):
        folder.mkdir()
    images = tmp_path / "images.npy"
    images.write_bytes(b"x")
    probe = ("import os, socket, pathlib\n"
             f"print(os.path.exists({str(secret)!r}), os.path.exists({str(tmp_path / 'organiser')!r}))\n"
             "try:\n    socket.create_connection(('1.1.1.1', 53), timeout=2); print('net')\n"
             "except OSError:\n    print('no-net')\n"
             "print(os.getcwd(), sorted(p.name for p in pathlib.Path('/sandbox').iterdir()))\n"
             "print(open('/proc/1/cmdline').read().split(chr(0))[1:3])\n"
             "for path in ('/sandbox/images.npy', '/sandbox/x', '/x'):\n    try:\n        open(path, 'ab')\n"
             "    except OSError:\n        print('read-only', path)\n")
    command = sandbox.bwrap_command([sys.executable, "-c", probe], submission=sub, images=images, work=work, tmp=tmp,
                                    artifact=None, extra_ro={})
    command, fd = sandbox.hidden_arguments(command)
    try:
        lines = subprocess.run(command, capture_output=True, text=True, check=True, pass_fds=(fd,)).stdout.splitlines()
    finally:
        os.close(fd)
    assert lines == ["False False", "no-net", "/sandbox/work ['images.npy', 'submission', 'work']",
                     f"['--args', '{fd}']",
                     "read-only /sandbox/images.npy", "read-only /sandbox/x", "read-only /x"]


def test_tmp_is_bound_before_the_code(tmp_path):
    """A checkout or virtual environment under /tmp stays visible inside the sandbox (found on a fresh clone)."""
    from harness.scoring.sandbox import bwrap_command, code_paths

    command = bwrap_command(["true"], submission=tmp_path, images=tmp_path / "images.npy", work=tmp_path / "w",
                            tmp=tmp_path / "t", artifact=None, extra_ro=[])
    tmp_bind = command.index("/tmp") - 2
    assert command[tmp_bind:tmp_bind + 3] == ["--bind", str(tmp_path / "t"), "/tmp"]
    for path in code_paths():
        assert command.index(str(path)) > tmp_bind
