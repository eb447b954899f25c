"""Downloads with a progress bar, written atomically, and zip extraction.

Standard library ``urllib`` is enough for one archive; a failed download says
how to use a local file instead (machines without internet are common).
"""

from __future__ import annotations

import shutil
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

from ..atomic import atomic_directory, atomic_path
from ..errors import DataError, DownloadError
from ..progress import progress_bar


def download(url: str, target: Path, *, progress: bool = True, local_hint: str = "") -> Path:
    """Fetch ``url`` into ``target`` (skipped when it already exists)."""
    if target.exists():
        return target
    try:
        with urllib.request.urlopen(url, timeout=60) as response, atomic_path(target) as tmp:
            total = int(response.headers.get("Content-Length") or 0)
            with open(tmp, "wb") as out, progress_bar(total or 1, f"downloading {target.name}", progress) as advance:
                while chunk := response.read(1 << 20):
                    out.write(chunk)
                    advance(len(chunk) if total else 0)
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        reason = getattr(exc, "reason", exc)
        raise DownloadError(f"Cannot download {url}: {reason}", hint=local_hint or None) from None
    return target


def extract_zip(archive: Path, destination: Path, *, progress: bool = True) -> Path:
    """Extract ``archive`` into ``destination`` atomically (skipped when already there)."""
    if destination.exists():
        return destination
    try:
        with zipfile.ZipFile(archive) as zf, atomic_directory(destination) as tmp:
            members = zf.infolist()
            root = tmp.resolve()
            with progress_bar(len(members), f"extracting {archive.name}", progress) as advance:
                for member in members:
                    if not (root / member.filename).resolve().is_relative_to(root):
                        raise DataError(f"{archive}: member '{member.filename}' escapes the archive folder")
                    zf.extract(member, tmp)
                    advance()
    except zipfile.BadZipFile as exc:
        raise DataError(f"{archive}: not a valid zip archive ({exc})") from None
    return destination


def copy_file(source: Path, target: Path) -> Path:
    """Copy a local archive into the downloads folder atomically."""
    with atomic_path(target) as tmp:
        shutil.copyfile(source, tmp)
    return target
