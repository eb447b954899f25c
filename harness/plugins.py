"""Plugin manager: built-in plugins by import, third-party ones from the ``harness`` entry-point group.

Built-in plugins (:data:`BUILTIN_PLUGINS`, datasette-style ordinary hook modules)
are registered by importing them, so a stale or partial install cannot leave the
harness without them. Third-party plugins load from the ``harness`` entry-point
group automatically unless switched off:

- ``HARNESS_DISABLE_PLUGIN_AUTOLOAD=1``: load no third-party entry points,
  except those named in ``HARNESS_PLUGINS``;
- ``HARNESS_PLUGINS=a,b``: allow-list of third-party plugins (entry-point or
  distribution names); the empty string allows none;
- ``HARNESS_TRACE_HOOKS=1``: print every hook call to stderr.

A plugin that fails to import is recorded in :attr:`HarnessPluginManager.load_errors`
(named, with the reason) and the rest still load.

A submission's or recipe's own plugin modules (``plugins = [...]``) are registered
only while its work runs: :func:`folder_plugins`.
"""

from __future__ import annotations

import importlib
import os
import sys
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import Iterator, Sequence

import pluggy

from . import hookspecs
from .errors import HarnessError, PluginError, UsageError

ENTRY_POINT_GROUP = "harness"
#: what a child process keeps of this environment to see the same plugins: the third-party plugin switches,
#: and where packages are installed
CHILD_PLUGIN_ENV = ("HARNESS_PLUGINS", "HARNESS_DISABLE_PLUGIN_AUTOLOAD", "PYTHONPATH")
BUILTIN_DISTRIBUTION = "harness"
#: built-in plugin modules by plugin name; importing them never imports torch or tensorflow
BUILTIN_PLUGINS = {
    "datasets": "harness.data.builtin",
    "torch": "harness_torch.plugin",
    "tf": "harness_tf.plugin",
    "corruptions": "harness_corruptions.plugin",
}


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

    def load_builtins(self) -> None:
        """Import and register every built-in plugin module; record failures (the rest still load)."""
        from . import __version__

        for name, module_name in BUILTIN_PLUGINS.items():
            if self.has_plugin(name):
                continue
            try:
                module = importlib.import_module(module_name)
            except Exception as exc:  # noqa: BLE001 - a broken built-in is reported, not fatal
                self.load_errors.append(
                    PluginLoadError(name, module_name, BUILTIN_DISTRIBUTION, f"{type(exc).__name__}: {exc}")
                )
                continue
            self.register_module(module, name, BUILTIN_DISTRIBUTION, __version__)
        self.check_hooks()

    def load_entry_points(self, group: str = ENTRY_POINT_GROUP) -> None:
        """Import and register every allowed third-party entry point of ``group``; record failures.

        Entry points of the ``harness`` distribution itself (an older install declared the
        built-ins that way) are skipped: the built-ins are registered by :meth:`load_builtins`.
        """
        allow = _allow_list()
        autoload = not _env_flag("HARNESS_DISABLE_PLUGIN_AUTOLOAD")
        for ep in sorted(metadata.entry_points(group=group), key=lambda e: e.name):
            dist = ep.dist.metadata["Name"] if ep.dist is not None else "unknown"
            version = ep.dist.version if ep.dist is not None else ""
            if dist == BUILTIN_DISTRIBUTION or ep.value in BUILTIN_PLUGINS.values():
                continue
            named = allow is not None and (ep.name in allow or dist in allow)
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
    """The process-wide plugin manager: built-ins, then third-party entry points, on first use."""
    global _manager
    if _manager is None:
        manager = HarnessPluginManager()
        manager.load_builtins()
        manager.load_entry_points()
        _manager = manager
    return _manager


def reset_plugin_manager(manager: HarnessPluginManager | None = None) -> None:
    """Forget the loaded plugins (or install ``manager``); registries rebuild on next use."""
    global _manager
    _manager = manager
    from . import registry

    registry.clear_cache()


# --------------------------------------------------------------------------- a folder's own plugin modules


