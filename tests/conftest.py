"""Shared fixtures. Tests never pick up third-party plugins installed on the machine,
and never touch the user's cache (HARNESS_CACHE_DIR points into a temp folder)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

# Set before any harness import so that every plugin manager built in tests sees them.
os.environ["HARNESS_DISABLE_PLUGIN_AUTOLOAD"] = "1"
os.environ.pop("HARNESS_PLUGINS", None)
os.environ.pop("HARNESS_DEBUG", None)

TESTS = Path(__file__).parent
sys.path.insert(0, str(TESTS / "plugins"))  # sample plugins importable by module name


@pytest.fixture(scope="session", autouse=True)
def _session_cache(tmp_path_factory):
    cache = tmp_path_factory.mktemp("harness-cache")
    os.environ["HARNESS_CACHE_DIR"] = str(cache)
    yield cache


@pytest.fixture
def cache_dir(tmp_path, monkeypatch) -> Path:
    """A fresh, empty cache root for one test."""
    path = tmp_path / "cache"
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(path))
    return path


@pytest.fixture
def fresh_plugins():
    """A plugin manager rebuilt from entry points for this test, restored afterwards."""
    from harness.plugins import reset_plugin_manager

    reset_plugin_manager()
    yield
    reset_plugin_manager()
