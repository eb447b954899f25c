"""Confine the calling process with Landlock (file system, TCP, scopes) and seccomp (sockets).

The fallback isolation where unprivileged namespaces are refused but Landlock works.
Pure ctypes: no torch, no numpy, nothing outside the standard library.

Minimum: Landlock ABI 6 (Linux 6.12) for ``no_network=True``. ABI 4 is the first
that can deny TCP bind/connect, but only ABI 6 can stop the child from signalling
processes outside its domain (``LANDLOCK_SCOPE_SIGNAL``) or connecting to their
abstract unix sockets (``LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET``). Landlock denies
ptrace (and so ``/proc/<pid>/mem``, ``environ``, ``maps``) of processes outside the
domain at every ABI, provided the child holds neither CAP_SYS_ADMIN nor CAP_PERFMON
(measured: with either, a root child still reads ``environ`` and ``maps``). Sockets that
Landlock cannot restrict (UDP, raw, netlink, pathname unix sockets) are stopped by a
seccomp filter that makes ``socket()`` and ``io_uring_setup()`` fail with EACCES;
``socketpair()`` stays allowed. Every capability is dropped. What this does not
guarantee: docs/competition.md, section Isolation (Landlock).

Landlock confines the calling *thread* and its future children: call
``restrict`` while the process has a single thread, before importing anything
that starts threads (torch, numpy's BLAS); it refuses otherwise.
"""

from __future__ import annotations

import ctypes
import errno
import functools
import os
import platform
import socket
import stat
from pathlib import Path
from typing import Iterable

__all__ = [
    "MINIMUM_ABI",
    "RUNTIME_READ",
    "RUNTIME_WRITE",
    "abi_version",
    "landlock_problem",
    "restrict",
]

MINIMUM_ABI = 6
"""Lowest Landlock ABI accepted for ``no_network=True`` (TCP: 4; signal and abstract-socket scopes: 6)."""

# What a Python + numpy + torch (CPU) child needs beyond the system folders (/usr, /lib,
# /lib64, /etc), the Python install (sys.base_prefix, sys.prefix, site-packages) and the code.
RUNTIME_READ: tuple[str, ...] = (
    # /proc/cpuinfo, /proc/stat (torch's cpuinfo, OpenMP, os.cpu_count fallbacks), /proc/self/maps
    # (glibc's pthread_getattr_np for the main thread's stack), /proc/self/environ (torch).
    # /proc/self differs per process, so the whole of /proc is granted; other processes'
    # environ, mem and maps stay unreadable: Landlock denies ptrace access out of the domain.
    "/proc",
    # possible, present, kernel_max: torch's cpuinfo prints "Error in cpuinfo" and
    # misjudges the core count without them.
    "/sys/devices/system/cpu",
    # `import torch` fails with "Unable to open /dev/urandom" (it opens the file, not getrandom(2)).
    "/dev/urandom",
)
"""Read-only paths a Python + numpy + torch child needs besides system folders, Python and code."""

RUNTIME_WRITE: tuple[str, ...] = (
    # subprocess.DEVNULL (opened O_RDWR), used by ctypes.util.find_library during `import torch`.
    "/dev/null",
)
"""Writable paths a child needs besides its own scratch folder.

`import torch` also needs a writable temporary folder (ctypes.util.find_library makes a
temp file): give each child a private scratch folder in ``write`` and point TMPDIR at it.
/dev/shm is deliberately absent: it is shared by every process on the machine, so granting
it would let a child read files of the organiser and of other children, or leave files
for them. Measured cost: multiprocessing locks, queues and pools (POSIX semaphores live in
/dev/shm) and torch DataLoader workers (which also need socket()) fail with EACCES.
"""

# --- kernel ABI ---------------------------------------------------------------------

# Generic syscall numbers: identical on x86_64 and aarch64 (include/uapi/asm-generic/unistd.h,
# arch/x86/entry/syscalls/syscall_64.tbl).
_SYS_LANDLOCK_CREATE_RULESET = 444
_SYS_LANDLOCK_ADD_RULE = 445
_SYS_LANDLOCK_RESTRICT_SELF = 446
_SYS_IO_URING_SETUP = 425
_SYS_IO_URING_ENTER = 426
_SYS_IO_URING_REGISTER = 427

