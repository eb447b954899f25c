"""Where the harness keeps things: ``HARNESS_CACHE_DIR`` (default ``~/.cache/harness``)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """Root of dataset caches and downloads."""
    return Path(os.environ.get("HARNESS_CACHE_DIR") or Path.home() / ".cache" / "harness").expanduser()


def downloads_dir() -> Path:
    """Where downloaded archives (e.g. tiny-imagenet-200.zip) and their extractions go."""
    return Path(os.environ.get("HARNESS_DATA_DIR") or cache_dir() / "downloads").expanduser()
