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
from .specs import FRAMEWORKS, KINDS, SPEC_TYPES, PluginSpec

_HOOKS = {kind: f"harness_register_{kind}s" for kind in KINDS}
_cache: dict[str, dict[str, dict[str, PluginSpec]]] = {}


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


def _clashes(first: PluginSpec, second: PluginSpec) -> bool:
    """Two specs of one name clash unless they serve different frameworks."""
    return first.framework == second.framework or "any" in (first.framework, second.framework)


def _build(kind: str) -> dict[str, dict[str, PluginSpec]]:
    spec_type = SPEC_TYPES[kind]
    registry: dict[str, dict[str, PluginSpec]] = {}
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
            variants = registry.setdefault(spec.name, {})
            for first in variants.values():
                if _clashes(first, spec):
                    raise PluginError(
                        f"Duplicate {kind} '{spec.name}': registered by plugin '{first.source}' "
                        f"({first.distribution}) and by plugin '{spec.source}' ({spec.distribution})",
                        hint="uninstall one of them, or leave one out with HARNESS_PLUGINS",
                    )
            variants[spec.framework] = spec
    return {name: dict(sorted(v.items(), key=lambda item: FRAMEWORKS.index(item[0])))
            for name, v in sorted(registry.items())}


def _variants(kind: str) -> dict[str, dict[str, PluginSpec]]:
    if kind not in SPEC_TYPES:
        raise PluginError(f"Unknown plugin kind '{kind}'.{suggest(kind, KINDS)} Kinds: {', '.join(KINDS)}")
    if kind not in _cache:
        _cache[kind] = _build(kind)
    return _cache[kind]


def variants(kind: str, name: str) -> dict[str, PluginSpec]:
    """Every framework's spec of plugin ``name`` (framework -> spec); e.g. fgsm for torch and tf."""
    get_spec(kind, name)  # unknown name -> did-you-mean error
    return dict(_variants(kind)[name])


def registry(kind: str, framework: str | None = None) -> dict[str, PluginSpec]:
    """Every registered plugin of ``kind`` by name.

    A name may be registered once per framework (``fgsm`` for torch and for tf, with
    the same parameters). With ``framework`` each name maps to the spec usable
    there (its own or an ``any`` one) and names without one are left out; without
    it, to the first of any, torch, tf.
    """
    table = {}
    for name, by_framework in _variants(kind).items():
        if framework is None:
            table[name] = next(iter(by_framework.values()))
        elif framework in by_framework or "any" in by_framework:
            table[name] = by_framework.get(framework) or by_framework["any"]
    return table


def list_plugins(kind: str, pattern: str = "*", framework: str | None = None) -> list[str]:
    """Names of ``kind`` plugins matching a shell wildcard, optionally for one framework."""
    return [name for name in registry(kind, framework) if fnmatch.fnmatchcase(name, pattern)]


def get_spec(kind: str, name: str, framework: str | None = None) -> PluginSpec:
    """The spec of plugin ``name`` (for ``framework`` when given); unknown names get a 'did you mean' error."""
    specs = registry(kind)
    if name not in specs:
        available = ", ".join(specs) or "none"
        raise PluginError(f"Unknown {kind} '{name}'.{suggest(name, specs)} Available: {available}")
    if framework is None:
        return specs[name]
    if framework not in FRAMEWORKS:
        raise PluginError(f"Unknown framework '{framework}'.{suggest(framework, FRAMEWORKS)} "
                          f"Frameworks: {', '.join(FRAMEWORKS)}")
    usable = registry(kind, framework)
    if name not in usable:
        have = ", ".join(_variants(kind)[name])
        raise PluginError(f"{kind} '{name}' has no {framework} version (it exists for: {have})")
    return usable[name]


def create(kind: str, name: str, framework: str | None = None, **params: Any) -> Any:
    """Build plugin ``name`` of ``kind`` (for ``framework`` when given) with ``params`` over its defaults."""
    return get_spec(kind, name, framework).create(**params)


def _kind_api(kind: str):
    def list_(pattern: str = "*", framework: str | None = None) -> list[str]:
        return list_plugins(kind, pattern, framework)

    def get(name: str, framework: str | None = None) -> PluginSpec:
        return get_spec(kind, name, framework)

    def create_(name: str, framework: str | None = None, **params: Any) -> Any:
        return create(kind, name, framework, **params)

    list_.__doc__ = f"Names of registered {kind}s matching a wildcard pattern."
    get.__doc__ = f"The spec of the {kind} called ``name``."
    create_.__doc__ = f"Create the {kind} called ``name`` with ``params`` over its defaults."
    return list_, get, create_


list_datasets, get_dataset, create_dataset = _kind_api("dataset")
list_backbones, get_backbone, create_backbone = _kind_api("backbone")
list_augmentations, get_augmentation, create_augmentation = _kind_api("augmentation")
list_attacks, get_attack, create_attack = _kind_api("attack")
list_defenses, get_defense, create_defense = _kind_api("defense")
