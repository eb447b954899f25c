"""Submission archives: ``harness submission pack`` writes them, scoring and validation unpack them.

An archive holds the files of :func:`harness.submission.submission_files` (what the content hash covers) at
its root, byte-identical for identical content: sorted entries, mtime 0, uid/gid 0, mode 0644, gzip mtime 0.
Its name carries the content hash: ``NAME-<hash12>.tar.gz``. Unpacking refuses anything but plain files and
folders inside the archive (absolute paths, ``..``, links, devices) and archives over a size cap.
"""

from __future__ import annotations

import gzip
import io
import os
import tarfile
from pathlib import Path

from .errors import UsageError

__all__ = ["ARCHIVE_SUFFIX", "MAX_UNPACKED_BYTES", "expand_archives", "is_archive", "pack_submission",
           "unpack_submission"]

ARCHIVE_SUFFIX = ".tar.gz"
#: the most bytes (all files together) and members an archive may unpack to
MAX_UNPACKED_BYTES = 512 * 1024 * 1024
MAX_MEMBERS = 10_000


def is_archive(path: str | os.PathLike) -> bool:
    """A ``.tar.gz`` file path (what pack writes)."""
    return str(path).endswith(ARCHIVE_SUFFIX) and Path(path).is_file()


def archive_bytes(root: str | os.PathLike) -> bytes:
    """The reproducible ``.tar.gz`` bytes of the submission folder ``root``."""
    from .submission import submission_files

    root = Path(root)
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for relative in submission_files(root):
            data = (root / relative).read_bytes()
            info = tarfile.TarInfo(relative.as_posix())
            info.size, info.mtime, info.mode = len(data), 0, 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            tar.addfile(info, io.BytesIO(data))
    packed = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=packed, mtime=0, compresslevel=9) as gz:
        gz.write(raw.getvalue())
    return packed.getvalue()


def pack_submission(root: str | os.PathLike, out: str | os.PathLike | None = None) -> Path:
    """Write ``root``'s archive to ``out`` (a file, or a folder for ``NAME-<hash12>.tar.gz``; default: the
    current folder) atomically; return its path."""
    from .atomic import atomic_path
    from .submission import content_hash, read_toml, submission_file

    toml_path = submission_file(root)
    folder = toml_path.parent
    name = read_toml(toml_path).get("name")
    name = name if isinstance(name, str) and name and "/" not in name else folder.resolve().name
    default_name = f"{name}-{content_hash(folder)[:12]}{ARCHIVE_SUFFIX}"
    target = Path(out) if out is not None else Path(default_name)
    if out is not None and target.is_dir():
        target = target / default_name
    if not target.name.endswith(ARCHIVE_SUFFIX):
        raise UsageError(f"--out {target}: an archive name ends with {ARCHIVE_SUFFIX}")
    with atomic_path(target) as tmp:
        tmp.write_bytes(archive_bytes(folder))
    return target


def _check_members(archive: Path, members: list[tarfile.TarInfo]) -> None:
    """Only plain files and folders, inside the archive, under the caps; else a one-line UsageError."""
    if len(members) > MAX_MEMBERS:
        raise UsageError(f"{archive}: more than {MAX_MEMBERS} members, refused")
    total = 0
    for member in members:
        parts = Path(member.name).parts
        if member.name.startswith(("/", "\\")) or ".." in parts or (parts and ":" in parts[0]):
            raise UsageError(f"{archive}: member '{member.name}' points outside the archive, refused")
        if not (member.isfile() or member.isdir()):
            raise UsageError(f"{archive}: member '{member.name}' is a link or special file, refused")
        total += member.size
        if total > MAX_UNPACKED_BYTES:
            raise UsageError(f"{archive}: member '{member.name}' takes it over {MAX_UNPACKED_BYTES >> 20} MiB "
                             "unpacked, refused")


def unpack_submission(archive: str | os.PathLike, target: str | os.PathLike) -> Path:
    """Unpack ``archive`` into the folder ``target`` (replaced as a whole, never half-written); return it."""
    from .atomic import atomic_directory
    from .submission import submission_file

    archive, target = Path(archive), Path(target)
    try:
        with tarfile.open(archive, mode="r:gz") as tar:
            members = tar.getmembers()
            _check_members(archive, members)
            with atomic_directory(target) as tmp:
                tar.extractall(tmp, members=members, filter="data")
                submission_file(tmp)  # an archive without submission.toml is no submission
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise UsageError(f"{archive}: not a readable submission archive ({exc})") from None
    except UsageError as exc:
        if str(archive) in exc.message:
            raise
        raise UsageError(f"{archive}: no submission.toml at the archive's root") from None
    return target


def expand_archives(paths: list[str | os.PathLike], into: str | os.PathLike) -> list[Path]:
    """``paths`` with every ``.tar.gz`` replaced by its unpacked folder ``into/<archive name>``."""
    expanded = []
    for path in map(Path, paths):
        if is_archive(path):
            path = unpack_submission(path, Path(into) / path.name[: -len(ARCHIVE_SUFFIX)])
        expanded.append(path)
    return expanded
