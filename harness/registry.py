"""Registries of every plugin kind, built from the plugin manager's hooks.

timm-style API, one written-out function per kind: ``list_attacks("pgd*")``,
``create_attack("fgsm", eps=8/255)``, ``get_attack("fgsm")`` (the spec), likewise
datasets, backbones, augmentations and defenses. ``create_*`` checks what the plugin's
factory returns against its kind's contract (:mod:`harness.contracts`). Errors are
written for people::

    Unknown attack 'fgsn'. Did you mean 'fgsm'? Available: bim, fgsm, pgd
"""

from __future__ import annotations

import fnmatch
from dataclasses import replace
from typing import Any, Optional, cast

from .contracts import Attack, Augmentation, Dataset, Defense, Model
from .errors import PluginError, suggest
from .specs import (FRAMEWORKS, KINDS, SPEC_TYPES, AttackSpec, AugmentationSpec, BackboneSpec, DatasetSpec,
                    DefenseSpec, PluginSpec)

_HOOKS = {kind: f"harness_register_{kind}s" for kind in KINDS}
_cache: dict[str, dict[str, dict[str, PluginSpec]]] = {}


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


def registry(kind: str, *, framework: Optional[str] = None) -> dict[str, PluginSpec]:
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


def list_plugins(kind: str, pattern: str = "*", *, framework: Optional[str] = None) -> list[str]:
    """Names of ``kind`` plugins matching a shell wildcard, optionally for one framework."""
    return [name for name in registry(kind, framework=framework) if fnmatch.fnmatchcase(name, pattern)]


def get_spec(kind: str, name: str, *, framework: Optional[str] = None) -> PluginSpec:
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
    usable = registry(kind, framework=framework)
    if name not in usable:
        have = ", ".join(_variants(kind)[name])
        raise PluginError(f"{kind} '{name}' has no {framework} version (it exists for: {have})")
    return usable[name]


def create(kind: str, name: str, *, framework: Optional[str] = None, **params: Any) -> Any:
    """Build plugin ``name`` of ``kind`` (for ``framework`` when given) with ``params`` over its defaults,
    checked against the kind's contract."""
    return get_spec(kind, name, framework=framework).create(**params)


# --- datasets: factory(**params) -> Dataset (.params, .plan(*, skip_bad=False))

def list_datasets(pattern: str = "*", *, framework: Optional[str] = None) -> list[str]:
    """Names of registered datasets matching a shell wildcard (``framework``: usable there)."""
    return list_plugins("dataset", pattern, framework=framework)


def get_dataset(name: str, *, framework: Optional[str] = None) -> DatasetSpec:
    """The spec of dataset ``name``."""
    return cast(DatasetSpec, get_spec("dataset", name, framework=framework))


def create_dataset(name: str, *, framework: Optional[str] = None, **params: Any) -> Dataset:
    """Dataset ``name`` with ``params`` over its defaults (the harness plans, decodes and caches it)."""
    return create("dataset", name, framework=framework, **params)


# --- backbones: factory(num_classes=, input_shape=(H, W, C), **params) -> model of its framework

def list_backbones(pattern: str = "*", *, framework: Optional[str] = None) -> list[str]:
    """Names of registered backbones matching a shell wildcard (``framework``: usable there)."""
    return list_plugins("backbone", pattern, framework=framework)


def get_backbone(name: str, *, framework: Optional[str] = None) -> BackboneSpec:
    """The spec of backbone ``name``."""
    return cast(BackboneSpec, get_spec("backbone", name, framework=framework))


def create_backbone(name: str, *, framework: Optional[str] = None, **params: Any) -> Model:
    """Model of backbone ``name``; pass ``num_classes`` and ``input_shape=(H, W, C)`` with its params."""
    return create("backbone", name, framework=framework, **params)


# --- augmentations: factory(**params) -> aug(x, *, generator) -> x of the same type, shape and dtype

def list_augmentations(pattern: str = "*", *, framework: Optional[str] = None) -> list[str]:
    """Names of registered augmentations matching a shell wildcard (``framework``: usable there)."""
    return list_plugins("augmentation", pattern, framework=framework)


def get_augmentation(name: str, *, framework: Optional[str] = None) -> AugmentationSpec:
    """The spec of augmentation ``name``."""
    return cast(AugmentationSpec, get_spec("augmentation", name, framework=framework))


def create_augmentation(name: str, *, framework: Optional[str] = None, **params: Any) -> Augmentation:
    """Augmentation ``name`` with ``params`` over its defaults."""
    return create("augmentation", name, framework=framework, **params)


# --- attacks: factory(**params) -> attack(model, x, y=None, target=None) with config.eps, config.norm

def list_attacks(pattern: str = "*", *, framework: Optional[str] = None) -> list[str]:
    """Names of registered attacks matching a shell wildcard (``framework``: usable there)."""
    return list_plugins("attack", pattern, framework=framework)


def get_attack(name: str, *, framework: Optional[str] = None) -> AttackSpec:
    """The spec of attack ``name``."""
    return cast(AttackSpec, get_spec("attack", name, framework=framework))


def create_attack(name: str, *, framework: Optional[str] = None, **params: Any) -> Attack:
    """Attack ``name`` with ``params`` over its defaults."""
    return create("attack", name, framework=framework, **params)


# --- defenses: factory(**training_knobs, **defense_params) -> trainer with fit(model, train, val, out_dir, *, resume)

def list_defenses(pattern: str = "*", *, framework: Optional[str] = None) -> list[str]:
    """Names of registered defenses matching a shell wildcard (``framework``: usable there)."""
    return list_plugins("defense", pattern, framework=framework)


def get_defense(name: str, *, framework: Optional[str] = None) -> DefenseSpec:
    """The spec of defense ``name``."""
    return cast(DefenseSpec, get_spec("defense", name, framework=framework))


def create_defense(name: str, *, framework: Optional[str] = None, **params: Any) -> Defense:
    """Defense (trainer) ``name`` with the training knobs and its own params over the defaults."""
    return create("defense", name, framework=framework, **params)
