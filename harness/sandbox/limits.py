"""Resource limits of an isolated child, set between fork and exec whatever the isolation.

Open files, processes, CPU seconds, file size and, on machines without a GPU,
address space; its own session and process group; killed when its parent dies
(Linux ``PR_SET_PDEATHSIG``).
"""

from __future__ import annotations

import ctypes
import math
import os
import resource
import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

GiB = 1 << 30
#: NVIDIA device nodes live here (a test points it at a folder with a stand-in node)
DEV = Path("/dev")


@dataclass(frozen=True)
class Limits:
    """Resource limits of one child (None: not limited)."""

    cpu_seconds: int | None = None
    memory_bytes: int | None = None
    open_files: int = 4096
    processes: int | None = 256  # beyond what the organiser's user already runs
    file_bytes: int | None = 16 * GiB
    gpu: bool = field(default=False)


def gpu_visible() -> bool:
    """An NVIDIA device node and a CUDA_VISIBLE_DEVICES that does not hide it (no framework imported)."""
    if os.environ.get("CUDA_VISIBLE_DEVICES", "x").strip() in ("", "-1"):
        return False
    return (DEV / "nvidia0").exists() or (DEV / "nvidiactl").exists()


def physical_memory() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def default_limits(timeout: float, threads: int | None, memory_gb: float | None = None) -> Limits:
    """CPU seconds from the timeout and thread count; address space = ``memory_gb`` or, without a GPU
    (CUDA reserves far more address space than it uses), the machine's memory."""
    cpus = threads or os.cpu_count() or 1
    cpu_seconds = int(math.ceil(timeout * cpus)) + 30
    gpu = gpu_visible()
    if memory_gb is not None:
        memory = int(memory_gb * GiB) if memory_gb > 0 else None
    else:
        memory = None if gpu else physical_memory()
    return Limits(cpu_seconds=cpu_seconds, memory_bytes=memory, gpu=gpu)


def _user_processes() -> int:
    uid, count = os.getuid(), 0
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                count += entry.stat().st_uid == uid
            except OSError:
                pass
    return count


def preexec(limits: Limits) -> Callable[[], None]:
    """The function run in the child between fork and exec: own session, parent-death signal, limits."""
    processes = _user_processes() + limits.processes if limits.processes else None  # RLIMIT_NPROC counts the user
    wanted = [(resource.RLIMIT_NOFILE, limits.open_files), (resource.RLIMIT_NPROC, processes),
              (resource.RLIMIT_CPU, limits.cpu_seconds), (resource.RLIMIT_AS, limits.memory_bytes),
              (resource.RLIMIT_FSIZE, limits.file_bytes)]

    def setup() -> None:  # pragma: no cover - runs in the child
        os.setsid()
        try:
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
        for which, value in wanted:
            if value is None:
                continue
            hard = resource.getrlimit(which)[1]
            top = value + 5 if which == resource.RLIMIT_CPU else value  # CPU: SIGXCPU, then SIGKILL 5 s later
            if hard != resource.RLIM_INFINITY:
                value, top = min(value, hard), min(top, hard)
            try:
                resource.setrlimit(which, (value, top))
            except (ValueError, OSError):
                pass

    return setup
