"""Landlock + seccomp confinement: each test confines a fresh Python child, never pytest itself."""

from __future__ import annotations

import os
import platform
import signal
import site
import socket
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

import harness.sandbox.landlock as landlock
from harness.sandbox.landlock import RUNTIME_READ, RUNTIME_WRITE, landlock_problem

pytestmark = pytest.mark.skipif(landlock_problem() is not None, reason=str(landlock_problem()))

REPO = str(Path(landlock.__file__).resolve().parents[2])
SYSTEM_READ = ["/usr", "/lib", "/lib64", "/bin", "/etc"]
PYTHON_READ = sorted({sys.base_prefix, sys.prefix, *site.getsitepackages()})
BASE_READ = [*SYSTEM_READ, *PYTHON_READ, *RUNTIME_READ]

PRELUDE = """\
import os, sys
sys.path.insert(0, {repo!r})
from harness.sandbox.landlock import restrict

def attempt(name, action):
    try:
        value = action()
    except OSError as err:
        print(f"{{name}}: {{type(err).__name__}} errno={{err.errno}}", flush=True)
    else:
        print(f"{{name}}: ok {{value!r}}"[:300], flush=True)

if {confine!r}:
    restrict({read!r}, {write!r})
"""


def run_child(body: str, read=(), write=(), *, confine=True, timeout=60, env=None) -> dict[str, str]:
    """Run ``body`` in a fresh Python after ``restrict(read, write)``; its ``attempt`` lines as a dict."""
    script = PRELUDE.format(repo=REPO, confine=confine, read=[str(p) for p in read], write=[str(p) for p in write])
    script += textwrap.dedent(body)
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=timeout, env=env, cwd="/"
    )
    assert proc.returncode == 0, proc.stderr
    results = {}
    for line in proc.stdout.splitlines():
        name, _, outcome = line.partition(": ")
        results[name] = outcome
    return results


def denied(outcome: str) -> bool:
    return outcome.startswith("PermissionError")


@pytest.fixture
def secrets(tmp_path) -> Path:
    """An organiser file the child must not see: a labels.npy in a folder outside every rule."""
    folder = tmp_path / "organiser"
    folder.mkdir()
    (folder / "labels.npy").write_bytes(b"\x93NUMPY secret labels")
    return folder


FILE_PROBE = """
attempt("read", lambda: open({labels!r}, "rb").read()[:6])
attempt("list", lambda: os.listdir({folder!r}))
attempt("write", lambda: open({folder!r} + "/new.txt", "w").write("x"))
attempt("overwrite", lambda: open({labels!r}, "r+b").write(b"x"))
"""


def test_outside_file_cannot_be_read_listed_or_written(secrets):
    labels = str(secrets / "labels.npy")
    results = run_child(FILE_PROBE.format(labels=labels, folder=str(secrets)), BASE_READ)
    assert all(denied(results[name]) for name in ("read", "list", "write", "overwrite")), results
    assert (secrets / "labels.npy").read_bytes() == b"\x93NUMPY secret labels"
    assert not (secrets / "new.txt").exists()


def test_same_probe_without_restrict_reads_the_labels(secrets):
    """The probe is not vacuous: unconfined, every attempt above succeeds."""
    labels = str(secrets / "labels.npy")
    results = run_child(FILE_PROBE.format(labels=labels, folder=str(secrets)), confine=False)
    assert results["read"] == "ok b'\\x93NUMPY'", results
    assert all(results[name].startswith("ok") for name in ("list", "write", "overwrite")), results


def test_read_path_is_readable_not_writable(tmp_path, secrets):
    code = tmp_path / "code"
    code.mkdir()
    (code / "model.py").write_text("WEIGHTS = 1\n")
    single = tmp_path / "single.txt"
    single.write_text("one file\n")
    results = run_child(
        f"""
        attempt("read", lambda: open({str(code / "model.py")!r}).read())
        attempt("list", lambda: os.listdir({str(code)!r}))
        attempt("single file", lambda: open({str(single)!r}).read())
        attempt("append", lambda: open({str(code / "model.py")!r}, "a").write("x"))
        attempt("create", lambda: open({str(code / "new.py")!r}, "w").write("x"))
        attempt("remove", lambda: os.remove({str(code / "model.py")!r}))
        attempt("sibling", lambda: open({str(secrets / "labels.npy")!r}, "rb").read())
        """,
        [*BASE_READ, code, single, tmp_path / "does-not-exist"],  # missing paths are skipped
    )
    assert results["read"] == "ok 'WEIGHTS = 1\\n'"
    assert results["list"] == "ok ['model.py']"
    assert results["single file"] == "ok 'one file\\n'"
    assert all(denied(results[name]) for name in ("append", "create", "remove", "sibling")), results
    assert (code / "model.py").read_text() == "WEIGHTS = 1\n"