_LANDLOCK_CREATE_RULESET_VERSION = 1 << 0
_LANDLOCK_RULE_PATH_BENEATH = 1

# include/uapi/linux/landlock.h: file system access rights and the ABI that added them.
_FS_EXECUTE = 1 << 0
_FS_WRITE_FILE = 1 << 1
_FS_READ_FILE = 1 << 2
_FS_READ_DIR = 1 << 3
_FS_REMOVE_DIR = 1 << 4
_FS_REMOVE_FILE = 1 << 5
_FS_MAKE_CHAR = 1 << 6
_FS_MAKE_DIR = 1 << 7
_FS_MAKE_REG = 1 << 8
_FS_MAKE_SOCK = 1 << 9
_FS_MAKE_FIFO = 1 << 10
_FS_MAKE_BLOCK = 1 << 11
_FS_MAKE_SYM = 1 << 12
_FS_REFER = 1 << 13  # ABI 2
_FS_TRUNCATE = 1 << 14  # ABI 3
_FS_IOCTL_DEV = 1 << 15  # ABI 5

_NET_BIND_TCP = 1 << 0  # ABI 4
_NET_CONNECT_TCP = 1 << 1  # ABI 4
_SCOPE_ABSTRACT_UNIX_SOCKET = 1 << 0  # ABI 6
_SCOPE_SIGNAL = 1 << 1  # ABI 6

_FS_RIGHTS_ABI_1 = (1 << 13) - 1


def _handled_fs_rights(abi: int) -> int:
    """Every file system right the running ABI knows (the kernel rejects unknown bits)."""
    rights = _FS_RIGHTS_ABI_1
    if abi >= 2:
        rights |= _FS_REFER
    if abi >= 3:
        rights |= _FS_TRUNCATE
    if abi >= 5:
        rights |= _FS_IOCTL_DEV
    return rights


# Rights that make sense on a regular file (or device); directory rights on a file are EINVAL.
_FILE_RIGHTS = _FS_EXECUTE | _FS_WRITE_FILE | _FS_READ_FILE | _FS_TRUNCATE | _FS_IOCTL_DEV
_READ_RIGHTS = _FS_EXECUTE | _FS_READ_FILE | _FS_READ_DIR
# Everything except making device nodes (a root child could mknod the disk) and sockets.
_WRITE_RIGHTS = (
    _READ_RIGHTS
    | _FS_WRITE_FILE
    | _FS_REMOVE_DIR
    | _FS_REMOVE_FILE
    | _FS_MAKE_DIR
    | _FS_MAKE_REG
    | _FS_MAKE_FIFO
    | _FS_MAKE_SYM
    | _FS_REFER
    | _FS_TRUNCATE
    | _FS_IOCTL_DEV
)


class _RulesetAttr(ctypes.Structure):
    _fields_ = [
        ("handled_access_fs", ctypes.c_uint64),
        ("handled_access_net", ctypes.c_uint64),  # ABI 4
        ("scoped", ctypes.c_uint64),  # ABI 6
    ]


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1  # __attribute__((packed)): 12 bytes
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def _ruleset_attr_size(abi: int) -> int:
    """Size of the ruleset struct the running kernel knows."""
    if abi >= 6:
        return 24
    if abi >= 4:
        return 16
    return 8


# --- seccomp --------------------------------------------------------------------------

_PR_SET_NO_NEW_PRIVS = 38
_PR_CAPBSET_DROP = 24
_PR_CAP_AMBIENT = 47
_PR_CAP_AMBIENT_CLEAR_ALL = 4
_LINUX_CAPABILITY_VERSION_3 = 0x20080522
_PR_SET_SECCOMP = 22
_SECCOMP_MODE_FILTER = 2
_SECCOMP_RET_KILL_PROCESS = 0x80000000
_SECCOMP_RET_ERRNO = 0x00050000
_SECCOMP_RET_ALLOW = 0x7FFF0000
_X32_SYSCALL_BIT = 0x40000000

_BPF_LD_W_ABS = 0x20  # BPF_LD | BPF_W | BPF_ABS
_BPF_JEQ_K = 0x15  # BPF_JMP | BPF_JEQ | BPF_K
_BPF_JGE_K = 0x35  # BPF_JMP | BPF_JGE | BPF_K
_BPF_RET_K = 0x06  # BPF_RET | BPF_K

