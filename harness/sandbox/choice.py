"""Which isolation runs untrusted code here, and why: bubblewrap, the built-in namespace sandbox,
Landlock, or (only when the organiser asks for it) none.

``auto`` takes the first that works in that order and refuses to run anything when
none does; ``harness doctor`` shows every layer's state (:func:`layers`).
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from ..errors import UsageError

SANDBOXES = ("auto", "bwrap", "ns", "landlock", "none")
#: isolations that give the child its own mount namespace (paths inside differ from the organiser's)
MAPPED = ("bwrap", "ns")
WHAT_TO_DO = ("install bubblewrap (Debian/Ubuntu: apt install bubblewrap), allow unprivileged user namespaces "
              "(sysctl user.max_user_namespaces=10000; on Ubuntu also kernel.apparmor_restrict_unprivileged_userns=0),"
              " or pass --sandbox none for submissions you trust")


@dataclass(frozen=True)
class Isolation:
    """Which isolation runs the children ("bwrap", "ns", "landlock" or "none") and why."""

    kind: str
    reason: str

    @property
    def mapped(self) -> bool:
        """The child names its inputs by their paths inside (/sandbox/...), not the organiser's."""
        return self.kind in MAPPED


def _probe(command: list[str], fds: tuple[int, ...] = ()) -> tuple[bool, str]:
    """Run a probe command: (it exited 0, the last line of its stderr or why it could not start)."""
    try:
        done = subprocess.run(command, stdin=subprocess.DEVNULL, capture_output=True, timeout=30, pass_fds=fds)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return False, f"cannot start: {exc}"
    lines = done.stderr.decode("utf-8", "replace").strip().splitlines() or [f"exit code {done.returncode}"]
    return done.returncode == 0, lines[-1]


@functools.lru_cache(maxsize=1)
def bwrap_problem() -> str | None:
    """None when bubblewrap runs here, else why not (one line)."""
    exe = shutil.which("bwrap")
    if exe is None:
        return "bwrap not found (Debian/Ubuntu package: bubblewrap)"
    ok, last = _probe([exe, "--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev", "--unshare-all",
                       "--die-with-parent", "--new-session", "true"])
    return None if ok else f"bwrap cannot run here ({last}); user namespaces are probably disabled in this container"


@functools.lru_cache(maxsize=1)
def ns_problem() -> str | None:
    """None when the built-in namespace sandbox starts a command here, else why not (one line).
    Probed for real: a launcher with a minimal view runs ``true``."""
    from .child import sandboxed_command
    from .view import View, base_binds

    with tempfile.TemporaryDirectory(prefix="harness-ns-probe-") as folder:
        scratch = Path(folder)
        (scratch / "tmp").mkdir()
        view = View(base_binds(scratch / "tmp", gpu=False), cwd="/tmp")
        command, fds, _ = sandboxed_command([shutil.which("true") or "/bin/true"], view, Isolation("ns", "probe"),
                                            scratch)
        try:
            ok, last = _probe(command, fds)
        finally:
            for fd in fds:
                os.close(fd)
    return None if ok else f"namespaces refused here ({last.removeprefix('sandbox: ')})"


def landlock_problem() -> str | None:
    from .landlock import landlock_problem as problem

    return problem()


PROBLEMS = {"bwrap": bwrap_problem, "ns": ns_problem, "landlock": landlock_problem}
GUARANTEES = {
    "bwrap": "bubblewrap: no network, own PIDs, read-only code, no view of the organiser's folders",
    "ns": "built-in namespace sandbox: no network, own PIDs, read-only code, no view of the organiser's folders",
    "landlock": "Landlock: file access limited to the same allow-list, no network; no PID namespace",
}


def choose_isolation(requested: str = "auto") -> Isolation:
    """``auto``: bwrap, else ns, else landlock, else a UsageError saying why and what to do; a named
    isolation fails (UsageError) when it cannot run; ``none`` is the plain child process with limits."""
    if requested == "process":
        raise UsageError("--sandbox process is now called --sandbox none (no isolation: for trusted submissions)")
    if requested not in SANDBOXES:
        raise UsageError(f"--sandbox '{requested}': expected one of {', '.join(SANDBOXES)}")
    if requested == "none":
        return Isolation("none", "asked for (--sandbox none): plain child process with limits, no isolation; "
                                 "it can read whatever this user can")
    problems = []
    for kind in PROBLEMS if requested == "auto" else (requested,):
        problem = PROBLEMS[kind]()
        if problem is None:
            return Isolation(kind, GUARANTEES[kind])
        problems.append(f"{kind}: {problem}")
    if requested != "auto":
        raise UsageError(f"--sandbox {requested}: {problems[0].split(': ', 1)[1]}",
                         hint="use --sandbox auto to take the first isolation that works here")
    raise UsageError("no isolation works on this machine (" + "; ".join(problems) + ")", hint=WHAT_TO_DO)


def layers() -> list[tuple[str, str]]:
    """(layer, available or not and why) for ``harness doctor``."""
    from .landlock import abi_version

    rows = [(kind, problem or "works (--sandbox " + kind + ")")
            for kind, problem in ((k, PROBLEMS[k]()) for k in PROBLEMS)]
    rows[2] = ("landlock", (f"ABI {abi_version()}: " if abi_version() else "") + rows[2][1])
    from .namespaces import privileged_namespaces

    if os.geteuid() == 0 and privileged_namespaces():
        uid = ("root: ns children switch to an unused unprivileged uid (landlock ones too where that uid can "
               "read the code, else they keep uid 0 without any capability)")
    elif os.geteuid() == 0:
        uid = "root without CAP_SYS_ADMIN: ns children keep uid 0 inside a user namespace, without any capability"
    else:
        uid = f"uid {os.geteuid()}: children keep it (not root, no switch needed)"
    rows.append(("uid switch", uid))
    rows.append(("network", "ns, bwrap: an empty network namespace; landlock: TCP denied by Landlock and "
                            "socket() denied by seccomp; none: the organiser's network"))
    return rows

