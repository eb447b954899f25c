"""The attack ensemble: per-example worst case over white-box and black-box L-inf attacks.

Members (defaults follow AutoAttack's "standard" version, Croce & Hein 2020):

- ``pgd``: the harness's own PGD plugin of the model's framework, with restarts;
- ``apgd-ce``: APGD on the cross-entropy (adversarial-robustness-toolbox);
- ``apgd-t``: targeted APGD on the DLR loss, one run per target among the top
  ``n_targets`` wrong classes of the clean logits (ART);
- ``square``: Square Attack, black-box, score-based (ART).

Every member attacks the examples the model gets right when clean; an example is
robust at an eps only if every member leaves it correct. Members reach the model
only through the runtime (``adversarial_images``, ``predict_logits_float``,
``art_classifier``), so torch and TensorFlow models go through the same code.
"""

from __future__ import annotations

import contextlib
import importlib.util
import math
from dataclasses import dataclass, field
from numbers import Integral, Real
from typing import Any, ClassVar, Iterator, Mapping, Sequence

import numpy as np

from ..errors import PluginError, UsageError

#: the budgets every evaluation reports (L-inf, pixel space)
DEFAULT_EPS = (2 / 255, 4 / 255, 8 / 255)
DEFAULT_ATTACKS = ("pgd", "apgd-ce", "apgd-t", "square")
ART_VERSION = "1.20.1"


@dataclass
class Target:
    """The model under attack and the runtime that reaches it."""

    runtime: Any
    model: Any
    num_classes: int
    input_shape: tuple[int, int, int]
    batch_size: int = 256
    _art: Any = field(default=None, repr=False)

    def logits(self, images: np.ndarray) -> np.ndarray:
        """Logits for float32 N,H,W,C images in [0, 1]."""
        return self.runtime.predict_logits_float(self.model, images, batch_size=self.batch_size)

    def predict(self, images: np.ndarray) -> np.ndarray:
        return self.logits(images).argmax(axis=1)

    def art(self) -> Any:
        """The runtime's ART classifier of the model (built once)."""
        if self._art is None:
            self._art = self.runtime.art_classifier(self.model, self.num_classes, self.input_shape)
        return self._art


@contextlib.contextmanager
def numpy_seed(seed: int) -> Iterator[None]:
    """Seed numpy's global RNG (ART draws from it) for the block, then restore its state."""
    state = np.random.get_state()
    np.random.seed(int(seed) % 2**32)
    try:
        yield
    finally:
        np.random.set_state(state)


def _check_params(name: str, params: Mapping[str, Any], defaults: Mapping[str, Any]) -> dict[str, Any]:
    unknown = sorted(set(params) - set(defaults))
    if unknown:
        raise UsageError(f"ensemble attack '{name}' has no parameter {', '.join(map(repr, unknown))}. "
                         f"Parameters: {', '.join(defaults)}")
    merged = {**defaults, **params}
    for key, value in merged.items():
        if key in ("steps", "restarts", "max_iter", "n_targets", "batch_size"):
            if isinstance(value, bool) or not isinstance(value, Integral) or value < 1:
                raise UsageError(f"{name}: {key} must be an integer >= 1, got {value!r}")
        elif key in ("p_init", "step_factor") and (isinstance(value, bool) or not isinstance(value, Real)
                                                   or not 0 < float(value) < math.inf):
            raise UsageError(f"{name}: {key} must be a number > 0, got {value!r}")
    return merged


class EnsembleAttack:
    """One member: ``generate(target, images, x, labels, eps, seed)`` -> float32 adversarial N,H,W,C."""

    name: ClassVar[str] = ""
    #: "white-box" (uses gradients) or "black-box" (scores only)
    kind: ClassVar[str] = "white-box"
    #: True when it runs through adversarial-robustness-toolbox
    uses_art: ClassVar[bool] = False
    defaults: ClassVar[dict[str, Any]] = {}
    implementation: ClassVar[str] = ""

    def __init__(self, **params: Any):
        self.params = _check_params(self.name, params, self.defaults)

    def hyperparameters(self, eps: float) -> dict[str, Any]:
        """Everything that defines this run (JSON-able), recorded with the result."""
        return {"attack": self.name, "kind": self.kind, "implementation": self.implementation, "norm": "linf",
                "eps": float(eps), **self.params}

    def generate(self, target: Target, images: np.ndarray, x: np.ndarray, labels: np.ndarray, eps: float,
                 seed: int) -> np.ndarray:
        """Adversarial versions of ``x`` (float, = ``images`` / 255) for ``labels``."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.params.items())})"


class PGDMember(EnsembleAttack):
    """The framework's own ``pgd`` attack plugin (random start, restarts, worst iterate kept)."""

    name = "pgd"
    defaults = {"steps": 50, "restarts": 2, "step_size": None}
    implementation = "harness pgd plugin"

    def hyperparameters(self, eps: float) -> dict[str, Any]:
        from ..attacks import AttackConfig

        config = AttackConfig.for_attack("pgd", eps=float(eps), **self.params)
        return {**super().hyperparameters(eps), "step_size": config.step_size, "random_start": True}

    def generate(self, target, images, x, labels, eps, seed):
        from ..registry import create_attack

        attack = create_attack("pgd", framework=target.runtime.name, eps=float(eps), seed=int(seed), **self.params)
        return target.runtime.adversarial_images(target.model, images, labels, attack, batch_size=target.batch_size)


