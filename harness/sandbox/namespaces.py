"""The built-in sandbox's system calls: new namespaces, a read-only root of bind mounts, pivot_root.

Written by hand (ctypes; Python 3.11 has no ``os.unshare``) because it is the one piece
that must work where bubblewrap is not installed: the same kernel features bubblewrap
uses, in the order it uses them. Run only by :mod:`harness.sandbox.launch`, never in the
organiser's process.

Two ways in:

- *privileged* (the organiser is root with CAP_SYS_ADMIN, e.g. a container or CI):
  mount, PID, network, IPC and UTS namespaces; the child then switches to an unused
  unprivileged uid, so it holds no capability and file permissions and process limits bite;
- *user namespace* (any other user): the same plus a user namespace mapping the
  organiser's own uid to itself; its capabilities there end at ``execve``.

Either way the mounts are made by trusted code before any submission code runs, and a
child cannot undo them (mounts from a more privileged namespace are locked).
"""

from __future__ import annotations

import ctypes
import errno
import functools
import os
import stat
from pathlib import Path

CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC = 0x00020000, 0x04000000, 0x08000000
CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = 0x10000000, 0x20000000, 0x40000000
NAMESPACES = CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
MS_NOATIME, MS_NODIRATIME, MS_RELATIME = 1024, 2048, 1 << 21
MNT_DETACH = 2
PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_SET_NO_NEW_PRIVS = 1, 4, 38
SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41}
#: device nodes every child gets (bound from the host's /dev), as bubblewrap's --dev gives them
STANDARD_DEVICES = ("null", "zero", "full", "random", "urandom", "tty")

_libc = ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"{what}: {os.strerror(code)}")


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    encode = lambda text: text.encode() if text is not None else None  # noqa: E731
    _check(_libc.mount(encode(source), encode(target), encode(fstype), ctypes.c_ulong(flags), encode(data)),
           f"mount {source or fstype or ''} on {target}")


def prctl(option: int, value: int) -> None:
    _check(_libc.prctl(option, ctypes.c_ulong(value), 0, 0, 0), f"prctl {option}")


def unshare(privileged: bool) -> None:
    """New namespaces for this process (PID: for its next child). ``privileged``: no user namespace."""
    if privileged:
        _check(_libc.unshare(NAMESPACES), "unshare")
        return
    uid, gid = os.geteuid(), os.getegid()
    _check(_libc.unshare(NAMESPACES | CLONE_NEWUSER), "unshare (user namespace)")
    for name, text in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1"), ("gid_map", f"{gid} {gid} 1")):
        with open(f"/proc/self/{name}", "w") as handle:
            handle.write(text)


@functools.lru_cache(maxsize=1)
def privileged_namespaces() -> bool:
    """This process may create mount and PID namespaces without a user namespace (root with
    CAP_SYS_ADMIN): then children switch to an unused uid. Probed in a forked child."""
    if os.geteuid() != 0:
        return False
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the probe child
        os._exit(0 if _libc.unshare(NAMESPACES) == 0 else 1)
    _, status = os.waitpid(pid, 0)
    return os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0


def _kept_flags(path: str) -> int:
    """Flags of the mount ``path`` lies on that a remount must keep (a user namespace may not clear them)."""
    flags = os.statvfs(path).f_flag
    pairs = ((os.ST_RDONLY, MS_RDONLY), (os.ST_NOSUID, MS_NOSUID), (os.ST_NODEV, MS_NODEV), (os.ST_NOEXEC, MS_NOEXEC),
             (os.ST_NOATIME, MS_NOATIME), (os.ST_NODIRATIME, MS_NODIRATIME), (4096, MS_RELATIME))
    return sum(ms for st, ms in pairs if flags & st)


def _mount_point(target: Path, source: str) -> None:
    """An empty directory or file at ``target`` to bind ``source`` on (parents created)."""
    if target.is_symlink():
        raise OSError(errno.ELOOP, f"mount point {target} is a symlink")
    target.parent.mkdir(parents=True, exist_ok=True)
    if stat.S_ISDIR(os.stat(source).st_mode):
        target.mkdir(exist_ok=True)
    elif not target.exists():
        target.touch()


def build_root(root: Path, binds: list[dict]) -> None:
    """A tmpfs at ``root`` with every bind at ``root + target`` (read-only unless writable), /dev
    (standard nodes, /dev/shm) and mount points for /proc; sources that vanished are skipped."""
    _mount(None, "/", None, MS_REC | MS_PRIVATE)  # nothing of ours propagates back to the organiser
    _mount("tmpfs", str(root), "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755")
    dev = root / "dev"
    dev.mkdir()
    _mount("tmpfs", str(dev), "tmpfs", MS_NOSUID, "mode=0755")
    for name in STANDARD_DEVICES:
        (dev / name).touch()
        _mount(f"/dev/{name}", str(dev / name), None, MS_BIND)
    for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"),
                         ("stderr", "/proc/self/fd/2"), ("ptmx", "pts/ptmx")):
        (dev / name).symlink_to(target)
    (dev / "shm").mkdir()
    _mount("tmpfs", str(dev / "shm"), "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777")
    (root / "proc").mkdir()
    done = []
    for bind in binds:
        if not os.path.exists(bind["source"]):
            continue
        target = root / bind["target"].lstrip("/")
        _mount_point(target, bind["source"])
        _mount(bind["source"], str(target), None, MS_BIND)
        done.append((bind, target))
    for bind, target in done:  # after every bind: later mount points may lie inside earlier binds
        flags = _kept_flags(str(target)) | MS_REMOUNT | MS_BIND | MS_NOSUID
        if not bind["writable"]:
            flags |= MS_RDONLY
        if not bind["device"]:
            flags |= MS_NODEV
        _mount(None, str(target), None, flags)


def enter_root(root: Path, cwd: str) -> None:
    """In the new PID namespace: its /proc, then ``root`` becomes / (the old root detached), read-only."""
    _mount("proc", str(root / "proc"), "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    os.chdir(root)
    number = SYS_PIVOT_ROOT.get(os.uname().machine)
    if number is None:
        raise OSError(errno.ENOSYS, f"pivot_root: unknown machine {os.uname().machine}")
    _check(_libc.syscall(number, b".", b"."), "pivot_root")  # the old root now lies under the new one
    _check(_libc.umount2(b".", MNT_DETACH), "detach the old root")
    os.chdir("/")
    _mount(None, "/", None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)
    _check(_libc.sethostname(b"sandbox", 7), "sethostname")
    os.chdir(cwd)


def drop_to(uid: int) -> None:
    """Become ``uid`` (group the same number, no supplementary groups): every capability goes."""
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)
