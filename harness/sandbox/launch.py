"""``python -m harness.sandbox.launch FD``: start a command in the built-in sandbox
(``--uid UID -- COMMAND...``: only switch to an unprivileged uid, inside bubblewrap started by root).

Trusted harness code, run as the child of the organiser (limits already set). It reads
its plan (JSON) from file descriptor FD, so that no organiser path appears on any command
line the sandboxed code can see, then either

- ``mode = "ns"``: new namespaces (:mod:`.namespaces`), a root made of the view's binds,
  a PID-namespace init that reaps every process and reports the command's exit status
  back to this launcher, which exits the same way (same code, or killed by the same signal);
- ``mode = "landlock"``: the same view as Landlock rules on the real file system, no network,
  then ``execve`` of the command.

Either way: an unused uid when the organiser is root (``uid`` in the plan), no new
privileges, killed when its parent dies. A failure to set up ends it with exit code
``SETUP_FAILED`` and one line ``sandbox: ...`` on stderr; the command never starts then.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

SETUP_FAILED = 125


def _exec(argv: list[str]) -> None:
    os.execv(argv[0], argv)


def _drop_keeping_parent_death(uid: int) -> None:
    """Switch to ``uid``, then set the parent-death signal again (a uid switch clears it) and end at once
    if the parent is already gone."""
    from . import namespaces

    parent = os.getppid()
    namespaces.drop_to(uid)
    namespaces.prctl(namespaces.PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:
        os._exit(SETUP_FAILED)


def run_ns(plan: dict) -> int:
    from . import namespaces
    from .landlock import drop_capabilities

    root, uid = Path(plan["root"]), plan.get("uid")
    privileged = not plan["user_namespace"]
    namespaces.unshare(privileged)
    namespaces.build_root(root, plan["view"]["binds"])
    report_read, report_write = os.pipe()
    lifeline_read, lifeline_write = os.pipe()  # end of file for init once this launcher is gone
    init = os.fork()
    if init == 0:  # PID 1 of the new PID namespace
        try:
            os.close(report_read)
            os.close(lifeline_write)
            namespaces.enter_root(root, plan["view"]["cwd"])
            if privileged and uid is not None:
                namespaces.drop_to(uid)
            # after the uid switch, which clears it; then make sure the launcher did not die before
            namespaces.prctl(namespaces.PR_SET_PDEATHSIG, signal.SIGKILL)
            os.set_blocking(lifeline_read, False)
            try:
                if os.read(lifeline_read, 1) == b"":
                    os._exit(SETUP_FAILED)
            except BlockingIOError:
                pass
            namespaces.prctl(namespaces.PR_SET_NO_NEW_PRIVS, 1)
            namespaces.prctl(namespaces.PR_SET_DUMPABLE, 0)
            drop_capabilities()  # none left after a uid switch; uid 0 in a user namespace would keep them
        except OSError as exc:
            os.write(2, f"sandbox: {exc.strerror or exc}\n".encode())
            os._exit(SETUP_FAILED)
        command = os.fork()
        if command == 0:
            os.close(report_write)
            os.close(lifeline_read)
            try:
                _exec(plan["argv"])
            except OSError as exc:
                os.write(2, f"sandbox: cannot start {plan['argv'][0]}: {exc.strerror}\n".encode())
            os._exit(127)
        while True:  # reap every orphan; end (and so the whole namespace) with the command
            try:
                pid, status = os.waitpid(-1, 0)
            except ChildProcessError:
                os._exit(0)
            if pid == command:
                how = f"signal {os.WTERMSIG(status)}" if os.WIFSIGNALED(status) else f"exit {os.WEXITSTATUS(status)}"
                os.write(report_write, how.encode())
                os._exit(0)
    os.close(report_write)
    os.close(lifeline_read)
    _, status = os.waitpid(init, 0)
    report = os.read(report_read, 64).decode()
    if os.WIFSIGNALED(status):
        return -os.WTERMSIG(status)
    if not report:
        return os.WEXITSTATUS(status)  # setup failed (its line is on stderr)
    kind, number = report.split()
    return -int(number) if kind == "signal" else int(number)


def run_landlock(plan: dict) -> int:
    from . import landlock

    view = plan["view"]
    os.chdir(plan["cwd"])
    uid = plan.get("uid")
    if os.geteuid() == 0 and uid is not None:
        _drop_keeping_parent_death(uid)
    landlock.restrict([*view["read"], *landlock.RUNTIME_READ], [*view["write"], *landlock.RUNTIME_WRITE])
    _exec(plan["argv"])
    return 127


def run_as(uid: int, argv: list[str]) -> int:
    """``--uid UID -- COMMAND...`` (inside bubblewrap started by root): become ``uid`` without any
    capability or way back, then start the command."""
    from . import namespaces
    from .landlock import drop_capabilities

    _drop_keeping_parent_death(uid)
    drop_capabilities()
    namespaces.prctl(namespaces.PR_SET_NO_NEW_PRIVS, 1)
    _exec(argv)
    return 127


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--uid"] and argv[2:3] == ["--"]:
        try:
            return run_as(int(argv[1]), argv[3:])
        except (OSError, ValueError) as exc:
            print(f"sandbox: {getattr(exc, 'strerror', None) or exc}", file=sys.stderr, flush=True)
            return SETUP_FAILED
    try:
        with os.fdopen(int(argv[0]), "rb") as handle:
            plan = json.loads(handle.read())
        code = run_ns(plan) if plan["mode"] == "ns" else run_landlock(plan)
    except (OSError, ValueError, KeyError, IndexError) as exc:
        print(f"sandbox: {getattr(exc, 'strerror', None) or exc}", file=sys.stderr, flush=True)
        return SETUP_FAILED
    if code < 0:  # the command was killed by a signal: end the same way
        signal.signal(-code, signal.SIG_DFL)
        os.kill(os.getpid(), -code)
    return code


if __name__ == "__main__":
    sys.exit(main())
