"""The written contract of every plugin kind, and the checks the registry runs when a plugin is created.

Each kind has a :class:`typing.Protocol` stating what its factory returns: the call
signature, tensor layout, dtype and value range, and the attributes the harness relies
on. :func:`check_created` runs right after a factory returns (``registry.create_*`` and
:meth:`harness.specs.PluginSpec.create`) and raises :class:`~harness.errors.PluginError`
with one line naming the plugin and the broken rule; :func:`check_factory` runs before a
backbone factory is called. Nothing here imports torch or tensorflow: a model's framework
is read from the module names of its class's MRO.

Conventions shared by every kind (docs/plugins.md):

- pixel space: float images are float32 in [0, 1]; normalization lives inside the model;
  attack budgets (``eps``) are measured in that space (8/255 is 8 grey levels);
- layouts: torch tensors are (N, C, H, W), TensorFlow tensors and numpy arrays (N, H, W, C);
  framework-neutral (``any``) plugins see uint8 numpy (N, H, W, C).
"""

from __future__ import annotations

import inspect
import math
from numbers import Real
from typing import TYPE_CHECKING, Any, Callable, Mapping, Optional, Protocol, Union, runtime_checkable

from .errors import PluginError

if TYPE_CHECKING:
    from .data import DatasetPlan
    from .specs import PluginSpec
    from .training import TrainingHistory

#: norms an attack budget may use (``config.norm``)
ATTACK_NORMS = ("linf", "l2")


@runtime_checkable
class Dataset(Protocol):
    """What a dataset factory returns: ``factory(**params) -> Dataset``.

    - ``params``: a mapping of plain values that identifies the dataset's content (the
      cache key is derived from it: equal params must mean equal images);
    - ``plan(*, skip_bad=False)``: enumerate the splits as a :class:`harness.data.DatasetPlan`
      (image files or uint8 (N, H, W, C) arrays with integer labels); the harness decodes,
      checks and caches the images. ``skip_bad=True`` leaves unreadable files out instead of
      raising :class:`harness.errors.DataError`.
    """

    params: Mapping[str, Any]

    def plan(self, *, skip_bad: bool = False) -> "DatasetPlan": ...


@runtime_checkable
class Model(Protocol):
    """What a backbone factory returns: ``factory(num_classes=int, input_shape=(H, W, C), **params) -> Model``.

    A model of the spec's framework: a ``torch.nn.Module`` taking float32 (N, C, H, W) or a
    Keras ``Model`` taking float32 (N, H, W, C), pixels in [0, 1], normalization inside the
    model, returning logits of shape (N, num_classes) (no softmax).
    """

    def __call__(self, x: Any) -> Any: ...


@runtime_checkable
class Augmentation(Protocol):
    """What an augmentation factory returns: ``factory(**params) -> aug``; ``aug(x, *, generator) -> x'``.

    ``x'`` has the type, shape and dtype of ``x``; the layout follows the spec's framework:

    - ``any``: uint8 numpy (N, H, W, C), ``generator`` a ``numpy.random.Generator``;
    - ``torch``: float32 tensor (N, C, H, W) in [0, 1], ``generator`` a ``torch.Generator``;
    - ``tf``: float32 tensor (N, H, W, C) in [0, 1], ``generator`` a ``tf.random.Generator``.

    All randomness comes from ``generator``: the same generator state gives the same output.
    :mod:`harness.augment` applies any augmentation to any framework's batch.
    """

    def __call__(self, x: Any, *, generator: Any) -> Any: ...


@runtime_checkable
class AttackBudget(Protocol):
    """An attack's ``config``: the budget the harness enforces when it stores adversarial images.

    ``eps``: finite float >= 0 in pixel space [0, 1]; ``norm``: ``"linf"`` or ``"l2"``.
    Optional ``to_dict()`` -> plain dict, recorded with results.
    """

    eps: float
    norm: str