@dataclass
class _FolderModule:
    """One plugin module of a folder: imported once per process, in sys.modules only while active."""

    folder: Path
    name: str
    #: every sys.modules entry its import brought in from the folder (itself, its submodules, siblings)
    modules: dict[str, ModuleType] = field(default_factory=dict)
    stamp: tuple = ()
    #: what those names meant in sys.modules before activation (None: absent)
    shadowed: dict[str, ModuleType | None] = field(default_factory=dict)
    active: int = 0
    manager: HarnessPluginManager | None = None

    @property
    def plugin_name(self) -> str:
        return f"{self.folder}/{self.name}"

    def _current_stamp(self) -> tuple:
        files = sorted(m.__file__ for m in self.modules.values() if getattr(m, "__file__", None))
        return tuple((f, os.stat(f).st_mtime_ns) if os.path.exists(f) else (f, None) for f in files)

    def _brought_in(self, before: set[str]) -> dict[str, ModuleType]:
        """Modules new since ``before`` that the folder provides: file under it, top-level package new too
        (so a harness module first imported meanwhile is never taken for the folder's)."""
        found = {}
        for name in set(sys.modules) - before:
            origin = getattr(sys.modules[name], "__file__", None)
            if origin and name.split(".")[0] not in before and Path(origin).resolve().is_relative_to(self.folder):
                found[name] = sys.modules[name]
        return found

    def _shadow(self, names) -> None:
        for name in names:
            self.shadowed.setdefault(name, sys.modules.pop(name, None))

    def _import(self, declared_in: Path) -> ModuleType:
        prefix = self.name + "."
        self._shadow([n for n in list(sys.modules) if n == self.name or n.startswith(prefix)])
        before = set(sys.modules)
        try:
            module = importlib.import_module(self.name)
        except BaseException as exc:
            for name in self._brought_in(before):
                del sys.modules[name]
            if isinstance(exc, HarnessError) or not isinstance(exc, Exception):
                raise
            raise UsageError(f"{declared_in}: plugins: module '{self.name}' failed to import: "
                             f"{type(exc).__name__}: {exc}") from None
        self.modules = self._brought_in(before)
        self.modules[self.name] = module
        self.stamp = self._current_stamp()
        return module

    def activate(self, manager: HarnessPluginManager, declared_in: Path) -> None:
        """Put the module (imported on first use, or again when its files changed) in sys.modules and register it."""
        if self.active:
            self.active += 1
            return
        sys.path.insert(0, str(self.folder))
        try:
            if self.modules and self.stamp == self._current_stamp():
                self._shadow(self.modules)
                sys.modules.update(self.modules)
                module = self.modules[self.name]
            else:
                module = self._import(declared_in)
        except BaseException:
            self._restore()
            raise
        self.active, self.manager = 1, manager
        manager.register_module(module, self.plugin_name, self.folder.name)

    def deactivate(self) -> None:
        """Unregister the module and take the folder's modules out of sys.modules (restoring what they hid)."""
        self.active -= 1
        if self.active:
            return
        manager, self.manager = self.manager, None
        if manager is not None and manager.has_plugin(self.plugin_name):
            manager.unregister(name=self.plugin_name)
            manager.origins.pop(self.plugin_name, None)
        self._restore()

    def _restore(self) -> None:
        for name, module in self.modules.items():
            if sys.modules.get(name) is module:
                del sys.modules[name]
        for name, module in self.shadowed.items():
            if module is not None:
                sys.modules[name] = module
        self.shadowed = {}
        try:
            sys.path.remove(str(self.folder))
        except ValueError:
            pass


_folder_modules: dict[tuple[str, str], _FolderModule] = {}


@contextmanager
def folder_plugins(folder: str | os.PathLike, modules: Sequence[str], *,
                   declared_in: str | os.PathLike) -> Iterator[list[str]]:
    """Register the plugin modules ``modules`` of ``folder`` (a submission's or a recipe's ``plugins``)
    for the duration of the block; yields their plugin names.

    Each module is imported from ``folder`` itself, once per process, and is registered under a
    name unique to the folder (``<folder>/<module>``), so two folders shipping a module of the same
    name (the documented ``team_plugins``) never see each other's hooks. Outside the block the
    folder's modules are neither registered nor in ``sys.modules``; blocks for the same folder nest.
    An import failure is a UsageError naming ``declared_in`` and the module; a misspelled hook a
    PluginError naming the plugin. The registries are rebuilt on entry and on exit.
    """
    from .registry import clear_cache

    if not modules:
        yield []
        return
    root = Path(folder).resolve()
    manager = get_plugin_manager()
    entered: list[_FolderModule] = []
    try:
        for name in dict.fromkeys(modules):
            entry = _folder_modules.setdefault((str(root), name), _FolderModule(root, name))
            entry.activate(manager, Path(declared_in))
            entered.append(entry)
        clear_cache()
        manager.check_hooks()
        yield [entry.plugin_name for entry in entered]
    finally:
        for entry in reversed(entered):
            entry.deactivate()
        clear_cache()
