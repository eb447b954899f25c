"""Attacks from adversarial-robustness-toolbox as ordinary attack plugins: APGD-CE, APGD-T, Square.

Each follows the attack contract: ``attack(model, x, y=None, target=None)`` on the framework's
float32 images in [0, 1], with ``config.eps``, ``config.norm`` and ``config.to_dict()``, and a
``threat`` (Square is black-box: it only reads scores). They reach the model through the framework
runtime's ``art_classifier`` on float32 N,H,W,C numpy; a framework package supplies the layout
conversion at the boundary (:class:`Layout`) and :func:`art_attack_classes` derives its classes.
Defaults follow AutoAttack's "standard" version (Croce & Hein 2020). They are registered as
``art-apgd-ce``, ``art-apgd-t``, ``art-square`` for torch (the plain names are its native members,
:mod:`harness.attacks.autoattack`); TensorFlow, with no native members yet, registers them under the
plain names. ``seed`` seeds numpy's
global generator (ART draws from it) for the call, then restores it. Nothing here imports a
framework or ART until an attack runs.
"""

from __future__ import annotations

import contextlib
import importlib.util
from typing import Any, ClassVar, Iterator, Protocol

import numpy as np

from ..errors import PluginError, UsageError
from .autoattack import KnobConfig

ART_VERSION = "1.20.1"

#: every parameter of every ART attack with its default (eps None: the norm's default budget)
ART_ATTACK_PARAMS: dict[str, dict[str, Any]] = {
    "apgd-ce": {"eps": None, "norm": "linf", "max_iter": 100, "restarts": 1, "batch_size": 128, "seed": 0},
    "apgd-t": {"eps": None, "norm": "linf", "max_iter": 100, "restarts": 1, "n_targets": 9, "batch_size": 128,
               "seed": 0},
    "square": {"eps": None, "norm": "linf", "max_iter": 5000, "p_init": 0.8, "restarts": 1, "batch_size": 128,
               "seed": 0},
}

ART_ATTACK_DESCRIPTIONS: dict[str, str] = {
    "apgd-ce": "APGD on the cross-entropy (ART AutoProjectedGradientDescent), step size adapted per example",
    "apgd-t": "Targeted APGD on the DLR loss, once per target among the top n_targets wrong classes (ART)",
    "square": "Square Attack: black-box, score-based random square updates (ART SquareAttack)",
}

@contextlib.contextmanager
def numpy_seed(seed: int) -> Iterator[None]:
    """Seed numpy's global RNG (ART draws from it) for the block, then restore its state."""
    state = np.random.get_state()
    np.random.seed(int(seed) % 2**32)
    try:
        yield
    finally:
        np.random.set_state(state)


class Layout(Protocol):
    """A framework's conversion between its attack tensors and ART's float32 N,H,W,C numpy."""

    def images_to_numpy(self, x: Any) -> np.ndarray:
        """Framework images -> float32 N,H,W,C numpy."""

    def labels_to_numpy(self, y: Any) -> np.ndarray:
        """Framework (or numpy) labels -> int64 numpy."""

    def images_from_numpy(self, images: np.ndarray, like: Any) -> Any:
        """float32 N,H,W,C numpy -> images of ``like``'s type, layout and device."""


class ArtAttack:
    """Base class of the ART attacks; a framework's subclass sets ``framework`` and ``layout``.

    ``batches_itself``: ART batches internally (``batch_size``), so the harness hands it every
    image in one call (numpy's seeded stream then runs exactly once over them).
    """

    name: ClassVar[str] = ""
    #: the attack in :data:`ART_ATTACK_PARAMS` (``name`` is the registry name: ``art-`` + base, or base)
    base: ClassVar[str] = ""
    threat: ClassVar[str] = "white-box"
    implementation: ClassVar[str] = ""
    framework: ClassVar[str] = ""
    layout: ClassVar[Layout]
    batches_itself: ClassVar[bool] = True

    def __init__(self, **params: Any):
        self.config = KnobConfig.for_attack(self.name, {self.name: ART_ATTACK_PARAMS[self.base]}, **params)
        if importlib.util.find_spec("art") is None:
            raise PluginError(f"attack '{self.name}' needs adversarial-robustness-toolbox, which is not installed",
                              hint="pip install 'harness[robust]'")

    @property
    def description(self) -> str:
        return ART_ATTACK_DESCRIPTIONS[self.base]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.config.to_dict().items())})"

    @property
    def _art_norm(self) -> float:
        return np.inf if self.config.norm == "linf" else 2

    def __call__(self, model: Any, x: Any, y: Any = None, target: Any = None) -> Any:
        from ..frameworks import get_runtime

        if target is not None:
            raise UsageError(f"{self.name}: target labels are not supported (untargeted; apgd-t picks its own)")
        images = np.ascontiguousarray(self.layout.images_to_numpy(x), dtype=np.float32)
        if images.size and (images.min() < 0.0 or images.max() > 1.0):
            raise UsageError(f"attack inputs must be images in [0, 1], got values in "
                             f"[{images.min():.3g}, {images.max():.3g}]",
                             hint="normalization belongs inside the model; attack budgets are in pixel space")
        if len(images) == 0 or self.config.eps == 0:
            return self.layout.images_from_numpy(images.copy(), x)
        runtime = get_runtime(self.framework)
        logits = runtime.predict_logits_float(model, images)
        labels = logits.argmax(axis=1) if y is None else self.layout.labels_to_numpy(y)
        if labels.shape != (len(images),):
            raise UsageError(f"{self.name}: got {labels.shape[0] if labels.ndim else 0} labels for "
                             f"{len(images)} images")
        classifier = runtime.art_classifier(model, int(logits.shape[1]), tuple(images.shape[1:]))
        adversarial = self.generate(runtime, model, classifier, images, labels, logits)
        return self.layout.images_from_numpy(np.asarray(adversarial, dtype=np.float32), x)

    def generate(self, runtime: Any, model: Any, classifier: Any, x: np.ndarray, labels: np.ndarray,
                 logits: np.ndarray) -> np.ndarray:
        """Adversarial float32 N,H,W,C numpy for ``x`` and its ``labels`` (``logits``: the clean ones)."""
        raise NotImplementedError


