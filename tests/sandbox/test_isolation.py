"""What a child sees under each isolation that works here (ns and landlock need no bubblewrap): a probe
script run through the same code as the scoring child reports what it could reach."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.sandbox import limits as limits_module
from harness.sandbox.child import reachable_by_others, readable_copy, run_isolated
from harness.sandbox.choice import PROBLEMS, choose_isolation
from harness.sandbox.limits import default_limits
from harness.sandbox.view import INSIDE, Bind, View, child_view

from helpers import survivors

KINDS = [pytest.param(kind, marks=pytest.mark.skipif(PROBLEMS[kind]() is not None,
                                                     reason=f"{kind} cannot run here: {PROBLEMS[kind]()}"))
         for kind in ("bwrap", "ns", "landlock")]

PROBE = r'''
import json, os, signal, socket, sys
secret, organiser = sys.argv[1], int(sys.argv[2])
status = open("/proc/self/status").read()
report = {"uid": os.getuid(), "capabilities": int(status.split("CapEff:")[1].split()[0], 16), "cwd": os.getcwd(),
          "pids": sorted(int(p) for p in os.listdir("/proc") if p.isdigit())}
def attempt(name, action):
    try:
        action()
        report[name] = True
    except OSError:
        report[name] = False
attempt("read_secret", lambda: open(secret, "rb").read())
attempt("list_secret_folder", lambda: os.listdir(os.path.dirname(secret)))
attempt("read_organiser_environ", lambda: open(f"/proc/{organiser}/environ", "rb").read())
attempt("signal_organiser", lambda: os.kill(organiser, signal.SIGCONT))
attempt("tcp", lambda: socket.create_connection(("127.0.0.1", int(sys.argv[3])), timeout=2))
attempt("write_images", lambda: open(sys.argv[4], "ab"))
attempt("write_code", lambda: open(os.path.join(os.path.dirname(json.__file__), "planted.txt"), "ab"))
attempt("write_work", lambda: open("written.txt", "w").write("ok"))
attempt("write_tmp", lambda: open(os.path.join(os.environ["TMPDIR"], "t.txt"), "w").write("ok"))
if os.path.isdir("/sandbox"):  # a mount namespace
    report["sandbox"] = sorted(os.listdir("/sandbox"))
    report["dev"] = sorted(os.listdir("/dev"))
    report["init"] = open("/proc/1/cmdline", "rb").read().decode(errors="replace")
import numpy
report["numpy"] = int(numpy.arange(4).sum())
print(json.dumps(report))
'''


@pytest.fixture
def organiser_files(tmp_path):
    """A labels file and a listening TCP socket of the organiser; the probe's scratch folder."""
    import socket

    secret = tmp_path / "organiser" / "labels.npy"
    secret.parent.mkdir()
    secret.write_bytes(b"secret labels")
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    listener.setblocking(False)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    (scratch / "images.npy").write_bytes(b"images")
    (scratch / "probe.py").write_text(PROBE)
    yield secret, listener, scratch
    listener.close()


def probe_view(scratch: Path, gpu: bool = False) -> View:
    return child_view(scratch, [Bind(str(scratch / "probe.py"), str(INSIDE / "probe.py")),
                                Bind(str(scratch / "images.npy"), str(INSIDE / "images.npy"))], gpu=gpu)


def run_probe(kind: str, secret: Path, port: int, scratch: Path, view: View) -> dict:
    isolation = choose_isolation(kind)
    inside = lambda target: view.path(target, isolation.mapped)  # noqa: E731
    command = [sys.executable, inside(INSIDE / "probe.py"), str(secret), str(os.getpid()), str(port),
               inside(INSIDE / "images.npy")]
    env = {"PATH": os.environ["PATH"], **view.home_env(isolation.mapped)}
    code = run_isolated(command, view, isolation, default_limits(60, 1), env, scratch, 60)
    assert code == 0, (scratch / "stderr.log").read_text()
    return json.loads((scratch / "stdout.log").read_text())


@pytest.mark.parametrize("kind", KINDS)
def test_child_reaches_nothing_of_the_organiser(kind, organiser_files):
    secret, listener, scratch = organiser_files
    report = run_probe(kind, secret, listener.getsockname()[1], scratch, probe_view(scratch))
    assert {key: report[key] for key in ("read_secret", "list_secret_folder", "read_organiser_environ",
                                         "signal_organiser", "tcp", "write_images", "write_code")} == dict.fromkeys(
        ("read_secret", "list_secret_folder", "read_organiser_environ", "signal_organiser", "tcp", "write_images",
         "write_code"), False)
    with pytest.raises(BlockingIOError):
        listener.accept()  # no connection arrived
    assert report["write_work"] and report["write_tmp"] and report["numpy"] == 6
    assert (scratch / "work" / "written.txt").read_text() == "ok"
    assert report["capabilities"] == 0
    if os.geteuid() == 0 and (kind != "landlock" or reachable_by_others(probe_view(scratch).readable())):
        assert report["uid"] != 0  # an unprivileged uid: limits and file permissions bite
    if kind != "landlock":  # own mount and PID namespaces
        assert report["cwd"] == "/sandbox/work" and report["sandbox"] == ["images.npy", "probe.py", "work"]
        assert report["pids"] == [1, 2] and str(scratch) not in report["init"]
        assert "nvidia0" not in report["dev"] and "sda" not in report["dev"]


