"""What an isolated child sees: one ordered list of binds, turned into bubblewrap options or
mounts of the built-in namespace sandbox (and read/write rules under Landlock).

The layout is fixed whatever the organiser's folders are: the system folders,
Python install, virtual environment and harness code read-only at their own
paths; ``/tmp`` from the child's scratch folder; the caller's own inputs under
``/sandbox`` (for scoring: the submission, the hidden images, a writable work
folder, the dataset cache without the held-out split). Nothing else of the
organiser's file system exists inside.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterator

from . import limits

INSIDE = Path("/sandbox")
#: system folders the child needs read-only (shared libraries, certificates, locale, time zones)
SYSTEM_PATHS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/etc/ld.so.cache",
                "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/alternatives", "/etc/localtime", "/etc/ssl",
                "/etc/nsswitch.conf", "/etc/passwd", "/etc/group", "/etc/fonts")
#: cache sub-folder of raw downloads (e.g. Tiny ImageNet's val_annotations.txt): never shown to a child
DOWNLOADS = "downloads"


@dataclass(frozen=True)
class Bind:
    """``source`` on the organiser's machine shown at ``target`` inside (read-only unless ``writable``);
    ``device``: a device node (bound with its device semantics)."""

    source: str
    target: str
    writable: bool = False
    device: bool = False


@dataclass
class View:
    """Ordered binds (later ones cover parts of earlier ones), the working directory inside, and
    ``aliases``: {target: organiser path} that children without a mount namespace use instead
    (a folder of symlinks standing for a view assembled from single files)."""

    binds: list[Bind]
    cwd: str
    aliases: dict[str, str] = field(default_factory=dict)

    def path(self, target: str | Path, mapped: bool) -> str:
        """``target`` as the child must name it: itself under a mount namespace (``mapped``), else the
        organiser's path it comes from (Landlock and plain children see the real file system)."""
        target = str(target)
        if mapped:
            return target
        for alias, source in self.aliases.items():
            if target == alias or target.startswith(alias.rstrip("/") + "/"):
                return source + target[len(alias):]
        for bind in reversed(self.binds):
            if target == bind.target or target.startswith(bind.target.rstrip("/") + "/"):
                return bind.source + target[len(bind.target):]
        return target

    def to_json(self) -> dict:
        return {"binds": [asdict(b) for b in self.binds], "cwd": self.cwd, "aliases": self.aliases}

    def readable(self) -> list[str]:
        """Organiser paths a child without a mount namespace may read (Landlock rules)."""
        return [b.source for b in self.binds if not b.writable] + list(self.aliases.values())

    def writable(self) -> list[str]:
        return [b.source for b in self.binds if b.writable]

    def home_env(self, mapped: bool) -> dict[str, str]:
        """``HOME`` (the working directory) and ``TMPDIR`` as the child names them."""
        return {"HOME": self.path(self.cwd, mapped), "TMPDIR": self.path("/tmp", mapped)}


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


def gpu_device_nodes() -> list[Path]:
    """The NVIDIA device nodes a framework opens (nvidia0.., nvidiactl, nvidia-uvm, nvidia-caps/*)."""
    nodes = sorted(limits.DEV.glob("nvidia*"))
    return [n for n in nodes if not n.is_dir()] + sorted((limits.DEV / "nvidia-caps").glob("*"))


@functools.lru_cache(maxsize=1)
def gpu_library_folders() -> tuple[Path, ...]:
    """Folders of the NVIDIA driver libraries (libcuda, libnvidia-*) outside the system folders, from
    ``ldconfig -p`` (containers put them under e.g. /usr/local/nvidia/lib64)."""
    try:
        listing = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.TimeoutExpired):
        return ()
    folders = set()
    for line in listing.splitlines():
        name, _, path = line.strip().partition(" => ")
        if name.startswith(("libcuda.", "libnvidia-", "libnvcuvid")) and path:
            folder = Path(path).resolve().parent
            if not any(str(folder).startswith(system) for system in SYSTEM_PATHS):
                folders.add(folder)
    return tuple(sorted(folders))


def base_binds(tmp: Path, gpu: bool | None = None) -> list[Bind]:
    """What every child sees: its /tmp, the system folders, the code; with a GPU, its device nodes,
    driver libraries and /sys (read-only, for the driver's device queries)."""
    binds = [Bind(str(tmp), "/tmp", writable=True)]  # first: code under /tmp (a checkout there) is bound over it
    binds += [Bind(p, p) for p in SYSTEM_PATHS if os.path.lexists(p)]
    binds += [Bind(str(p), str(p)) for p in code_paths()]
    if limits.gpu_visible() if gpu is None else gpu:
        binds += [Bind(str(node), str(Path("/dev") / node.relative_to(limits.DEV)), writable=True, device=True)
                  for node in gpu_device_nodes()]
        binds += [Bind(str(p), str(p)) for p in gpu_library_folders()]
        binds.append(Bind("/sys", "/sys"))
    return binds