# struct seccomp_data: int nr (offset 0), __u32 arch (4), __u64 instruction_pointer (8), args[6] (16).
_SECCOMP_DATA_NR = 0
_SECCOMP_DATA_ARCH = 4

# machine -> (AUDIT_ARCH_*, socket syscall number)
_ARCHITECTURES = {
    "x86_64": (0xC000003E, 41),  # AUDIT_ARCH_X86_64; socketpair is 53
    "aarch64": (0xC00000B7, 198),  # AUDIT_ARCH_AARCH64; socketpair is 199
}
_MACHINE_ALIASES = {"amd64": "x86_64", "arm64": "aarch64"}


class _SockFilter(ctypes.Structure):
    _fields_ = [
        ("code", ctypes.c_uint16),
        ("jt", ctypes.c_uint8),
        ("jf", ctypes.c_uint8),
        ("k", ctypes.c_uint32),
    ]


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(_SockFilter))]


def _machine() -> str:
    machine = platform.machine().lower()
    return _MACHINE_ALIASES.get(machine, machine)


def _socket_filter(machine: str) -> list[tuple[int, int, int, int]]:
    """BPF program: kill foreign-arch (and x32) syscalls; socket() and io_uring_* fail with EACCES."""
    audit_arch, sys_socket = _ARCHITECTURES[machine]
    deny = _SECCOMP_RET_ERRNO | errno.EACCES
    return [
        (_BPF_LD_W_ABS, 0, 0, _SECCOMP_DATA_ARCH),
        (_BPF_JEQ_K, 1, 0, audit_arch),  # native arch: skip the kill
        (_BPF_RET_K, 0, 0, _SECCOMP_RET_KILL_PROCESS),
        (_BPF_LD_W_ABS, 0, 0, _SECCOMP_DATA_NR),
        (_BPF_JGE_K, 0, 1, _X32_SYSCALL_BIT),  # x32 ABI numbers (x86_64 only; none on aarch64)
        (_BPF_RET_K, 0, 0, _SECCOMP_RET_KILL_PROCESS),
        (_BPF_JEQ_K, 4, 0, sys_socket),
        (_BPF_JEQ_K, 3, 0, _SYS_IO_URING_SETUP),
        (_BPF_JEQ_K, 2, 0, _SYS_IO_URING_ENTER),
        (_BPF_JEQ_K, 1, 0, _SYS_IO_URING_REGISTER),
        (_BPF_RET_K, 0, 0, _SECCOMP_RET_ALLOW),
        (_BPF_RET_K, 0, 0, deny),
    ]


# --- syscalls -----------------------------------------------------------------------

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
_libc.prctl.restype = ctypes.c_int
_libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]


def _syscall(number: int, *args) -> int:
    """Raw syscall; returns the result or raises OSError naming the call."""
    ctypes.set_errno(0)
    result = _libc.syscall(ctypes.c_long(number), *args)
    if result < 0:
        code = ctypes.get_errno()
        raise OSError(code, f"syscall {number} failed: {os.strerror(code)}")
    return result


def _prctl(option: int, arg2: int, what: str) -> None:
    if _libc.prctl(option, arg2, 0, 0, 0) != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"prctl({what}) failed: {os.strerror(code)}")


def _ask_landlock_version() -> int:
    """landlock_create_ruleset(NULL, 0, LANDLOCK_CREATE_RULESET_VERSION); raises OSError."""
    flags = ctypes.c_uint32(_LANDLOCK_CREATE_RULESET_VERSION)
    return _syscall(_SYS_LANDLOCK_CREATE_RULESET, None, ctypes.c_size_t(0), flags)


@functools.lru_cache(maxsize=None)
def abi_version() -> int:
    """The kernel's Landlock ABI version; 0 when unsupported, disabled, or not Linux x86_64/aarch64."""
    if os.name != "posix" or _machine() not in _ARCHITECTURES:
        return 0
    try:
        return _ask_landlock_version()
    except OSError:
        return 0