@pytest.mark.skipif(PROBLEMS["ns"]() is not None or os.geteuid() != 0, reason="needs ns and root")
def test_the_user_namespace_way_in_isolates_the_same(organiser_files, monkeypatch):
    """What a user other than root gets (forced here for root: uid 0 mapped to itself, every capability dropped)."""
    secret, listener, scratch = organiser_files
    monkeypatch.setenv("HARNESS_SANDBOX_USERNS", "1")
    report = run_probe("ns", secret, listener.getsockname()[1], scratch, probe_view(scratch))
    assert not any(report[key] for key in ("read_secret", "list_secret_folder", "read_organiser_environ",
                                           "signal_organiser", "tcp", "write_images", "write_code"))
    assert report["capabilities"] == 0 and report["pids"] == [1, 2] and report["write_work"]
    assert report["sandbox"] == ["images.npy", "probe.py", "work"]


@pytest.mark.skipif(PROBLEMS["ns"]() is not None or os.geteuid() != 0, reason="needs ns and root (mknod)")
def test_gpu_device_nodes_are_bound_and_nothing_else_of_dev(organiser_files, tmp_path, monkeypatch):
    """A stand-in NVIDIA node (a character device with /dev/null's numbers) where no GPU exists."""
    secret, listener, scratch = organiser_files
    dev = tmp_path / "dev"
    (dev / "nvidia-caps").mkdir(parents=True)
    for node in (dev / "nvidia0", dev / "nvidiactl", dev / "nvidia-caps" / "nvidia-cap1"):
        os.mknod(node, 0o666 | stat.S_IFCHR, os.makedev(1, 3))
        node.chmod(0o666)
    (dev / "sda").touch()
    monkeypatch.setattr(limits_module, "DEV", dev)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert limits_module.gpu_visible()
    view = probe_view(scratch, gpu=True)
    view.binds.append(Bind(str(scratch / "probe.py"), str(INSIDE / "check.py")))
    (scratch / "probe.py").write_text(PROBE.replace('print(json.dumps(report))', '''
report["nvidia0_is_char"] = __import__("stat").S_ISCHR(os.stat("/dev/nvidia0").st_mode)
open("/dev/nvidia0", "wb").write(b"x")
report["cap"] = os.listdir("/dev/nvidia-caps")
print(json.dumps(report))'''))
    report = run_probe("ns", secret, listener.getsockname()[1], scratch, view)
    assert report["nvidia0_is_char"] and report["cap"] == ["nvidia-cap1"]
    assert "nvidia0" in report["dev"] and "nvidiactl" in report["dev"] and "sda" not in report["dev"]
    assert report["read_secret"] is False


@pytest.mark.parametrize("kind", KINDS)
def test_child_dies_with_its_organiser(kind, tmp_path):
    """SIGKILL of the organiser's process: the sandboxed command (and its own children) end too."""
    marker = f"harness-orphan-marker-{kind}"
    organiser = tmp_path / "organiser.py"
    organiser.write_text(f'''
import os, sys, time
from pathlib import Path
from harness.sandbox.child import reachable_by_others, readable_copy, run_isolated
from harness.sandbox.choice import choose_isolation
from harness.sandbox.limits import default_limits
from harness.sandbox.view import View, Bind, base_binds
scratch = Path(sys.argv[1]); (scratch / "tmp").mkdir(parents=True)
view = View(base_binds(scratch / "tmp"), cwd="/tmp")
code = "import subprocess, time; subprocess.Popen(['sleep', '300 {marker}'.split()[0]]); time.sleep(300)"
run_isolated([sys.executable, "-c", code, "{marker}"], view, choose_isolation("{kind}"), default_limits(300, 1),
             {{"PATH": os.environ["PATH"], "TMPDIR": view.path("/tmp", choose_isolation("{kind}").mapped)}},
             scratch, 300)
''')
    process = subprocess.Popen([sys.executable, str(organiser), str(tmp_path / "scratch")])
    deadline = time.monotonic() + 30
    while not survivors(marker) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert survivors(marker), "the sandboxed command never started"
    process.send_signal(signal.SIGKILL)
    process.wait()
    deadline = time.monotonic() + 10
    while survivors(marker) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert survivors(marker) == []


def test_a_submissions_symlink_to_an_organiser_file_is_copied_as_a_link(tmp_path):
    """Scoring copies the submission for the child: a link in it must not bring the target's content along
    (nor have its mode changed)."""
    secret = tmp_path / "organiser" / "labels.npy"
    secret.parent.mkdir()
    secret.write_bytes(b"secret labels")
    secret.chmod(0o600)
    submission = tmp_path / "submission"
    submission.mkdir()
    (submission / "submission.toml").write_text('name = "x"\n')
    (submission / "labels.npy").symlink_to(secret)
    readable_copy(submission, tmp_path / "copy")
    copied = tmp_path / "copy" / "labels.npy"
    assert copied.is_symlink() and os.readlink(copied) == str(secret)
    assert secret.stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "copy" / "submission.toml").stat().st_mode & 0o444 == 0o444
