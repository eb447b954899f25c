"""AutoAttack's members, framework-neutral parts: parameters, their checks and the two schedules.

APGD-CE, APGD-T (Croce & Hein 2020, "Reliable evaluation of adversarial robustness with an
ensemble of diverse parameter-free attacks") and Square (Andriushchenko et al. 2020) run natively
on a framework's tensors (``harness_torch.autoattack``); this module holds what does not depend
on the framework: :data:`AUTOATTACK_PARAMS` (same names as the ART wrappers' minus ART's
``batch_size``), :class:`KnobConfig` (validated parameters), APGD's step-size checkpoints
(:func:`apgd_schedule`) and Square's square-size schedule (:func:`square_p`). The rules follow
the authors' reference implementation (github.com/fra31/auto-attack, ``autopgd_base.py`` and
``square.py``), as ported in torchattacks 3.5.1 (``apgd.py``, ``apgdt.py``, ``square.py``).
Nothing here imports a framework.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from numbers import Integral, Real
from typing import Any, Mapping

from ..errors import UsageError
from .config import DEFAULT_EPS, NORMS, _number, merge_params

#: every parameter of every native AutoAttack member with its default (eps None: the norm's default budget);
#: the defaults are AutoAttack's "standard" version: 100 iterations, 1 restart, 9 targets, 5000 queries, p_init 0.8
AUTOATTACK_PARAMS: dict[str, dict[str, Any]] = {
    "apgd-ce": {"eps": None, "norm": "linf", "max_iter": 100, "restarts": 1, "rho": 0.75, "seed": 0},
    "apgd-t": {"eps": None, "norm": "linf", "max_iter": 100, "restarts": 1, "n_targets": 9, "rho": 0.75, "seed": 0},
    "square": {"eps": None, "norm": "linf", "max_iter": 5000, "p_init": 0.8, "restarts": 1, "seed": 0},
}

AUTOATTACK_DESCRIPTIONS: dict[str, str] = {
    "apgd-ce": "APGD on the cross-entropy (Croce & Hein 2020), step size halved per example at checkpoints; native",
    "apgd-t": "Targeted APGD on the DLR loss, once per target among the top n_targets wrong classes; native",
    "square": "Square Attack (Andriushchenko et al. 2020): black-box random square updates on the margin; "
              "native linf (l2 runs ART's SquareAttack)",
}

#: parameters that are counts (integers >= 1) and numbers in (0, 1]
COUNTS = ("max_iter", "restarts", "n_targets", "batch_size")
FRACTIONS = ("p_init", "rho")
#: APGD's momentum (reference: ``a = 0.75``), its first checkpoint, checkpoint decrement and shortest interval,
#: as fractions of the iterations (Croce & Hein 2020, sec. 3.2: p_1 = 0.22, p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03,
#: 0.06))
MOMENTUM = 0.75
FIRST_CHECKPOINT, CHECKPOINT_DECREMENT, MIN_CHECKPOINT = 0.22, 0.03, 0.06


@dataclass(frozen=True)
class KnobConfig:
    """Validated parameters of one attack: the budget (``eps``, ``norm``), ``seed`` and its knobs
    (read as attributes, e.g. ``config.max_iter``)."""

    name: str
    eps: float
    norm: str
    seed: int
    knobs: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def for_attack(cls, name: str, table: Mapping[str, Mapping[str, Any]], **params: Any) -> "KnobConfig":
        """Config of attack ``name`` from its parameters over ``table[name]`` (the defaults)."""
        merged = merge_params(name, params, dict(table[name]))
        norm = merged.pop("norm")
        if norm not in NORMS:
            raise UsageError(f"{name}: norm must be one of {', '.join(NORMS)}, got {norm!r}")
        eps = merged.pop("eps")
        eps = DEFAULT_EPS[norm] if eps is None else _number(f"{name}: eps", eps)
        seed = merged.pop("seed")
        if isinstance(seed, bool) or not isinstance(seed, Integral):
            raise UsageError(f"{name}: seed must be an integer, got {seed!r}")
        for key, value in merged.items():
            if key in COUNTS and (isinstance(value, bool) or not isinstance(value, Integral) or value < 1):
                raise UsageError(f"{name}: {key} must be an integer >= 1, got {value!r}")
            if key in FRACTIONS and (isinstance(value, bool) or not isinstance(value, Real)
                                     or not 0 < float(value) <= 1):
                raise UsageError(f"{name}: {key} must be a number in (0, 1], got {value!r}")
        return cls(name, eps, norm, int(seed), merged)

    def __getattr__(self, key: str) -> Any:
        knobs = self.__dict__.get("knobs", {})
        if key in knobs:
            return knobs[key]
        raise AttributeError(key)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (for result records)."""
        return {"eps": self.eps, "norm": self.norm, **self.knobs, "seed": self.seed}


def apgd_schedule(n_iter: int) -> tuple[int, int, int]:
    """(first checkpoint interval, interval decrement, shortest interval) in iterations for ``n_iter``
    iterations: the reference's ``n_iter_2, size_decr, n_iter_min`` (``max(int(f * n_iter), 1)``)."""
    return tuple(max(int(f * n_iter), 1) for f in (FIRST_CHECKPOINT, CHECKPOINT_DECREMENT, MIN_CHECKPOINT))


#: Square's schedule: (iteration bound, divisor of p_init) for the iteration rescaled to 10,000 queries
#: (reference ``p_selection``: p_init up to it 10, then /2, /4, ... /512 after 8000)
SQUARE_SCHEDULE = ((10, 1), (50, 2), (200, 4), (500, 8), (1000, 16), (2000, 32), (4000, 64), (6000, 128),
                   (8000, 256))


def square_p(iteration: int, n_queries: int, p_init: float) -> float:
    """Square's fraction of pixels changed at ``iteration`` (0-based) of ``n_queries``: the reference's
    ``p_selection`` with ``resc_schedule`` (the iteration rescaled to a 10,000-query run)."""
    it = int(iteration / n_queries * 10000)
    for bound, divisor in SQUARE_SCHEDULE:
        if it <= bound:
            return p_init / divisor
    return p_init / 512


def square_side(p: float, height: int, width: int) -> int:
    """Side of Square's window covering a fraction ``p`` of the image's pixels (at least 1, at most the image)."""
    return min(max(int(round(math.sqrt(p * height * width))), 1), height, width)


#: class name -> attack name of the native members a framework package defines in its ``autoattack`` module
AUTOATTACK_CLASSES = {"APGDCE": "apgd-ce", "APGDT": "apgd-t", "Square": "square"}


def autoattack_specs(package: str, framework: str) -> list[Any]:
    """AttackSpecs of the native apgd-ce, apgd-t and square, implemented by ``package.autoattack``."""
    from ..specs import AttackSpec

    return [AttackSpec(name=name, factory=f"{package}.autoattack:{class_name}",
                       description=AUTOATTACK_DESCRIPTIONS[name], framework=framework,
                       params=dict(AUTOATTACK_PARAMS[name]))
            for class_name, name in AUTOATTACK_CLASSES.items()]