class APGDCEMember(EnsembleAttack):
    """APGD with the cross-entropy loss (ART ``AutoProjectedGradientDescent``)."""

    name = "apgd-ce"
    uses_art = True
    defaults = {"max_iter": 100, "restarts": 1, "batch_size": 128}
    implementation = f"adversarial-robustness-toolbox {ART_VERSION} AutoProjectedGradientDescent(cross_entropy)"

    def _attack(self, target: Target, eps: float, targeted: bool, loss: str):
        from art.attacks.evasion import AutoProjectedGradientDescent

        return AutoProjectedGradientDescent(
            target.art(), norm=np.inf, eps=float(eps), eps_step=2 * float(eps), max_iter=self.params["max_iter"],
            targeted=targeted, nb_random_init=self.params["restarts"], batch_size=self.params["batch_size"],
            loss_type=loss, verbose=False)

    def generate(self, target, images, x, labels, eps, seed):
        with numpy_seed(seed):
            return self._attack(target, eps, False, "cross_entropy").generate(x, y=labels)


class APGDTMember(APGDCEMember):
    """Targeted APGD on the DLR loss, once per target class among the top ``n_targets`` wrong ones."""

    name = "apgd-t"
    defaults = {"max_iter": 100, "restarts": 1, "n_targets": 9, "batch_size": 128}
    implementation = (f"adversarial-robustness-toolbox {ART_VERSION} "
                      "AutoProjectedGradientDescent(difference_logits_ratio, targeted)")

    def generate(self, target, images, x, labels, eps, seed):
        logits = target.logits(x)
        logits[np.arange(len(labels)), labels] = -np.inf
        n_targets = min(self.params["n_targets"], target.num_classes - 1)
        order = np.argsort(-logits, axis=1, kind="stable")[:, :n_targets]
        best = x.copy()
        open_ = np.ones(len(x), dtype=bool)
        for k in range(n_targets):
            if not open_.any():
                break
            attack = self._attack(target, eps, True, "difference_logits_ratio")
            with numpy_seed(seed + k):
                candidate = attack.generate(x[open_], y=order[open_, k])
            fooled = target.predict(candidate) != labels[open_]
            rows = np.flatnonzero(open_)
            best[rows[fooled]] = candidate[fooled]
            if k == n_targets - 1:  # nothing fooled: keep the last try
                best[rows[~fooled]] = candidate[~fooled]
            open_[rows[fooled]] = False
        return best


class SquareMember(EnsembleAttack):
    """Square Attack (Andriushchenko et al. 2020): random square updates, scores only (ART)."""

    name = "square"
    kind = "black-box"
    uses_art = True
    defaults = {"max_iter": 5000, "p_init": 0.8, "restarts": 1, "batch_size": 128}
    implementation = f"adversarial-robustness-toolbox {ART_VERSION} SquareAttack"

    def generate(self, target, images, x, labels, eps, seed):
        from art.attacks.evasion import SquareAttack

        attack = SquareAttack(target.art(), norm=np.inf, eps=float(eps), max_iter=self.params["max_iter"],
                              p_init=float(self.params["p_init"]), nb_restarts=self.params["restarts"],
                              batch_size=self.params["batch_size"], verbose=False)
        with numpy_seed(seed):
            return attack.generate(x, y=labels)


MEMBERS: dict[str, type[EnsembleAttack]] = {
    cls.name: cls for cls in (PGDMember, APGDCEMember, APGDTMember, SquareMember)
}


def build_ensemble(attacks: Sequence[str | EnsembleAttack] | Mapping[str, Mapping[str, Any]] | None = None
                   ) -> list[EnsembleAttack]:
    """Members from None (the default four), names, ready members, or a mapping name -> parameters.

    A member that needs ART when ART is not installed is a PluginError naming the extra.
    """
    if attacks is None:
        attacks = DEFAULT_ATTACKS
    items = list(attacks.items()) if isinstance(attacks, Mapping) else [(a, {}) for a in attacks]
    members: list[EnsembleAttack] = []
    for item, params in items:
        if isinstance(item, EnsembleAttack):
            members.append(item)
            continue
        if item not in MEMBERS:
            from ..errors import suggest

            raise UsageError(f"Unknown ensemble attack '{item}'.{suggest(str(item), MEMBERS)} "
                             f"Available: {', '.join(MEMBERS)}")
        members.append(MEMBERS[item](**dict(params or {})))
    names = [m.name for m in members]
    if len(set(names)) != len(names):
        raise UsageError(f"ensemble attacks must have distinct names, got {', '.join(names)}")
    if not members:
        raise UsageError("the attack ensemble needs at least one attack")
    needs_art = [m.name for m in members if m.uses_art]
    if needs_art and importlib.util.find_spec("art") is None:
        raise PluginError(f"ensemble attack(s) {', '.join(needs_art)} need adversarial-robustness-toolbox, "
                          "which is not installed", hint="pip install 'harness[robust]'")
    return members
