"""The attack ensemble: per-example worst case over registered attack plugins (L-inf).

Members are ordinary attack plugins from the registry, so any registered attack (a
third-party one included) can be a member. The default four follow AutoAttack's
"standard" version (Croce & Hein 2020):

- ``pgd``: the harness's PGD, here with 50 steps and 2 restarts;
- ``apgd-ce``: APGD on the cross-entropy (torch: native, ``harness_torch.autoattack``; tf: ART);
- ``apgd-t``: targeted APGD on the DLR loss, one run per target among the top
  ``n_targets`` wrong classes of the clean logits (torch: native; tf: ART);
- ``square``: Square Attack, black-box, score-based (torch: native L-inf; tf: ART).

A member is built per eps with ``create_attack(name, framework=..., eps=eps, seed=seed, **params)``
and run through the runtime's ``adversarial_images``, ``batch_size`` images at a time (by default on
the images no member before it has broken: see :func:`harness.robustness.evaluate_robustness`); its
hyper-parameters are recorded from ``attack.config.to_dict()``, its kind from ``attack.threat``
(default white-box).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from ..errors import UsageError

#: the budgets every evaluation reports (L-inf, pixel space)
DEFAULT_EPS = (2 / 255, 4 / 255, 8 / 255)
DEFAULT_ATTACKS = ("pgd", "apgd-ce", "apgd-t", "square")
#: the ensemble's own defaults over an attack's registered ones (a stronger PGD than the plugin default)
MEMBER_DEFAULTS: dict[str, dict[str, Any]] = {"pgd": {"steps": 50, "restarts": 2}}
#: parameters the ensemble sets itself for every member
SET_BY_ENSEMBLE = ("eps", "seed")


@dataclass(frozen=True)
class Member:
    """One ensemble member: a registered attack ``name`` with ``params`` over its defaults."""

    name: str
    params: Mapping[str, Any] = field(default_factory=dict)

    def create(self, framework: str, eps: float, seed: int, norm: str = "linf") -> Any:
        """The attack at budget ``eps`` under ``norm`` (L-inf unless the attack has a ``norm`` parameter
        and l2 is asked), seeded with ``seed`` when it takes a seed."""
        from ..registry import create_attack, get_attack

        spec = get_attack(self.name, framework=framework)
        if "eps" not in spec.params:
            raise UsageError(f"ensemble attack '{self.name}' has no 'eps' parameter: the ensemble sets the budget")
        if norm != "linf" and "norm" not in spec.params:
            raise UsageError(f"ensemble attack '{self.name}' has no 'norm' parameter: it attacks in linf only")
        seeded = {"seed": int(seed)} if "seed" in spec.params else {}
        normed = {"norm": norm} if norm != "linf" else {}
        attack = create_attack(self.name, framework=framework, **{"eps": float(eps), **seeded, **normed, **self.params})
        config = getattr(attack, "config", None)
        if config is None or getattr(config, "norm", None) != norm or getattr(config, "eps", None) != float(eps):
            raise UsageError(f"ensemble attack '{self.name}' must have config.eps == {float(eps):.6g} and "
                             f"config.norm == '{norm}' (the ensemble's budget)")
        return attack

    def hyperparameters(self, attack: Any, framework: str) -> dict[str, Any]:
        """Everything that defines this run (JSON-able), recorded with the result."""
        from ..registry import get_attack

        spec = get_attack(self.name, framework=framework)
        implementation = getattr(attack, "implementation", "") or (
            f"{spec.distribution or spec.source or 'harness'} {self.name} plugin")
        config = attack.config.to_dict() if hasattr(attack.config, "to_dict") else {
            "eps": float(attack.config.eps), "norm": attack.config.norm}
        return {"attack": self.name, "kind": kind(attack), "implementation": implementation, **config}


def kind(attack: Any) -> str:
    """An attack's threat model: "white-box" (uses gradients, the default) or "black-box" (scores only)."""
    return str(getattr(attack, "threat", "white-box"))


def run_member(runtime: Any, model: Any, attack: Any, images: np.ndarray, labels: np.ndarray,
               batch_size: int) -> np.ndarray:
    """float32 N,H,W,C adversarial images of ``attack`` through the runtime; an attack that batches
    itself (``batches_itself``, e.g. ART's) gets every image given (one chunk of the evaluation) in one call."""
    size = len(images) if getattr(attack, "batches_itself", False) else batch_size
    return runtime.adversarial_images(model, images, labels, attack, batch_size=max(1, size))


def build_ensemble(attacks: Sequence[str | Member] | Mapping[str, Mapping[str, Any]] | None = None, *,
                   framework: str | None = None) -> list[Member]:
    """Members from None (the default four), names, :class:`Member` objects, or a mapping name -> parameters.

    Names and parameters are checked against the registry (for ``framework`` when given): an unknown
    attack or parameter is a one-line error with a did-you-mean.
    """
    from ..errors import suggest
    from ..registry import get_attack

    if attacks is None:
        attacks = DEFAULT_ATTACKS
    items = list(attacks.items()) if isinstance(attacks, Mapping) else [
        (a.name, a.params) if isinstance(a, Member) else (a, {}) for a in attacks]
    members: list[Member] = []
    for name, params in items:
        spec = get_attack(str(name), framework=framework)
        params = dict(params or {})
        fixed = sorted(set(params) & set(SET_BY_ENSEMBLE))
        if fixed:
            raise UsageError(f"ensemble attack '{name}': {', '.join(fixed)} is set by the ensemble",
                             hint="choose budgets with eps/extra_eps and the seed with seed")
        unknown = sorted(set(params) - set(spec.params))
        if unknown:
            hints = "".join(suggest(key, spec.params) for key in unknown)
            raise UsageError(f"ensemble attack '{name}' has no parameter {', '.join(map(repr, unknown))}.{hints} "
                             f"Parameters: {', '.join(k for k in spec.params if k not in SET_BY_ENSEMBLE)}")
        members.append(Member(str(name), {**MEMBER_DEFAULTS.get(str(name), {}), **params}))
    names = [m.name for m in members]
    if len(set(names)) != len(names):
        raise UsageError(f"ensemble attacks must have distinct names, got {', '.join(names)}")
    if not members:
        raise UsageError("the attack ensemble needs at least one attack")
    return members
