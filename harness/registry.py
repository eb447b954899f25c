"""Registries of every plugin kind, built from the plugin manager's hooks.

timm-style API: ``list_attacks("pgd*")``, ``create_attack("fgsm", eps=8/255)``,
``get_attack("fgsm")`` (the spec). Errors are written for people::

    Unknown attack 'fgsn'. Did you mean 'fgsm'? Available: bim, fgsm, pgd
"""

from __future__ import annotations

import difflib
import fnmatch
from dataclasses import replace
from typing import Any, Iterable

from .errors import PluginError
from .specs import KINDS, SPEC_TYPES, PluginSpec

_HOOKS = {kind: f"harness_register_{kind}s" for kind in KINDS}
_cache: dict[str, dict[str, PluginSpec]] = {}


def suggest(name: str, choices: Iterable[str]) -> str:
    """' Did you mean 'x'?' for the closest choice, or ''."""
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f" Did you mean '{close[0]}'?" if close else ""


def clear_cache() -> None:
    """Drop every built registry (after plugins were added or removed)."""
    _cache.clear()


def _hook_results(kind: str):
    """Yield (plugin name, list of specs) for every plugin implementing this kind's hook."""
    from .plugins import get_plugin_manager

    pm = get_plugin_manager()
    hook = getattr(pm.hook, _HOOKS[kind])
    for impl in hook.get_hookimpls():
        specs = impl.function()
        yield impl.plugin_name, pm.origins.get(impl.plugin_name), specs or []


def _build(kind: str) -> dict[str, PluginSpec]:
    spec_type = SPEC_TYPES[kind]
    registry: dict[str, PluginSpec] = {}
    for plugin_name, origin, specs in _hook_results(kind):
        for spec in specs:
            if not isinstance(spec, spec_type):
                raise PluginError(
                    f"Plugin '{plugin_name}' returned {type(spec).__name__} from "
                    f"{_HOOKS[kind]}; expected {spec_type.__name__}"
                )
            spec = replace(
                spec,
                source=plugin_name,
                distribution=origin.distribution if origin else plugin_name,
                version=origin.version if origin else "",
            )
            if spec.name in registry:
                first = registry[spec.name]
                raise PluginError(
                    f"Duplicate {kind} '{spec.name}': registered by plugin '{first.source}' "
                    f"({first.distribution}) and by plugin '{spec.source}' ({spec.distribution})",
                    hint="uninstall one of them, or leave one out with HARNESS_PLUGINS",
                )
            registry[spec.name] = spec
    return dict(sorted(registry.items()))


def registry(kind: str) -> dict[str, PluginSpec]:
    """Every registered plugin of ``kind`` by name."""
    if kind not in SPEC_TYPES:
        raise PluginError(f"Unknown plugin kind '{kind}'.{suggest(kind, KINDS)} Kinds: {', '.join(KINDS)}")
    if kind not in _cache:
        _cache[kind] = _build(kind)
    return _cache[kind]


def list_plugins(kind: str, pattern: str = "*", framework: str | None = None) -> list[str]:
    """Names of ``kind`` plugins matching a shell wildcard, optionally for one framework."""
    return [
        name
        for name, spec in registry(kind).items()
        if fnmatch.fnmatchcase(name, pattern)
        and (framework is None or spec.framework in (framework, "any"))
    ]


def get_spec(kind: str, name: str) -> PluginSpec:
    """The spec of plugin ``name``; an unknown name gives a 'did you mean' error."""
    specs = registry(kind)
    if name not in specs:
        available = ", ".join(specs) or "none"
        raise PluginError(f"Unknown {kind} '{name}'.{suggest(name, specs)} Available: {available}")
    return specs[name]


def create(kind: str, name: str, **params: Any) -> Any:
    """Build plugin ``name`` of ``kind`` with ``params`` over its defaults."""
    return get_spec(kind, name).create(**params)


def _kind_api(kind: str):
    def list_(pattern: str = "*", framework: str | None = None) -> list[str]:
        return list_plugins(kind, pattern, framework)

    def get(name: str) -> PluginSpec:
        return get_spec(kind, name)

    def create_(name: str, **params: Any) -> Any:
        return create(kind, name, **params)

    list_.__doc__ = f"Names of registered {kind}s matching a wildcard pattern."
    get.__doc__ = f"The spec of the {kind} called ``name``."
    create_.__doc__ = f"Create the {kind} called ``name`` with ``params`` over its defaults."
    return list_, get, create_


list_datasets, get_dataset, create_dataset = _kind_api("dataset")
list_backbones, get_backbone, create_backbone = _kind_api("backbone")
list_augmentations, get_augmentation, create_augmentation = _kind_api("augmentation")
list_attacks, get_attack, create_attack = _kind_api("attack")
list_defenses, get_defense, create_defense = _kind_api("defense")
