"""Isolation of the scoring child: bubblewrap when it runs here, else a limited plain process.

Under bubblewrap (``bwrap``) the child sees a fixed layout whatever the
organiser's folders are: the Python install, virtual environment and harness
code read-only at their own paths, the submission at ``/sandbox/submission``
(read-only), its copy of the hidden images at ``/sandbox/images.npy``
(read-only), a writable ``/sandbox/work`` and ``/tmp`` (both in its scratch
folder), and nothing else of the organiser's file system: no split, results
store or leaderboard. Every namespace is unshared (no network, own PIDs) and it
dies with the organiser. Both kinds get resource limits (open files, processes,
CPU seconds, file size and, on machines without a GPU, address space) and their
own process group.
"""

from __future__ import annotations

import ctypes
import functools
import importlib.util
import math
import os
import resource
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

from ..errors import UsageError

SANDBOXES = ("auto", "bwrap", "process")
INSIDE = Path("/sandbox")
#: system folders the child needs read-only (shared libraries, certificates, locale, time zones)
SYSTEM_PATHS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc/ld.so.cache",
                "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/alternatives", "/etc/localtime", "/etc/ssl",
                "/etc/nsswitch.conf", "/etc/passwd", "/etc/group")
GiB = 1 << 30


@dataclass(frozen=True)
class Isolation:
    """Which isolation scores the children ("bwrap" or "process") and why."""

    kind: str
    reason: str


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
    return Path("/dev/nvidia0").exists() or Path("/dev/nvidiactl").exists()


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