def test_write_folder_accepts_files_and_folders(tmp_path, secrets):
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    results = run_child(
        f"""
        import subprocess
        s = {str(scratch)!r}
        attempt("mkdir", lambda: os.makedirs(s + "/a/b"))
        attempt("write", lambda: open(s + "/a/b/out.txt", "w").write("result"))
        attempt("truncate", lambda: os.truncate(s + "/a/b/out.txt", 3))
        attempt("rename", lambda: os.rename(s + "/a/b/out.txt", s + "/a/out.txt"))
        attempt("remove dir", lambda: os.rmdir(s + "/a/b"))
        attempt("devnull", lambda: open("/dev/null", "w").write("x"))
        # a grandchild inherits the confinement
        attempt("grandchild", lambda: subprocess.run(
            [sys.executable, "-c", "open({str(secrets / "labels.npy")!r}).read()"],
            capture_output=True).returncode)
        """,
        BASE_READ,
        [scratch, *RUNTIME_WRITE],
    )
    for name in ("mkdir", "write", "truncate", "rename", "remove dir"):
        assert results[name].startswith("ok"), (name, results)
    assert results["devnull"] == "ok 1"
    assert results["grandchild"] == "ok 1", results
    assert (scratch / "a" / "out.txt").read_text() == "res"


def test_tcp_connect_to_a_local_listener_fails(tmp_path):
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    port = listener.getsockname()[1]
    try:
        results = run_child(
            f"""
            import socket
            attempt("new socket", lambda: socket.create_connection(("127.0.0.1", {port}), timeout=2))
            """,
            BASE_READ,
        )
        # Landlock's own TCP rule, for a socket made before restrict() (seccomp stops new ones).
        landlock_only = run_child(
            f"""
            import socket
            early = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            restrict({BASE_READ!r}, [])
            attempt("early socket", lambda: early.connect(("127.0.0.1", {port})))
            """,
            confine=False,
        )
        listener.settimeout(0.2)
        with pytest.raises(socket.timeout):
            listener.accept()
    finally:
        listener.close()
    assert denied(results["new socket"]), results
    assert denied(landlock_only["early socket"]), landlock_only


def test_socket_families_fail_but_socketpair_works(tmp_path):
    path = str(tmp_path / "organiser.sock")
    abstract = "\0harness-test-" + uuid.uuid4().hex
    servers = []
    for address in (path, abstract):
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(address)
        server.listen(1)
        servers.append(server)
    try:
        results = run_child(
            f"""
            import socket
            def connect(address):
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.connect(address)
            def pair():
                a, b = socket.socketpair()
                a.sendall(b"ping")
                return b.recv(4)
            attempt("udp", lambda: socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
            attempt("raw", lambda: socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP))
            attempt("netlink", lambda: socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0))
            attempt("ipv6", lambda: socket.socket(socket.AF_INET6, socket.SOCK_STREAM))
            attempt("unix path", lambda: connect({path!r}))
            attempt("unix abstract", lambda: connect({abstract!r}))
            attempt("socketpair", pair)
            """,
            [*BASE_READ, tmp_path],
        )
        # Landlock's abstract-socket scope, for a socket made before restrict().
        landlock_only = run_child(
            f"""
            import socket
            early = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            restrict({BASE_READ!r}, [])
            attempt("early abstract", lambda: early.connect({abstract!r}))
            """,
            confine=False,
        )
        for server in servers:
            server.settimeout(0.1)
            with pytest.raises(socket.timeout):
                server.accept()
    finally:
        for server in servers:
            server.close()
    for name in ("udp", "raw", "netlink", "ipv6", "unix path", "unix abstract"):
        assert results[name] == "PermissionError errno=13", (name, results)
    assert results["socketpair"] == "ok b'ping'"
    assert denied(landlock_only["early abstract"]), landlock_only


def test_io_uring_setup_fails():
    results = run_child(
        """
        import ctypes
        libc = ctypes.CDLL(None, use_errno=True)
        params = ctypes.create_string_buffer(120)
        def setup():
            if libc.syscall(425, 4, params) < 0:
                raise OSError(ctypes.get_errno(), "io_uring_setup")
        attempt("io_uring", setup)
        """,
        BASE_READ,
    )
    assert results["io_uring"] == "PermissionError errno=13", results  # EACCES: the filter, not the kernel