@runtime_checkable
class Attack(Protocol):
    """What an attack factory returns: ``factory(**params) -> attack``; ``attack(model, x, y=None, target=None)``.

    ``x``: float32 images in [0, 1] in the model's framework layout (torch (N, C, H, W),
    tf (N, H, W, C)); ``y``: true labels (N,) or None (the attack then uses the model's
    predictions); ``target``: target labels (N,) for targeted attacks, or None. Returns
    adversarial images of the type, shape and layout of ``x``, inside [0, 1] and inside the
    ``config.norm`` ball of radius ``config.eps`` around ``x``. Optional ``threat``:
    ``"white-box"`` (default) or ``"black-box"``.
    """

    config: AttackBudget

    def __call__(self, model: Any, x: Any, y: Any = None, target: Any = None) -> Any: ...


@runtime_checkable
class Defense(Protocol):
    """What a defense factory returns: ``factory(**training_knobs, **defense_params) -> trainer``.

    The training knobs are the fields of :class:`harness.training.TrainingConfig` (seed,
    progress, epochs, lr, batch_size, augmentations, ...); every defense receives them.
    ``fit(model, train, val=None, out_dir=None, *, resume=False)`` trains ``model`` (its
    framework's model, from a backbone) in place on the cached ``train`` split (``val`` for
    curves and early stopping), writes checkpoints and metrics under ``out_dir`` when given,
    continues from its checkpoint when ``resume`` is true, and returns a
    :class:`harness.training.TrainingHistory`.
    """

    def fit(self, model: Any, train: Any, val: Any = None, out_dir: Any = None, *,
            resume: Union[bool, str, None] = False) -> "TrainingHistory": ...


#: kind -> the Protocol its factory's result follows
PROTOCOLS: dict[str, type] = {"dataset": Dataset, "backbone": Model, "augmentation": Augmentation,
                              "attack": Attack, "defense": Defense}

#: rule names quoted in errors, one per rule
RULES = {
    "factory": "a factory accepts every parameter named in its spec's params",
    "dataset.params": "datasets expose .params, a mapping identifying their content",
    "dataset.plan": "datasets expose .plan(*, skip_bad=False) returning a DatasetPlan",
    "backbone.factory": "backbone factories accept num_classes= and input_shape=(H, W, C)",
    "backbone.model": "backbones return a model of their framework (torch.nn.Module or Keras Model)",
    "augmentation.call": "augmentations are called as aug(x, *, generator=...)",
    "attack.call": "attacks are called as attack(model, x, y=None, target=None)",
    "attack.config": "attacks expose config.eps and config.norm",
    "attack.eps": "config.eps is the budget in pixel space [0, 1], a finite float >= 0",
    "attack.norm": f"config.norm is one of {', '.join(ATTACK_NORMS)}",
    "defense.fit": "defenses expose fit(model, train, val=None, out_dir=None, *, resume=False)",
}


def plugin_label(spec: "PluginSpec") -> str:
    """``attack 'my-attack' (plugin my_pkg)``: the plugin's kind, name and who registered it."""
    source = spec.source or "not registered"
    origin = f"plugin {source}" if spec.distribution in ("", source) else f"plugin {source} from {spec.distribution}"
    return f"{spec.kind} '{spec.name}' ({origin})"


def _broken(spec: "PluginSpec", problem: str, rule: str) -> PluginError:
    return PluginError(f"{plugin_label(spec)}: {problem} (rule: {RULES[rule]})")


class _Probe:
    """A stand-in argument for signature binding."""


def _accepts(function: Callable[..., Any], *args: Any, **kwargs: Any) -> bool:
    """True when ``function`` can be called with these arguments (or its signature cannot be read)."""
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):  # builtins without a signature: nothing to judge
        return True
    try:
        signature.bind(*args, **kwargs)
    except TypeError:
        return False
    return True


def check_factory(spec: "PluginSpec", factory: Callable[..., Any], arguments: Mapping[str, Any]) -> None:
    """Check, before calling it, that ``factory`` accepts ``arguments`` (its params, plus a backbone's
    num_classes and input_shape)."""
    if spec.kind == "backbone":
        arguments = {"num_classes": 2, "input_shape": (8, 8, 3), **arguments}
    if _accepts(factory, **arguments):
        return
    if spec.kind == "backbone":
        raise _broken(spec, "the factory does not accept num_classes=, input_shape= and its params",
                      "backbone.factory")
    raise _broken(spec, f"the factory does not accept its parameters {', '.join(arguments) or '(none)'}",
                  "factory")