def child_view(scratch: Path, binds: list[Bind] = (), gpu: bool | None = None,
               aliases: dict[str, str] | None = None) -> View:
    """The usual view: :func:`base_binds`, then ``binds``, then a writable ``/sandbox/work`` (the working
    directory); its work and tmp folders are ``scratch/work`` and ``scratch/tmp`` (made here)."""
    for name in ("work", "tmp"):
        (scratch / name).mkdir(parents=True, exist_ok=True)
    work = Bind(str(scratch / "work"), str(INSIDE / "work"), writable=True)
    return View(base_binds(scratch / "tmp", gpu) + list(binds) + [work], cwd=work.target,
                aliases=dict(aliases or {}))


def cache_without_split(cache: Path, dataset: str, source: str) -> Iterator[tuple[Path, dict, list[str]]]:
    """Each cache folder of ``dataset`` under ``cache`` that holds its ``source`` split, without that split:
    (folder, its manifest with the split removed, the relative paths of the files kept, manifest excluded).

    The hidden images come from that split: its cached files must not reach a submission.
    """
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


def cache_binds(cache: Path, withhold: tuple[str, str] | None, scratch: Path,
                target: Path) -> tuple[list[Bind], dict[str, str]]:
    """The dataset cache at ``target``: every folder but raw downloads; a folder holding the held-out
    ``withhold`` = (dataset, split) rebuilt from its other files and a manifest without that split.

    For children without a mount namespace the same view is also written as a folder of symlinks,
    ``scratch/cache`` (the manifests as files): the returned alias of ``target``.
    """
    rebuilt = {folder.name: (folder, manifest, kept)
               for folder, manifest, kept in (cache_without_split(cache, *withhold) if withhold else ())}
    binds, links = [], scratch / "cache"
    links.mkdir(parents=True, exist_ok=True)
    for entry in sorted(cache.iterdir()):
        if entry.name == DOWNLOADS or entry.name.startswith("."):
            continue
        if entry.name in rebuilt:
            folder, manifest, kept = rebuilt[entry.name]
            (links / entry.name).mkdir()
            (links / entry.name / "manifest.json").write_text(json.dumps(manifest))
            binds.append(Bind(str(links / entry.name / "manifest.json"), str(target / entry.name / "manifest.json")))
            for relative in kept:
                binds.append(Bind(str(folder / relative), str(target / entry.name / relative)))
                (links / entry.name / relative).parent.mkdir(parents=True, exist_ok=True)
                (links / entry.name / relative).symlink_to(folder / relative)
        else:
            binds.append(Bind(str(entry.resolve()), str(target / entry.name)))
            (links / entry.name).symlink_to(entry.resolve())
    return binds, {str(target): str(links)}


def bwrap_command(inner: list[str], view: View, uid: int | None = None) -> list[str]:
    """``bwrap ... inner`` for ``view``: every namespace unshared, read-only root, dies with its parent.
    ``uid`` (a root organiser): no user namespace, and the launcher switches to that uid inside."""
    if uid is None:
        namespaces = ["--unshare-all"]
    else:  # root: a user namespace would map only uid 0, so none; then become ``uid`` before ``inner``
        namespaces = ["--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts", "--unshare-cgroup-try"]
        inner = [sys.executable, "-m", "harness.sandbox.launch", "--uid", str(uid), "--", *inner]
    command = [shutil.which("bwrap") or "bwrap", *namespaces, "--die-with-parent", "--new-session",
               "--proc", "/proc", "--dev", "/dev", "--dir", str(INSIDE)]
    made: set[str] = {"/", str(INSIDE)}
    for bind in view.binds:
        # bubblewrap makes missing parents mode 0700: a child switched to another uid could not pass them
        for parent in reversed(Path(bind.target).parents):
            if str(parent) not in made:
                made.add(str(parent))
                command += ["--perms", "0755", "--dir", str(parent)]
        kind = "--dev-bind" if bind.device else "--bind" if bind.writable else "--ro-bind"
        command += [kind, bind.source, bind.target]
    return command + ["--remount-ro", "/", "--chdir", view.cwd, "--", *inner]


def hidden_arguments(command: list[str]) -> tuple[list[str], int]:
    """``bwrap --args FD`` for a bwrap ``command``: its options go through a pipe, so that the sandbox's
    PID 1 (``/proc/1/cmdline`` inside) does not show the organiser's paths. Returns (command, FD to pass)."""
    end = command.index("--")  # bwrap reads options from FD; the command itself stays on its command line
    read, write = os.pipe()
    os.write(write, b"".join(arg.encode() + b"\0" for arg in command[1:end]))
    os.close(write)
    return [command[0], "--args", str(read), *command[end:]], read