@functools.lru_cache(maxsize=1)
def bwrap_problem() -> str | None:
    """None when bubblewrap runs here, else why not (one line)."""
    exe = shutil.which("bwrap")
    if exe is None:
        return "bwrap not found (Debian/Ubuntu package: bubblewrap)"
    probe = [exe, "--ro-bind", "/", "/", "--proc", "/proc", "--dev", "/dev", "--unshare-all", "--die-with-parent",
             "--new-session", "true"]
    try:
        done = subprocess.run(probe, stdin=subprocess.DEVNULL, capture_output=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"bwrap cannot start: {exc}"
    if done.returncode != 0:
        lines = done.stderr.decode("utf-8", "replace").strip().splitlines() or [f"exit code {done.returncode}"]
        return f"bwrap cannot run here ({lines[-1]}); user namespaces are probably disabled in this container"
    return None


def choose_isolation(requested: str = "auto") -> Isolation:
    """``auto``: bwrap when it runs, else process; ``bwrap`` fails (UsageError) when it cannot run."""
    if requested not in SANDBOXES:
        raise UsageError(f"--sandbox '{requested}': expected one of {', '.join(SANDBOXES)}")
    if requested == "process":
        return Isolation("process", "asked for (--sandbox process): plain child process with limits")
    problem = bwrap_problem()
    if problem is None:
        return Isolation("bwrap", f"bubblewrap runs here ({shutil.which('bwrap')}): no network, read-only code, "
                                  "no view of the organiser's folders")
    if requested == "bwrap":
        raise UsageError(f"--sandbox bwrap: {problem}", hint="use --sandbox process (or auto) on this machine")
    return Isolation("process", f"{problem}: plain child process with limits")


def code_paths() -> list[Path]:
    """Folders the child must read: Python install, virtual environment, harness and built-in plugins."""
    import harness

    paths = {Path(sys.base_prefix), Path(sys.prefix), Path(sys.executable).resolve().parent.parent,
             Path(harness.__file__).resolve().parent}
    for name in ("harness_torch", "harness_tf", "harness_corruptions"):
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.origin:
            paths.add(Path(spec.origin).resolve().parent)
    for entry in sys.path:  # site-packages and anything on PYTHONPATH outside the roots above
        if entry and Path(entry).is_dir() and "site-packages" in entry:
            paths.add(Path(entry).resolve())
    return sorted(paths)


def hidden_arguments(command: list[str]) -> tuple[list[str], int]:
    """``bwrap --args FD`` for a bwrap ``command``: its options go through a pipe, so that the sandbox's
    PID 1 (``/proc/1/cmdline`` inside) does not show the organiser's paths. Returns (command, FD to pass)."""
    end = command.index("--")  # bwrap reads options from FD; the command itself stays on its command line
    read, write = os.pipe()
    os.write(write, b"".join(arg.encode() + b"\0" for arg in command[1:end]))
    os.close(write)
    return [command[0], "--args", str(read), *command[end:]], read


def cache_without_split(cache: Path, dataset: str, source: str) -> Iterator[tuple[Path, dict, list[str]]]:
    """Each cache folder of ``dataset`` under ``cache`` that holds its ``source`` split, without that split:
    (folder, its manifest with the split removed, the relative paths of the files kept, manifest excluded).

    The hidden images come from that split: its cached files must not reach a submission.
    """
    import json

    for manifest_path in sorted(cache.glob("*/manifest.json")) if cache.is_dir() else []:
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
            files = manifest["splits"][source]["files"] if manifest.get("dataset") == dataset else None
        except (OSError, ValueError, KeyError, TypeError):
            continue
        if not files:
            continue
        folder = manifest_path.parent
        withheld = {entry["file"] for entry in files.values()} | {"manifest.json"}
        del manifest["splits"][source]
        kept = [path.relative_to(folder).as_posix() for path in sorted(folder.rglob("*")) if path.is_file()]
        yield folder, manifest, [name for name in kept if name not in withheld and name.split("/")[0] not in withheld]


def withheld_cache_view(cache: Path, dataset: str, source: str, view: Path) -> list[str]:
    """bwrap options that hide the held-out ``source`` split of ``dataset``'s caches under /sandbox/cache:
    each such cache folder is rebuilt inside from its other files and a manifest without the split (read-only)."""
    import json

    options: list[str] = []
    for folder, manifest, kept in cache_without_split(cache, dataset, source):
        inside = INSIDE / "cache" / folder.name
        view.mkdir(parents=True, exist_ok=True)
        (view / f"{folder.name}.json").write_text(json.dumps(manifest))
        options += ["--tmpfs", str(inside),
                    "--ro-bind", str(view / f"{folder.name}.json"), str(inside / "manifest.json")]
        for relative in kept:
            options += ["--ro-bind", str(folder / relative), str(inside / relative)]
        options += ["--remount-ro", str(inside)]
    return options


def bwrap_command(inner: list[str], *, submission: Path, images: Path, work: Path, tmp: Path,
                  artifact: Path | None, extra_ro: list[tuple[Path, Path]], options: list[str] = ()) -> list[str]:
    """``bwrap ... inner``: read-only code and inputs, writable work and tmp, every namespace unshared."""
    command = [shutil.which("bwrap") or "bwrap", "--unshare-all", "--die-with-parent", "--new-session",
               "--proc", "/proc", "--dev", "/dev", "--dir", str(INSIDE),
               # /tmp first: code that lives under /tmp (a checkout or venv there) is bound over it below
               "--bind", str(tmp), "/tmp"]
    for path in SYSTEM_PATHS:
        command += ["--ro-bind-try", path, path]
    for path in code_paths():
        command += ["--ro-bind", str(path), str(path)]
    if Path("/dev/nvidiactl").exists():
        for node in sorted(Path("/dev").glob("nvidia*")):
            command += ["--dev-bind-try", str(node), str(node)]
    command += ["--ro-bind", str(submission), str(INSIDE / "submission"),
                "--ro-bind", str(images), str(INSIDE / "images.npy"),
                "--bind", str(work), str(INSIDE / "work")]
    if artifact is not None:
        command += ["--ro-bind", str(artifact), str(INSIDE / "artifact")]
    for source, target in extra_ro:  # in order: later binds cover parts of earlier ones
        command += ["--ro-bind", str(source), str(target)]
    command += list(options)
    return command + ["--remount-ro", "/", "--chdir", str(INSIDE / "work"), "--", *inner]
