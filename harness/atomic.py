"""Atomic writes: a temp file (or folder) beside the target, then ``os.replace``.

Readers see the old content or the new, never half of it. A folder that already exists is swapped with its
replacement in one ``renameat2(RENAME_EXCHANGE)`` call where the kernel and file system support it (Linux 3.15+),
else by two renames (the old one moved aside, the new one moved in: a reader may find no folder between them).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Iterator


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``target``; move it into place if the block succeeds."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix or ".tmp", dir=target.parent)
    os.fchmod(fd, 0o666 & ~_umask())  # the mode any other new file gets (mkstemp's is 0600)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    finally:
        tmp_path.unlink(missing_ok=True)


def write_text(target: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``target`` atomically."""
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(target: str | os.PathLike, data: Any) -> None:
    """Write ``data`` as indented JSON to ``target`` atomically."""
    write_text(target, json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")


#: renameat2's flag: swap the two paths; AT_FDCWD: paths relative to the working directory
RENAME_EXCHANGE = 2
AT_FDCWD = -100


def exchange(first: str | os.PathLike, second: str | os.PathLike) -> bool:
    """Swap two existing paths atomically with ``renameat2(RENAME_EXCHANGE)`` (through ctypes: Python has no
    wrapper); False, with nothing changed, where the C library, kernel or file system lacks it."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError, TypeError):  # no glibc 2.28+ (musl, other systems, Windows)
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if renameat2(AT_FDCWD, os.fsencode(first), AT_FDCWD, os.fsencode(second), RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EPERM):  # EPERM: seccomp
        return False
    raise OSError(code, os.strerror(code), os.fspath(first))


@contextlib.contextmanager
def atomic_directory(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a fresh temporary folder; on success it replaces ``target`` as a whole (:func:`exchange` when
    ``target`` exists, so readers always find one complete folder; two renames where that is unsupported)."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        yield tmp
        if target.is_dir() and not target.is_symlink() and exchange(tmp, target):
            pass  # tmp now holds the old folder: removed below
        elif target.exists():
            old = target.with_name(f".{target.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
