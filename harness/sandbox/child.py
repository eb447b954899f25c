"""Running one untrusted command under the chosen isolation and watching it.

The organiser's side of every isolation: the command line (bubblewrap, the built-in
launcher or the plain command), a scratch folder, the unprivileged uid when the organiser
is root, resource limits, capped logs, a timeout that kills the whole process group.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from .choice import Isolation
from .limits import Limits, preexec
from .namespaces import privileged_namespaces
from .view import View, bwrap_command, hidden_arguments

STDERR_TAIL = 4000
#: bytes of each of the child's stdout and stderr kept in its scratch folder (then its last STDERR_TAIL bytes)
LOG_CAP = 1 << 20
#: unprivileged uids a root organiser's children run as (one unused uid each, above any distribution's range)
CHILD_UIDS = range(2_000_000_000, 2_100_000_000)


def unused_uid() -> int:
    """A uid no account and no running process has (children of a root organiser run as one)."""
    import pwd

    taken = {entry.pw_uid for entry in pwd.getpwall()}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                taken.add(entry.stat().st_uid)
            except OSError:
                pass
    chooser = random.SystemRandom()
    while True:
        uid = chooser.randrange(CHILD_UIDS.start, CHILD_UIDS.stop)
        if uid not in taken:
            return uid


def reachable_by_others(paths: list[str]) -> bool:
    """Every path readable by any user through ordinary permissions (each folder above it searchable):
    a child switched to an unused uid can then use them without a mount namespace (Landlock)."""
    for path in map(Path, paths):
        if not path.exists():
            continue
        for folder in path.parents:
            if not folder.stat().st_mode & 0o001:
                return False
        if not path.stat().st_mode & (0o005 if path.is_dir() else 0o004):
            return False
    return True


def _plan_fd(plan: dict) -> int:
    """An unlinked temporary file holding ``plan`` (any size, no path on a command line), rewound."""
    handle = tempfile.TemporaryFile()
    handle.write(json.dumps(plan).encode())
    handle.seek(0)
    fd = os.dup(handle.fileno())
    handle.close()
    return fd


def readable_copy(source: Path, target: Path) -> None:
    """Copy a file or folder (no ``__pycache__``) readable by every user: the child may run as another uid.
    Symlinks stay symlinks (never followed: a submission's link to an organiser file copies no content)."""
    if Path(source).is_dir():
        shutil.copytree(source, target, symlinks=True, ignore=shutil.ignore_patterns("__pycache__"))
    else:
        shutil.copyfile(source, target)
    for path in [target, *(target.rglob("*") if target.is_dir() else ())]:
        if not path.is_symlink():
            path.chmod(path.stat().st_mode | 0o444 | (0o111 if path.is_dir() else 0))


def _chown_tree(folder: Path, uid: int) -> None:
    for path in [folder, *folder.rglob("*")]:
        os.lchown(path, uid, uid)


def sandboxed_command(inner: list[str], view: View, isolation: Isolation,
                      scratch: Path) -> tuple[list[str], tuple[int, ...], int | None]:
    """(command, file descriptors to pass and then close, uid the child runs as or None) for ``inner``,
    whose paths are already as the child names them. Writable folders of ``view`` are handed to that uid."""
    user_namespace = not privileged_namespaces() or os.environ.get("HARNESS_SANDBOX_USERNS") == "1"
    switch = (isolation.kind in ("ns", "bwrap") and not user_namespace
              or isolation.kind == "landlock" and reachable_by_others(view.readable()))
    uid = unused_uid() if os.geteuid() == 0 and switch else None  # else uid 0 stays, with no capabilities
    if uid is not None:
        for path in view.writable():
            if Path(path).is_dir() and not Path(path).is_relative_to("/dev"):
                _chown_tree(Path(path), uid)
    if isolation.kind == "bwrap":
        command, fd = hidden_arguments(bwrap_command(inner, view, uid))
        return command, (fd,), uid
    if isolation.kind == "ns":
        (scratch / "root").mkdir(exist_ok=True)
        plan = {"mode": "ns", "root": str(scratch / "root"), "uid": uid, "view": view.to_json(), "argv": inner,
                "user_namespace": user_namespace}
    elif isolation.kind == "landlock":
        plan = {"mode": "landlock", "uid": uid, "cwd": view.path(view.cwd, False), "argv": inner,
                "view": {"read": view.readable(), "write": view.writable()}}
    else:
        return inner, (), None
    fd = _plan_fd(plan)
    return [sys.executable, "-m", "harness.sandbox.launch", str(fd)], (fd,), uid


def _drain(stream, path: Path, cap: int) -> None:
    """Copy ``stream`` to ``path``: the first ``cap`` bytes, then (if more came) a marker and the last ones."""
    tail, dropped = bytearray(), 0
    with open(path, "wb") as out:
        written = 0
        for chunk in iter(lambda: stream.read(65536), b""):
            if written < cap:
                out.write(chunk[:cap - written])
                chunk, written = chunk[cap - written:], written + min(len(chunk), cap - written)
            if chunk:
                dropped += len(chunk)
                tail = (tail + chunk)[-STDERR_TAIL:]
        if dropped:
            out.write(f"\n[harness: log capped at {cap} bytes; {dropped - len(tail)} bytes dropped; "
                      f"the last {len(tail)} follow]\n".encode() + bytes(tail))
    stream.close()


def run_isolated(inner: list[str], view: View, isolation: Isolation, limits: Limits, env: dict[str, str],
                 scratch: Path, timeout: float) -> int | None:
    """Run ``inner`` isolated and limited; its output goes to ``scratch/stdout.log`` and ``stderr.log``
    (capped). Returns its exit code (negative: killed by that signal), or None when it timed out
    (its whole process group is killed either way when it ends)."""
    command, fds, _ = sandboxed_command(inner, view, isolation, scratch)
    try:
        process = subprocess.Popen(command, cwd=view.path(view.cwd, False), env=env, stdin=subprocess.DEVNULL,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=preexec(limits),
                                   pass_fds=fds)
    finally:
        for fd in fds:
            os.close(fd)
    drains = [threading.Thread(target=_drain, args=(stream, scratch / name, LOG_CAP), daemon=True)
              for stream, name in ((process.stdout, "stdout.log"), (process.stderr, "stderr.log"))]
    for thread in drains:
        thread.start()
    code = None
    try:
        code = process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        pass
    finally:
        _kill_group(process)  # anything the command left running in its group
        for thread in drains:
            thread.join(timeout=10)  # a grandchild that left the group may hold a pipe: stop waiting
    return code


def _kill_group(process: subprocess.Popen) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    if process.poll() is None:
        process.wait()


def failure_reason(code: int, stderr: Path) -> str:
    """One line for a child that ended with ``code`` != 0, from the end of its stderr."""
    with open(stderr, "rb") as handle:
        handle.seek(max(0, stderr.stat().st_size - STDERR_TAIL))
        lines = [line.strip() for line in handle.read().decode("utf-8", "replace").splitlines() if line.strip()]
    if code < 0:
        return f"crashed: killed by signal {signal.Signals(-code).name}" + (f" ({lines[-1]})" if lines else "")
    last = next((line for line in reversed(lines) if line.startswith("worker failed: ")), None)
    if last:
        return f"crashed: {last.removeprefix('worker failed: ')}"
    setup = next((line for line in reversed(lines) if line.startswith("sandbox: ")), None)
    if setup:
        return f"sandbox failed: {setup.removeprefix('sandbox: ')}"
    return f"crashed: exit code {code}" + (f": {lines[-1]}" if lines else "")