@pytest.mark.skipif(platform.machine() != "x86_64", reason="x32 syscalls exist on x86_64 only")
def test_x32_syscall_kills_the_process():
    """Syscalls of a foreign ABI (here x32's socket) could dodge the number checks: killed."""
    script = PRELUDE.format(repo=REPO, confine=True, read=BASE_READ, write=[]) + textwrap.dedent(
        """
        import ctypes
        ctypes.CDLL(None).syscall(0x40000000 | 41, 2, 2, 0)
        print("survived")
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=30)
    assert proc.returncode == -signal.SIGSYS, (proc.returncode, proc.stdout, proc.stderr)


def test_signals_to_the_parent_fail():
    parent = os.getpid()
    results = run_child(
        f"""
        import signal
        attempt("probe", lambda: os.kill({parent}, 0))
        attempt("sigcont", lambda: os.kill({parent}, signal.SIGCONT))
        attempt("own", lambda: os.kill(os.getpid(), 0))
        """,
        BASE_READ,
    )
    assert results["probe"] == "PermissionError errno=1", results
    assert results["sigcont"] == "PermissionError errno=1", results
    assert results["own"] == "ok None"


def test_parent_proc_files_and_ptrace_fail():
    """/proc is readable (RUNTIME_READ), but not the parent's environ, maps, mem, nor ptrace."""
    parent = os.getpid()
    body = f"""
        import ctypes
        attempt("environ", lambda: open("/proc/{parent}/environ", "rb").read(10))
        attempt("maps", lambda: open("/proc/{parent}/maps").read(10))
        attempt("mem", lambda: open("/proc/{parent}/mem", "rb"))
        attempt("own maps", lambda: len(open("/proc/self/maps").read()) > 0)
        """
    results = run_child(
        body
        + f"""
        libc = ctypes.CDLL(None, use_errno=True)
        def attach():
            if libc.ptrace(16, {parent}, None, None) != 0:  # PTRACE_ATTACH
                raise OSError(ctypes.get_errno(), "ptrace")
            libc.ptrace(17, {parent}, None, None)  # PTRACE_DETACH, should it ever succeed
        attempt("ptrace", attach)
        """,
        BASE_READ,
    )
    for name in ("environ", "maps", "mem", "ptrace"):
        assert denied(results[name]), (name, results)
    assert results["own maps"] == "ok True"
    unconfined = run_child(body, confine=False)
    assert unconfined["environ"].startswith("ok"), unconfined  # the same reads work without restrict()


def test_capabilities_are_dropped():
    """A root child keeping CAP_SYS_ADMIN/CAP_PERFMON could read other processes' environ and maps."""
    results = run_child(
        """
        status = dict(line.split(":\t") for line in open("/proc/self/status").read().splitlines() if ":\t" in line)
        attempt("caps", lambda: [int(status[k], 16) for k in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")])
        attempt("no_new_privs", lambda: status["NoNewPrivs"])
        """,
        BASE_READ,
    )
    assert results == {"caps": "ok [0, 0, 0, 0, 0]", "no_new_privs": "ok '1'"}


def test_numpy_and_torch_work_with_the_runtime_paths(tmp_path):
    pytest.importorskip("torch")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    results = run_child(
        """
        import numpy as np
        attempt("numpy", lambda: (np.arange(6.0).reshape(2, 3) @ np.ones(3)).tolist())
        import torch
        attempt("torch", lambda: (torch.ones(2) @ torch.ones(2)).item())
        """,
        BASE_READ,
        [scratch, *RUNTIME_WRITE],
        env={**os.environ, "TMPDIR": str(scratch)},
    )
    assert results == {"numpy": "ok [3.0, 12.0]", "torch": "ok 2.0"}


def test_restrict_refuses_a_threaded_process():
    results = run_child(
        """
        import threading, time
        threading.Thread(target=time.sleep, args=(1,), daemon=True).start()
        try:
            restrict([], [])
        except RuntimeError as err:
            print("threads: refused", flush=True)
        attempt("root", lambda: len(os.listdir("/")) > 0)
        """,
        confine=False,
    )
    assert results == {"threads": "refused", "root": "ok True"}


def test_probe_leaves_the_caller_unrestricted():
    assert landlock.abi_version() >= landlock.MINIMUM_ABI
    assert landlock_problem() is None
    assert os.listdir("/")
    socket.socket(socket.AF_INET, socket.SOCK_DGRAM).close()
