"""Spec dataclasses that plugins return from their ``harness_register_*`` hooks.

A spec describes a plugin without importing its framework: ``factory`` is either
a callable or a lazy ``"module:attribute"`` path, resolved only when the plugin
is created. That keeps ``harness plugins`` fast and lets it list torch plugins
on a machine without torch.
"""

from __future__ import annotations

import importlib
import importlib.util
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Mapping, Union

from .contracts import check_created, check_factory
from .errors import PluginError, suggest

FRAMEWORKS = ("any", "torch", "tf")

Factory = Union[str, Callable[..., Any]]


@dataclass(frozen=True)
class PluginSpec:
    """What every plugin kind has in common."""

    kind: ClassVar[str] = "plugin"
    #: arguments the caller always passes besides ``params`` (e.g. a backbone's num_classes)
    call_args: ClassVar[tuple[str, ...]] = ()

    name: str
    factory: Factory
    description: str = ""
    framework: str = "any"
    #: default parameters; also the documented parameter names
    params: Mapping[str, Any] = field(default_factory=dict)
    #: filled in by the plugin manager: the plugin (entry point) and distribution that registered it
    source: str = ""
    distribution: str = ""
    version: str = ""

    def __post_init__(self) -> None:
        if not self.name or not isinstance(self.name, str):
            raise PluginError(f"A {self.kind} spec needs a non-empty string name, got {self.name!r}")
        if self.framework not in FRAMEWORKS:
            raise PluginError(
                f"{self.kind} '{self.name}': framework must be one of {', '.join(FRAMEWORKS)}, "
                f"got {self.framework!r}"
            )

    @property
    def required_modules(self) -> tuple[str, ...]:
        """Top-level modules this plugin needs at creation time."""
        return {"torch": ("torch",), "tf": ("tensorflow",)}.get(self.framework, ())

    @property
    def available(self) -> bool:
        """True when the framework this plugin needs is installed (checked without importing it)."""
        return all(importlib.util.find_spec(m) is not None for m in self.required_modules)

    def load_factory(self) -> Callable[..., Any]:
        """Resolve ``factory`` (importing ``module`` for a ``"module:attribute"`` path)."""
        if callable(self.factory):
            return self.factory
        module_name, _, attribute = str(self.factory).partition(":")
        missing = [m for m in self.required_modules if importlib.util.find_spec(m) is None]
        if missing:
            extra = {"torch": "torch", "tensorflow": "tf"}[missing[0]]
            raise PluginError(
                f"{self.kind} '{self.name}' needs {missing[0]}, which is not installed",
                hint=f"pip install 'harness[{extra}]'",
            )
        try:
            obj = importlib.import_module(module_name)
            for part in attribute.split(".") if attribute else ():
                obj = getattr(obj, part)
        except (ImportError, AttributeError) as exc:
            raise PluginError(
                f"{self.kind} '{self.name}' (from {self.source or 'unknown plugin'}): "
                f"cannot load factory {self.factory!r}: {exc}"
            ) from exc
        return obj

    def create(self, **params: Any) -> Any:
        """Build the plugin object: ``factory(**{**defaults, **params})``, checked against its kind's
        contract (:mod:`harness.contracts`) before and after the call."""
        unknown = sorted(set(params) - set(self.params) - set(self.call_args))
        if unknown:
            allowed = [*self.params, *self.call_args]
            hints = "".join(suggest(name, allowed) for name in unknown)
            raise PluginError(
                f"{self.kind} '{self.name}' has no parameter "
                + ", ".join(f"'{n}'" for n in unknown)
                + f".{hints} Parameters: {', '.join(allowed) or 'none'}"
            )
        factory = self.load_factory()
        arguments = {**dict(self.params), **params}
        check_factory(self, factory, arguments)
        return check_created(self, factory(**arguments))


@dataclass(frozen=True)
class DatasetSpec(PluginSpec):
    """A dataset: ``factory(**params)`` -> :class:`harness.contracts.Dataset` (``.params``, ``.plan()``).

    ``needs_source``: the dataset reads a user-given folder or archive (its ``source`` parameter)."""

    kind: ClassVar[str] = "dataset"
    needs_source: bool = False


@dataclass(frozen=True)
class BackboneSpec(PluginSpec):
    """A model architecture: ``factory(num_classes=, input_shape=(H, W, C), **params)`` -> a model of the
    spec's framework (:class:`harness.contracts.Model`)."""

    kind: ClassVar[str] = "backbone"
    call_args: ClassVar[tuple[str, ...]] = ("num_classes", "input_shape")


@dataclass(frozen=True)
class AugmentationSpec(PluginSpec):
    """An augmentation or perturbation: ``factory(**params)`` -> ``aug(x, *, generator)``
    (:class:`harness.contracts.Augmentation`)."""

    kind: ClassVar[str] = "augmentation"


@dataclass(frozen=True)
class AttackSpec(PluginSpec):
    """An adversarial attack in pixel space [0, 1]: ``factory(**params)`` -> ``attack(model, x, y=None,
    target=None)`` with ``config.eps`` and ``config.norm`` (:class:`harness.contracts.Attack`)."""

    kind: ClassVar[str] = "attack"


@dataclass(frozen=True)
class DefenseSpec(PluginSpec):
    """A defense, i.e. a trainer: ``factory(**training_knobs, **defense_params)`` -> object with
    ``fit(model, train, val=None, out_dir=None, *, resume=False)`` (:class:`harness.contracts.Defense`)."""

    kind: ClassVar[str] = "defense"


SPEC_TYPES: dict[str, type[PluginSpec]] = {
    cls.kind: cls for cls in (DatasetSpec, BackboneSpec, AugmentationSpec, AttackSpec, DefenseSpec)
}
KINDS = tuple(SPEC_TYPES)
