"""Plugin manager: loads plugins from the ``harness`` entry-point group.

Built-in plugins (entry points of the ``harness`` distribution itself) always
load. Third-party plugins load automatically unless switched off:

- ``HARNESS_DISABLE_PLUGIN_AUTOLOAD=1``: load no third-party entry points,
  except those named in ``HARNESS_PLUGINS``;
- ``HARNESS_PLUGINS=a,b``: allow-list of third-party plugins (entry-point or
  distribution names); the empty string allows none;
- ``HARNESS_TRACE_HOOKS=1``: print every hook call to stderr.

A plugin that fails to import is recorded in :attr:`HarnessPluginManager.load_errors`
(named, with the reason) and the rest still load.
"""

from __future__ import annotations

import importlib
import os
import sys
from dataclasses import dataclass
from importlib import metadata
from types import ModuleType

import pluggy

from . import hookspecs
from .errors import PluginError

ENTRY_POINT_GROUP = "harness"
BUILTIN_DISTRIBUTION = "harness"


@dataclass(frozen=True)
class PluginLoadError:
    """A plugin that could not be imported, and why."""

    name: str
    target: str
    distribution: str
    reason: str

    def __str__(self) -> str:
        return f"Plugin '{self.name}' ({self.target}, from {self.distribution}) failed to load: {self.reason}"


@dataclass(frozen=True)
class PluginOrigin:
    """Where a registered plugin module came from."""

    name: str
    distribution: str
    version: str


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() not in ("", "0", "false", "no")


def _allow_list() -> set[str] | None:
    raw = os.environ.get("HARNESS_PLUGINS")
    if raw is None:
        return None
    return {item.strip() for item in raw.split(",") if item.strip()}


class HarnessPluginManager(pluggy.PluginManager):
    """A pluggy PluginManager that remembers where each plugin came from and what failed."""

    def __init__(self) -> None:
        super().__init__("harness")
        self.add_hookspecs(hookspecs)
        self.load_errors: list[PluginLoadError] = []
        self.origins: dict[str, PluginOrigin] = {}
        if _env_flag("HARNESS_TRACE_HOOKS"):
            self.trace.root.setwriter(lambda msg: print(msg, end="", file=sys.stderr))
            self.enable_tracing()

    def register_module(self, module: ModuleType, name: str, distribution: str = "", version: str = "") -> None:
        """Register ``module`` as plugin ``name`` and remember its origin."""
        self.register(module, name=name)
        self.origins[name] = PluginOrigin(name, distribution or name, version)

    def load_entry_points(self, group: str = ENTRY_POINT_GROUP) -> None:
        """Import and register every allowed entry point of ``group``; record failures."""
        allow = _allow_list()
        autoload = not _env_flag("HARNESS_DISABLE_PLUGIN_AUTOLOAD")
        for ep in sorted(metadata.entry_points(group=group), key=lambda e: e.name):
            dist = ep.dist.metadata["Name"] if ep.dist is not None else "unknown"
            version = ep.dist.version if ep.dist is not None else ""
            builtin = dist == BUILTIN_DISTRIBUTION
            named = allow is not None and (ep.name in allow or dist in allow)
            if not builtin:
                if allow is not None and not named:
                    continue
                if not autoload and not named:
                    continue
            if self.has_plugin(ep.name):
                continue
            try:
                module = ep.load()
            except Exception as exc:  # noqa: BLE001 - any import failure is reported, not fatal
                self.load_errors.append(
                    PluginLoadError(ep.name, ep.value, dist, f"{type(exc).__name__}: {exc}")
                )
                continue
            self.register_module(module, ep.name, dist, version)
        self.check_hooks()

    def check_hooks(self) -> None:
        """``check_pending()``, as a PluginError naming the plugin with an unknown hook."""
        try:
            self.check_pending()
        except pluggy.PluginValidationError as exc:
            name = self.get_name(exc.plugin) or repr(exc.plugin)
            raise PluginError(
                f"Plugin '{name}': {exc}",
                hint="hook names are listed in harness/hookspecs.py (harness_register_<kind>s)",
            ) from None

    def load_module(self, module_name: str) -> None:
        """Import ``module_name`` and register it as a plugin (for submissions and tests)."""
        module = importlib.import_module(module_name)
        self.register_module(module, module_name, module_name)
        self.check_hooks()


_manager: HarnessPluginManager | None = None


def get_plugin_manager() -> HarnessPluginManager:
    """The process-wide plugin manager, loading entry points on first use."""
    global _manager
    if _manager is None:
        manager = HarnessPluginManager()
        manager.load_entry_points()
        _manager = manager
    return _manager


def reset_plugin_manager(manager: HarnessPluginManager | None = None) -> None:
    """Forget the loaded plugins (or install ``manager``); registries rebuild on next use."""
    global _manager
    _manager = manager
    from . import registry

    registry.clear_cache()