def _check_dataset(spec: "PluginSpec", dataset: Any) -> None:
    params = getattr(dataset, "params", None)
    if not isinstance(params, Mapping):
        raise _broken(spec, f"the dataset's .params is {type(params).__name__}, not a mapping", "dataset.params")
    plan = getattr(dataset, "plan", None)
    if not callable(plan) or not _accepts(plan, skip_bad=False):
        raise _broken(spec, "the dataset has no .plan(skip_bad=...) method", "dataset.plan")


def framework_of(model: Any) -> Optional[str]:
    """``"torch"`` or ``"tf"`` from the module names of the model class's MRO (no import), or None."""
    for cls in type(model).__mro__:
        top = cls.__module__.split(".")[0]
        if top == "torch" and cls.__name__ == "Module":
            return "torch"
        if top in ("keras", "tf_keras", "tensorflow") and cls.__name__ == "Model":
            return "tf"
    return None


def _check_backbone(spec: "PluginSpec", model: Any) -> None:
    found = framework_of(model)
    wanted = ("torch", "tf") if spec.framework == "any" else (spec.framework,)
    if found not in wanted:
        expected = " or ".join({"torch": "a torch.nn.Module", "tf": "a Keras Model"}[w] for w in wanted)
        raise _broken(spec, f"the factory returned {type(model).__name__}, not {expected}", "backbone.model")


def _check_augmentation(spec: "PluginSpec", augmentation: Any) -> None:
    if not callable(augmentation):
        raise _broken(spec, f"the factory returned {type(augmentation).__name__}, which is not callable",
                      "augmentation.call")
    if not _accepts(augmentation, _Probe(), generator=_Probe()):
        raise _broken(spec, "the augmentation does not accept the keyword generator", "augmentation.call")


def _check_attack(spec: "PluginSpec", attack: Any) -> None:
    if not callable(attack):
        raise _broken(spec, f"the factory returned {type(attack).__name__}, which is not callable", "attack.call")
    model, x, y = _Probe(), _Probe(), _Probe()
    if not (_accepts(attack, model, x) and _accepts(attack, model, x, y)
            and _accepts(attack, model, x, y=y, target=_Probe())):
        raise _broken(spec, "the attack cannot be called as attack(model, x, y=None, target=None)", "attack.call")
    config = getattr(attack, "config", None)
    for field in ("eps", "norm"):
        if not hasattr(config, field):
            raise _broken(spec, f"the attack has no config.{field}, so the harness cannot enforce its budget",
                          "attack.config")
    eps = config.eps
    if isinstance(eps, bool) or not isinstance(eps, Real) or not math.isfinite(eps) or eps < 0:
        raise _broken(spec, f"config.eps is {eps!r}", "attack.eps")
    if config.norm not in ATTACK_NORMS:
        raise _broken(spec, f"config.norm is {config.norm!r}", "attack.norm")


def _check_defense(spec: "PluginSpec", defense: Any) -> None:
    fit = getattr(defense, "fit", None)
    if not callable(fit):
        raise _broken(spec, f"the factory returned {type(defense).__name__}, which has no fit method", "defense.fit")
    model, train, val, out_dir = _Probe(), _Probe(), _Probe(), _Probe()
    if not (_accepts(fit, model, train) and _accepts(fit, model, train, val, out_dir=out_dir, resume=True)):
        raise _broken(spec, "its fit cannot be called as fit(model, train, val, out_dir=..., resume=...)",
                      "defense.fit")


_CHECKS: dict[str, Callable[["PluginSpec", Any], None]] = {
    "dataset": _check_dataset, "backbone": _check_backbone, "augmentation": _check_augmentation,
    "attack": _check_attack, "defense": _check_defense,
}


def check_created(spec: "PluginSpec", created: Any) -> Any:
    """Check what ``spec``'s factory returned against its kind's contract; return it unchanged."""
    check = _CHECKS.get(spec.kind)
    if check is not None:
        check(spec, created)
    return created
