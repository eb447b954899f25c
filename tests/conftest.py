"""Shared fixtures. Tests never pick up third-party plugins installed on the machine,
and never touch the user's cache (HARNESS_CACHE_DIR points into a temp folder)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

# Set before any harness import so that every plugin manager built in tests sees them.
os.environ["HARNESS_DISABLE_PLUGIN_AUTOLOAD"] = "1"
os.environ.pop("HARNESS_PLUGINS", None)
os.environ.pop("HARNESS_DEBUG", None)
# pytest-xdist starts its workers with COLUMNS=80 in their environment: the CLI's rich consoles would take that
# width once, at import, and the tests that hand CliRunner a wider COLUMNS could not widen them. Without it
# they read the width when they print, as in a run without workers.
os.environ.pop("COLUMNS", None)

TESTS = Path(__file__).parent
sys.path.insert(0, str(TESTS / "plugins"))  # sample plugins importable by module name
#: a third-party plugin package (pyproject.toml with a harness entry point), installed by thirdparty_site
THIRDPARTY_PACKAGE = TESTS / "thirdparty" / "harness_extra"


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
    """A plugin manager rebuilt (built-ins, then allowed entry points) for this test, restored afterwards."""
    from harness.plugins import reset_plugin_manager

    reset_plugin_manager()
    yield
    reset_plugin_manager()


@pytest.fixture(scope="session")
def thirdparty_site(tmp_path_factory) -> Path:
    """tests/thirdparty/harness_extra installed for real (``pip install --target``: a .dist-info with its
    entry_points.txt); returns the install folder. Nothing is on sys.path until ``thirdparty_plugins``."""
    root = tmp_path_factory.mktemp("thirdparty")
    source = root / "harness_extra"  # a copy: the build leaves build/ and *.egg-info next to pyproject.toml
    shutil.copytree(THIRDPARTY_PACKAGE, source, ignore=shutil.ignore_patterns("__pycache__", "build", "*.egg-info"))
    site = root / "site-packages"  # named so: the sandbox lets children read site-packages folders on sys.path
    result = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                             "--no-index", "--target", str(site), str(source)],
                            capture_output=True, text=True, timeout=300)
    if result.returncode != 0:
        pytest.fail(f"installing {THIRDPARTY_PACKAGE.name} failed: {result.stderr.strip()[-2000:]}")
    return site


@pytest.fixture
def thirdparty_plugins(thirdparty_site, monkeypatch) -> Path:
    """harness-extra active for one test: on sys.path and PYTHONPATH (child processes see it too), allowed by
    HARNESS_PLUGINS (autoload stays off), the plugin manager rebuilt before and after."""
    from harness.plugins import reset_plugin_manager

    monkeypatch.syspath_prepend(str(thirdparty_site))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(thirdparty_site),
                                                                    os.environ.get("PYTHONPATH")])))
    monkeypatch.setenv("HARNESS_PLUGINS", "harness-extra")
    reset_plugin_manager()
    yield thirdparty_site
    reset_plugin_manager()
    for name in [n for n in sys.modules if n == "harness_extra" or n.startswith("harness_extra.")]:
        del sys.modules[name]