def _why_abi_is_zero() -> str:
    if _machine() not in _ARCHITECTURES:
        return f"Landlock confinement is implemented for x86_64 and aarch64 only, not {platform.machine()!r}"
    try:
        _ask_landlock_version()
    except OSError as err:
        if err.errno == errno.EOPNOTSUPP:
            return "Landlock is built into this kernel but disabled (add landlock to the lsm= boot parameter)"
    return "Landlock not supported by this kernel (needs Linux >= 5.13 with landlock in the lsm= list)"


@functools.lru_cache(maxsize=None)
def landlock_problem() -> str | None:
    """None when ``restrict`` can confine a process here, else a one-line reason.

    Tries ``restrict`` for real in a forked child (the caller stays unrestricted).
    """
    abi = abi_version()
    if abi == 0:
        return _why_abi_is_zero()
    if abi < 4:
        return f"Landlock ABI {abi} lacks TCP restrictions (needs >= 4, Linux 6.7; {MINIMUM_ABI} for signal scoping)"
    if abi < MINIMUM_ABI:
        return (
            f"Landlock ABI {abi} lacks signal and abstract-unix-socket scoping "
            f"(needs >= {MINIMUM_ABI}, Linux 6.12)"
        )
    return _probe_in_forked_child()


def _probe_in_forked_child() -> str | None:
    """Fork; the child confines itself completely and checks that the file system and socket() are shut."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never return, never raise
        message = b"probe child failed"
        try:
            os.close(read_end)
            message = _confine_and_check().encode()
        except BaseException as err:  # noqa: BLE001 - report anything to the parent
            message = f"{type(err).__name__}: {err}".encode(errors="replace")
        finally:
            try:
                os.write(write_end, message[:4000])
            finally:
                os._exit(0)
    os.close(write_end)
    chunks = []
    while chunk := os.read(read_end, 4096):
        chunks.append(chunk)
    os.close(read_end)
    _, status = os.waitpid(pid, 0)
    report = b"".join(chunks).decode(errors="replace")
    if report == "ok":
        return None
    if not report:
        return f"Landlock probe child died (wait status {status})"
    return f"Landlock/seccomp confinement failed in a probe: {report}"


def _confine_and_check() -> str:
    restrict([], [], no_network=True)
    try:
        os.listdir("/")
        return "the file system is still readable after restrict()"
    except PermissionError:
        pass
    try:
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM).close()
        return "socket() still works after restrict() (seccomp filter not applied)"
    except PermissionError:
        pass
    left, right = socket.socketpair()
    left.close()
    right.close()
    return "ok"


# --- restrict -----------------------------------------------------------------------


def _add_path_rules(ruleset_fd: int, paths: Iterable[str | os.PathLike], rights: int, handled: int) -> None:
    """Allow ``rights`` beneath each existing path; a file gets only file rights."""
    for path in paths:
        try:
            fd = os.open(os.fspath(path), os.O_PATH | os.O_CLOEXEC)
        except FileNotFoundError:
            continue
        try:
            allowed = rights & handled
            if not stat.S_ISDIR(os.fstat(fd).st_mode):
                allowed &= _FILE_RIGHTS
            rule = _PathBeneathAttr(allowed_access=allowed, parent_fd=fd)
            try:
                _syscall(
                    _SYS_LANDLOCK_ADD_RULE,
                    ctypes.c_int(ruleset_fd),
                    ctypes.c_int(_LANDLOCK_RULE_PATH_BENEATH),
                    ctypes.byref(rule),
                    ctypes.c_uint32(0),
                )
            except OSError as err:
                raise OSError(err.errno, f"landlock_add_rule({os.fspath(path)!r}) failed: {err.strerror}") from None
        finally:
            os.close(fd)


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def drop_capabilities() -> None:
    """Empty the bounding, ambient, effective, permitted and inheritable capability sets.

    Needed, not cosmetic: a confined child keeping CAP_SYS_ADMIN or CAP_PERFMON (a root
    child) can still read /proc/<pid>/environ and maps of processes outside its domain
    (measured on Linux 6.18), and would keep its other root powers.
    """
    try:
        last_cap = int(Path("/proc/sys/kernel/cap_last_cap").read_text())
    except (OSError, ValueError):
        last_cap = 63
    for cap in range(last_cap + 1):
        if _libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            code = ctypes.get_errno()
            if code == errno.EINVAL:  # beyond the kernel's last capability
                break
            if code != errno.EPERM:  # EPERM: no CAP_SETPCAP, so nothing to drop from an unprivileged set
                raise OSError(code, f"prctl(PR_CAPBSET_DROP, {cap}) failed: {os.strerror(code)}")
    if _libc.prctl(_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) != 0:
        code = ctypes.get_errno()
        if code != errno.EINVAL:  # EINVAL: kernel without ambient capabilities (< 4.3)
            raise OSError(code, f"prctl(PR_CAP_AMBIENT_CLEAR_ALL) failed: {os.strerror(code)}")
    header = _CapHeader(version=_LINUX_CAPABILITY_VERSION_3, pid=0)
    data = (_CapData * 2)()
    if _libc.capset(ctypes.byref(header), data) != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"capset (drop all capabilities) failed: {os.strerror(code)}")


def _thread_count() -> int:
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        return 1  # no /proc: cannot tell


def _install_socket_filter(machine: str) -> None:
    program = _socket_filter(machine)
    instructions = (_SockFilter * len(program))(*[_SockFilter(*instruction) for instruction in program])
    fprog = _SockFprog(len=len(program), filter=instructions)
    if _libc.prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ctypes.addressof(fprog), 0, 0) != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER) failed: {os.strerror(code)}")


def restrict(
    read: Iterable[str | os.PathLike],
    write: Iterable[str | os.PathLike],
    *,
    no_network: bool = True,
) -> None:
    """Confine the calling process and its future children; irreversible.

    Read (and execute) only beneath ``read``, read and write beneath ``write``; the rest of
    the file system is denied. Signals to processes outside the domain are denied (ABI >= 6).
    Every capability is dropped (a root child stays uid 0 but without root's powers).
    With ``no_network``: TCP bind/connect denied, abstract unix sockets outside the domain
    unreachable, and ``socket()``/``io_uring_setup()`` fail with EACCES (``socketpair()`` works).
    Paths that do not exist are skipped. Raises OSError when the kernel refuses a step, or
    when ``no_network`` is asked of a kernel below ``MINIMUM_ABI``; after such an error the
    process may be partly confined and should exit.
    """
    machine = _machine()
    abi = abi_version()
    if abi == 0:
        raise OSError(errno.EOPNOTSUPP, _why_abi_is_zero())
    if no_network and abi < MINIMUM_ABI:
        raise OSError(errno.EOPNOTSUPP, f"no_network needs Landlock ABI >= {MINIMUM_ABI}, this kernel has {abi}")
    threads = _thread_count()
    if threads > 1:
        raise RuntimeError(
            f"restrict() would confine only the calling thread of {threads}; call it before starting threads"
        )
    # Resolve the path lists before anything is restricted (they may be generators).
    read, write = list(read), list(write)

    handled_fs = _handled_fs_rights(abi)
    attr = _RulesetAttr(handled_access_fs=handled_fs)
    if abi >= 6:
        attr.scoped = _SCOPE_SIGNAL
    if no_network:
        attr.handled_access_net = _NET_BIND_TCP | _NET_CONNECT_TCP  # no rules: every port denied
        attr.scoped |= _SCOPE_ABSTRACT_UNIX_SOCKET
    try:
        size = ctypes.c_size_t(_ruleset_attr_size(abi))
        ruleset_fd = _syscall(_SYS_LANDLOCK_CREATE_RULESET, ctypes.byref(attr), size, ctypes.c_uint32(0))
    except OSError as err:
        raise OSError(err.errno, f"landlock_create_ruleset failed: {err.strerror}") from None
    try:
        _add_path_rules(ruleset_fd, read, _READ_RIGHTS, handled_fs)
        _add_path_rules(ruleset_fd, write, _WRITE_RIGHTS, handled_fs)
        drop_capabilities()
        _prctl(_PR_SET_NO_NEW_PRIVS, 1, "PR_SET_NO_NEW_PRIVS")
        try:
            _syscall(_SYS_LANDLOCK_RESTRICT_SELF, ctypes.c_int(ruleset_fd), ctypes.c_uint32(0))
        except OSError as err:
            raise OSError(err.errno, f"landlock_restrict_self failed: {err.strerror}") from None
    finally:
        os.close(ruleset_fd)
    if no_network:
        _install_socket_filter(machine)
