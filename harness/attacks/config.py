"""Framework-neutral attack parameters: one spec for the torch and TensorFlow attacks.

Budgets are in pixel space [0, 1] (``eps = 8/255`` is 8 grey levels). Each
attack's registered parameters and defaults come from :data:`ATTACK_PARAMS`,
and both frameworks validate them through :class:`AttackConfig`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from numbers import Integral, Real
from typing import Any, Callable, ClassVar

from ..errors import UsageError

NORMS = ("linf", "l2")
#: true-label: move away from the given labels; predicted: away from the model's own
#: prediction (unlabelled data); targeted: towards given target labels
MODES = ("true-label", "predicted", "targeted")
#: default budget per norm when ``eps`` is None
DEFAULT_EPS = {"linf": 8 / 255, "l2": 0.5}
#: default step size is STEP_FACTOR * eps / steps (Madry et al. 2018)
STEP_FACTOR = 2.5

#: every parameter of every attack with its default
ATTACK_PARAMS: dict[str, dict[str, Any]] = {
    "fgsm": {"eps": None, "norm": "linf", "mode": "true-label", "seed": 0},
    "bim": {"eps": None, "step_size": None, "steps": 10, "norm": "linf", "mode": "true-label", "seed": 0},
    "pgd": {"eps": None, "step_size": None, "steps": 10, "restarts": 1, "random_start": True, "norm": "linf",
            "mode": "true-label", "seed": 0},
}

ATTACK_DESCRIPTIONS: dict[str, str] = {
    "fgsm": "Fast Gradient Sign Method (one step; FGM for l2), untargeted or targeted",
    "bim": "Basic Iterative Method: k projected gradient steps from the clean image",
    "pgd": "Projected Gradient Descent with random start and restarts, worst case kept per example",
}


def _number(name: str, value: Any, *, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(float(value)):
        raise UsageError(f"{name} must be a finite number, got {value!r}")
    value = float(value)
    if value < 0 or (positive and value == 0):
        raise UsageError(f"{name} must be {'> 0' if positive else '>= 0'}, got {value!r}")
    return value


def _count(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, Integral) or value < 1:
        raise UsageError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)


def merge_params(attack: str, params: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """``params`` over ``defaults``; a parameter not in ``defaults`` is a UsageError naming the attack."""
    unknown = sorted(set(params) - set(defaults))
    if unknown:
        raise UsageError(f"attack '{attack}' has no parameter {', '.join(map(repr, unknown))}. "
                         f"Parameters: {', '.join(defaults)}")
    return {**defaults, **params}


@dataclass(frozen=True)
class AttackConfig:
    """Validated attack parameters; ``eps`` and ``step_size`` are filled in when None.

    ``eps`` None: :data:`DEFAULT_EPS` for the norm. ``step_size`` None:
    ``2.5 * eps / steps``. Invalid values raise :class:`UsageError` naming the parameter.
    """

    eps: float | None = None
    step_size: float | None = None
    steps: int = 10
    restarts: int = 1
    random_start: bool = True
    norm: str = "linf"
    mode: str = "true-label"
    seed: int | None = 0

    def __post_init__(self) -> None:
        if self.norm not in NORMS:
            raise UsageError(f"norm must be one of {', '.join(NORMS)}, got {self.norm!r}")
        if self.mode not in MODES:
            raise UsageError(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        steps = _count("steps", self.steps)
        restarts = _count("restarts", self.restarts)
        eps = DEFAULT_EPS[self.norm] if self.eps is None else _number("eps", self.eps)
        step_size = (STEP_FACTOR * eps / steps if self.step_size is None
                     else _number("step_size", self.step_size, positive=eps > 0))
        if not isinstance(self.random_start, bool):
            raise UsageError(f"random_start must be true or false, got {self.random_start!r}")
        if self.seed is not None and (isinstance(self.seed, bool) or not isinstance(self.seed, Integral)):
            raise UsageError(f"seed must be an integer or None, got {self.seed!r}")
        for name, value in (("eps", eps), ("step_size", step_size), ("steps", steps), ("restarts", restarts)):
            object.__setattr__(self, name, value)

    @property
    def targeted(self) -> bool:
        """True in mode ``targeted``."""
        return self.mode == "targeted"

    @classmethod
    def for_attack(cls, attack: str, **params: Any) -> "AttackConfig":
        """Config of attack ``attack`` (fgsm, bim, pgd) from its parameters over the defaults."""
        if attack not in ATTACK_PARAMS:
            raise UsageError(f"Unknown attack '{attack}'. Available: {', '.join(ATTACK_PARAMS)}")
        merged = merge_params(attack, params, ATTACK_PARAMS[attack])
        if attack == "fgsm":
            config = cls(**{**merged, "steps": 1, "random_start": False})
            return replace(config, step_size=config.eps)  # one step of the full budget
        if attack == "bim":
            merged["random_start"] = False
        return cls(**merged)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (for result records)."""
        return asdict(self)


class AttackBase:
    """What the FGSM/BIM/PGD plugin classes of every framework share: keyword parameters checked
    against :data:`ATTACK_PARAMS`, the description and the repr. A framework's ``Attack`` subclass
    adds ``labels`` and ``__call__``; :func:`attack_classes` derives FGSM, BIM and PGD from it."""

    name: ClassVar[str] = ""
    #: keep the worst iterate per example (False: the last iterate, FGSM)
    keep_best: ClassVar[bool] = True

    def __init__(self, **params: Any):
        self.config = AttackConfig.for_attack(self.name, **params)

    @property
    def description(self) -> str:
        return ATTACK_DESCRIPTIONS[self.name]

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in self.config.to_dict().items())
        return f"{type(self).__name__}({fields})"


#: class name -> (attack name, keep_best, docstring) of the attack classes each framework defines
ATTACK_CLASSES: dict[str, tuple[str, bool, str]] = {
    "FGSM": ("fgsm", False, 'Fast Gradient Sign Method (Goodfellow et al. 2015); FGM for ``norm="l2"``.'),
    "BIM": ("bim", True, "Basic Iterative Method (Kurakin et al. 2017): ``steps`` projected steps from the clean "
                         "image."),
    "PGD": ("pgd", True, "PGD (Madry et al. 2018) with random start and restarts, worst case kept per example."),
}


def attack_classes(base: type, module: str) -> tuple[type, ...]:
    """FGSM, BIM and PGD as subclasses of a framework's ``base`` attack class, living in ``module``."""
    return tuple(type(class_name, (base,), {"name": name, "keep_best": keep_best, "__doc__": doc,
                                           "__module__": module})
                 for class_name, (name, keep_best, doc) in ATTACK_CLASSES.items())


def mode_labels(name: str, mode: str, y: Any, target: Any, convert: Callable[[Any], Any],
                predict: Callable[[], Any]) -> Any:
    """The labels an attack moves away from (or towards, when targeted), as ``convert(...)`` makes them;
    mode ``predicted`` returns ``predict()`` (the model's own labels) and ignores ``y``."""
    if mode == "targeted":
        if target is None:
            raise UsageError(f"{name}: mode 'targeted' needs target labels (target=...)")
        return convert(target)
    if target is not None:
        raise UsageError(f"{name}: target labels given but mode is '{mode}'", hint="use mode='targeted'")
    if mode == "true-label":
        if y is None:
            raise UsageError(f"{name}: mode 'true-label' needs labels y",
                             hint="use mode='predicted' for unlabelled data")
        return convert(y)
    return predict()