class APGDCE(ArtAttack):
    """APGD with the cross-entropy loss (ART ``AutoProjectedGradientDescent``)."""

    base = "apgd-ce"
    implementation = f"adversarial-robustness-toolbox {ART_VERSION} AutoProjectedGradientDescent(cross_entropy)"

    def _apgd(self, classifier: Any, targeted: bool, loss: str) -> Any:
        from art.attacks.evasion import AutoProjectedGradientDescent

        c = self.config
        return AutoProjectedGradientDescent(
            classifier, norm=self._art_norm, eps=float(c.eps), eps_step=2 * float(c.eps), max_iter=c.max_iter,
            targeted=targeted, nb_random_init=c.restarts, batch_size=c.batch_size, loss_type=loss, verbose=False)

    def generate(self, runtime, model, classifier, x, labels, logits):
        with numpy_seed(self.config.seed):
            return self._apgd(classifier, False, "cross_entropy").generate(x, y=labels)


class APGDT(APGDCE):
    """Targeted APGD on the DLR loss, once per target class among the top ``n_targets`` wrong ones.

    An example keeps the first candidate that fools the model; one that nothing fools keeps the last try.
    """

    base = "apgd-t"
    implementation = (f"adversarial-robustness-toolbox {ART_VERSION} "
                      "AutoProjectedGradientDescent(difference_logits_ratio, targeted)")

    def generate(self, runtime, model, classifier, x, labels, logits):
        logits = logits.copy()
        logits[np.arange(len(labels)), labels] = -np.inf
        n_targets = min(self.config.n_targets, logits.shape[1] - 1)
        order = np.argsort(-logits, axis=1, kind="stable")[:, :n_targets]
        best = x.copy()
        open_ = np.ones(len(x), dtype=bool)
        for k in range(n_targets):
            if not open_.any():
                break
            attack = self._apgd(classifier, True, "difference_logits_ratio")
            with numpy_seed(self.config.seed + k):
                candidate = attack.generate(x[open_], y=order[open_, k])
            fooled = runtime.predict_logits_float(model, candidate).argmax(axis=1) != labels[open_]
            rows = np.flatnonzero(open_)
            best[rows[fooled]] = candidate[fooled]
            if k == n_targets - 1:  # nothing fooled: keep the last try
                best[rows[~fooled]] = candidate[~fooled]
            open_[rows[fooled]] = False
        return best


class Square(ArtAttack):
    """Square Attack (Andriushchenko et al. 2020): random square updates, scores only (ART)."""

    base = "square"
    threat = "black-box"
    implementation = f"adversarial-robustness-toolbox {ART_VERSION} SquareAttack"

    def generate(self, runtime, model, classifier, x, labels, logits):
        from art.attacks.evasion import SquareAttack

        c = self.config
        attack = SquareAttack(classifier, norm=self._art_norm, eps=float(c.eps), max_iter=c.max_iter,
                              p_init=float(c.p_init), nb_restarts=c.restarts, batch_size=c.batch_size,
                              verbose=False)
        with numpy_seed(c.seed):
            return attack.generate(x, y=labels)


#: class name -> base class of the ART attacks each framework defines
ART_ATTACK_CLASSES: dict[str, type[ArtAttack]] = {"APGDCE": APGDCE, "APGDT": APGDT, "Square": Square}


#: registry prefix of the ART attacks (``art-apgd-ce``, ...); the native members own the plain names
PREFIX = "art-"


def art_attack_classes(framework: str, layout: Layout, module: str, prefix: str = PREFIX
                       ) -> tuple[type[ArtAttack], ...]:
    """APGDCE, APGDT and Square for ``framework``, converting with ``layout``, living in ``module``,
    registered as ``prefix`` + apgd-ce / apgd-t / square."""
    return tuple(type(class_name, (base,), {"name": prefix + base.base, "framework": framework, "layout": layout,
                                            "__module__": module, "__doc__": base.__doc__})
                 for class_name, base in ART_ATTACK_CLASSES.items())


def art_attack_specs(package: str, framework: str, prefix: str = PREFIX, classes: str = "{}") -> list[Any]:
    """AttackSpecs of ``prefix`` + apgd-ce / apgd-t / square, implemented by ``package.art_attacks`` (class
    names ``classes.format("APGDCE")``, ...)."""
    from ..specs import AttackSpec

    return [AttackSpec(name=prefix + base.base, factory=f"{package}.art_attacks:{classes.format(class_name)}",
                       description=ART_ATTACK_DESCRIPTIONS[base.base], framework=framework,
                       params=dict(ART_ATTACK_PARAMS[base.base]))
            for class_name, base in ART_ATTACK_CLASSES.items()]
