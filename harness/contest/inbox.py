"""The contest inbox: which entries are there, when they arrived, when they are complete, and their snapshot.

An entry is a submission folder (with ``submission.toml``) or a ``.tar.gz`` archive of ``harness submission
pack``, either in ``INBOX/<team>/`` (the folder names the team) or directly in ``INBOX/`` (its TOML names the
team). Hidden names and ``*.part`` / ``*.tmp`` files are ignored at every level, and so are other files; a
symbolic link where an entry would be is an entry (refused when taken). Nothing here runs submission code.

:class:`InboxWatch` polls: an entry is *settled* once its signature (files, bytes, newest modification and
change times, read with ``lstat``) has not changed for ``settle_seconds``; its arrival time is its newest
modification time, never later than when the watch first saw this version of it. :func:`take` snapshots a
settled entry into the contest's work folder (archives unpacked safely, folders copied without following
links, both under the archive caps) and fingerprints the snapshot: what is decided and scored is that copy,
whatever the team writes into the inbox afterwards.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..errors import UsageError
from ..pack import ARCHIVE_SUFFIX, MAX_MEMBERS, MAX_UNPACKED_BYTES, unpack_submission
from ..submission import SUBMISSION_FILE, _IGNORED_PARTS, content_hash

#: file names the inbox ignores (uploads in progress), besides hidden names
IGNORED_SUFFIXES = (".part", ".tmp")
KINDS = ("folder", "archive", "link")


def ignored(name: str) -> bool:
    """A hidden name or an upload in progress (``*.part``, ``*.tmp``)."""
    return name.startswith(".") or name.endswith(IGNORED_SUFFIXES)


@dataclass(frozen=True)
class InboxItem:
    """One entry found in the inbox (not read yet: only its files' metadata)."""

    path: Path
    #: relative to the inbox, ``/``-separated: ``TEAM/NAME.tar.gz``, ``TEAM/FOLDER``, ``FOLDER``
    inbox_path: str
    #: the team folder it was found in (None: directly in the inbox, the TOML names the team)
    team_folder: str | None
    #: "folder", "archive" or "link" (a symbolic link: refused)
    kind: str
    #: (files, bytes, newest mtime ns, newest ctime ns, holds a link or special file): changes with any write
    signature: tuple
    #: its newest modification time (UTC epoch seconds)
    modified: float

    @property
    def unsafe(self) -> bool:
        """A link, or a folder holding a link or a special file (refused before anything reads it)."""
        return self.kind == "link" or bool(self.signature[4])


def _signature(path: Path, kind: str) -> tuple:
    """The :attr:`InboxItem.signature` of ``path``, from ``lstat`` only (no link followed, nothing read)."""
    found = os.lstat(path)
    count, size, mtime, ctime, special = 1, found.st_size, found.st_mtime_ns, found.st_ctime_ns, False
    if kind == "folder":
        for folder, folders, files in os.walk(path):  # never descends into a linked folder
            for name in folders + files:
                try:
                    info = os.lstat(os.path.join(folder, name))
                except FileNotFoundError:  # removed meanwhile: the next poll sees the change
                    continue
                count += 1
                size += info.st_size
                mtime, ctime = max(mtime, info.st_mtime_ns), max(ctime, info.st_ctime_ns)
                special = special or not (stat.S_ISREG(info.st_mode) or stat.S_ISDIR(info.st_mode))
    return count, size, mtime, ctime, special


def inbox_item(path: Path, inbox_path: str, team_folder: str | None = None) -> InboxItem | None:
    """The entry at ``path``, named ``inbox_path`` (None: not an entry, or gone meanwhile)."""
    try:
        info = os.lstat(path)
        if stat.S_ISLNK(info.st_mode):
            kind = "link"
        elif stat.S_ISREG(info.st_mode) and path.name.endswith(ARCHIVE_SUFFIX):
            kind = "archive"
        elif stat.S_ISDIR(info.st_mode) and stat.S_ISREG(os.lstat(path / SUBMISSION_FILE).st_mode):
            kind = "folder"
        else:
            return None
        signature = _signature(path, kind)
    except (FileNotFoundError, NotADirectoryError):
        return None
    return InboxItem(path=path, inbox_path=inbox_path, team_folder=team_folder, kind=kind, signature=signature,
                     modified=signature[2] / 1e9)


def scan_inbox(inbox: str | Path) -> list[InboxItem]:
    """Every entry in ``inbox`` now, by inbox path: ``INBOX/ENTRY`` and ``INBOX/TEAM/ENTRY``."""
    inbox = Path(inbox)
    if not inbox.is_dir():
        raise UsageError(f"--inbox {inbox}: no such folder")
    items = []
    for path in sorted(inbox.iterdir()):
        if ignored(path.name):
            continue
        item = inbox_item(path, path.name)
        if item is not None:
            items.append(item)
        elif path.is_dir() and not path.is_symlink():  # a team folder
            items += [item for child in sorted(path.iterdir()) if not ignored(child.name)
                      if (item := inbox_item(child, f"{path.name}/{child.name}", path.name)) is not None]
    return items


@dataclass(frozen=True)
class Arrival:
    """A settled entry and when it arrived."""

    item: InboxItem
    #: UTC epoch seconds: its newest modification time, capped at when this version was first seen
    arrived_at: float


@dataclass
class _Seen:
    signature: tuple
    #: when this signature was first observed (the settle clock)
    since: float
    #: when this version of the entry was first seen (caps the arrival time)
    first_seen: float
    #: it settled once with this signature (a later change starts a new version)
    settled: bool = False


@dataclass
class InboxWatch:
    """Polls an inbox and says which entries are settled (nothing in them changed for ``settle_seconds``)."""

    inbox: Path
    settle_seconds: float = 5.0
    clock: Callable[[], float] = time.time
    _seen: dict[str, _Seen] = field(default_factory=dict)

    def poll(self, settle: bool = True) -> list[Arrival]:
        """The settled entries now, in arrival order (arrival time, then inbox path); ``settle=False`` takes
        every entry at once (``--once``)."""
        now = self.clock()
        arrivals = []
        items = scan_inbox(self.inbox)
        for gone in set(self._seen) - {item.inbox_path for item in items}:
            del self._seen[gone]
        for item in items:
            seen = self._seen.get(item.inbox_path)
            if seen is None:
                seen = self._seen[item.inbox_path] = _Seen(item.signature, now, now)
            elif seen.signature != item.signature:  # still being written, or a new version of a settled one
                seen.first_seen = now if seen.settled else seen.first_seen
                seen.signature, seen.since, seen.settled = item.signature, now, False
            if not settle or now - seen.since >= self.settle_seconds:
                seen.settled = True
                arrivals.append(Arrival(item, min(item.modified, seen.first_seen)))
        return sorted(arrivals, key=lambda a: (a.arrived_at, a.item.inbox_path))


@dataclass(frozen=True)
class Taken:
    """A snapshot of an entry: the folder to read and score (None when refused), its fingerprint and why it was
    refused ("" when not)."""

    folder: Path | None
    fingerprint: str
    problem: str = ""


def fingerprint(item: InboxItem) -> str:
    """sha256 of what is in the inbox now (an archive's bytes, a folder's content hash), read without following
    links; an unsafe entry's fingerprint is its signature's (it is never read)."""
    if item.unsafe:
        target = os.readlink(item.path) if item.kind == "link" else ""
        return "unsafe-" + hashlib.sha256(repr((target, item.signature)).encode()).hexdigest()
    if item.kind == "archive":
        return _archive_sha256(item.path)
    return content_hash(item.path)


def _archive_sha256(path: Path, copy_to: Path | None = None) -> str:
    """sha256 of the archive's bytes (opened without following a link), copied to ``copy_to`` meanwhile."""
    digest, total = hashlib.sha256(), 0
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    with open(fd, "rb") as source, (open(copy_to, "wb") if copy_to else open(os.devnull, "wb")) as target:
        while chunk := source.read(1 << 20):
            total += len(chunk)
            if total > MAX_UNPACKED_BYTES:
                raise UsageError(f"over {MAX_UNPACKED_BYTES >> 20} MiB, refused")
            digest.update(chunk)
            target.write(chunk)
    return digest.hexdigest()


def take(item: InboxItem, into: str | Path) -> Taken:
    """Snapshot ``item`` into ``into/<content hash[:16]>`` (kept when there already); the fingerprint is the
    snapshot's (an archive's bytes, a folder's content hash). A link, a folder holding a link or special file,
    an unsafe or unreadable archive and a folder over the archive caps are refused with the reason, naming the
    entry by its inbox path (never an organiser path)."""
    import tempfile

    into = Path(into)
    into.mkdir(parents=True, exist_ok=True)
    if item.unsafe:
        what = "a symbolic link" if item.kind == "link" else "a folder holding a link or special file"
        return Taken(None, fingerprint(item), f"{item.inbox_path}: {what}, refused")
    with tempfile.TemporaryDirectory(prefix=".take-", dir=into) as scratch:
        copy = Path(scratch) / "submission"
        try:
            if item.kind == "archive":
                archive = Path(scratch) / item.path.name
                found = _archive_sha256(item.path, archive)
                unpack_submission(archive, copy)
            else:
                _copy_folder(item.path, copy)
                found = content_hash(copy)
            target = into / content_hash(copy)[:16]
            if not (target / SUBMISSION_FILE).is_file():
                shutil.rmtree(target, ignore_errors=True)
                os.replace(copy, target)
        except UsageError as exc:
            message = exc.message.replace(str(Path(scratch) / item.path.name), item.inbox_path)
            if not message.startswith(item.inbox_path):
                message = f"{item.inbox_path}: {message}"
            return Taken(None, fingerprint(item), message)
        except OSError as exc:
            return Taken(None, fingerprint(item), f"{item.inbox_path}: unreadable ({exc.strerror or exc})")
    return Taken(target, found)


def _copy_folder(source: Path, target: Path) -> None:
    """Copy the files of a submission folder that its content hash covers (hidden files, caches and ``runs``
    left out), each opened relative to its already opened folder without following links (``os.fwalk``: safe
    against a link swapped in meanwhile); a link or special file, or more than the archive caps, is a
    UsageError."""
    count = total = 0
    target.mkdir(parents=True)
    for folder, folders, files, folder_fd in os.fwalk(source, follow_symlinks=False):
        relative = Path(folder).relative_to(source)
        folders[:] = [name for name in folders if name not in _IGNORED_PARTS]  # what content_hash leaves out
        for name in folders + files:
            mode = os.stat(name, dir_fd=folder_fd, follow_symlinks=False).st_mode
            if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
                raise UsageError(f"{(relative / name).as_posix()} is a link or special file, refused")
        for name in folders:
            (target / relative / name).mkdir()
        for name in files:
            if name.startswith(".") or name.endswith(".pyc"):
                continue
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=folder_fd)
            with open(fd, "rb") as handle:
                if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                    raise UsageError(f"{(relative / name).as_posix()} is a link or special file, refused")
                data = handle.read(MAX_UNPACKED_BYTES + 1 - total)
            count, total = count + 1, total + len(data)
            if count > MAX_MEMBERS or total > MAX_UNPACKED_BYTES:
                raise UsageError(f"over {MAX_MEMBERS} files or {MAX_UNPACKED_BYTES >> 20} MiB, refused")
            (target / relative / name).write_bytes(data)
