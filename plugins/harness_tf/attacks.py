"""White-box attacks in pixel space [0, 1] for Keras models: FGSM, BIM and PGD, in L-inf and L2,
plus ``nsl-perturb`` (NSL's adversarial neighbours, as the seeds validated models).

The same semantics and parameter names as :mod:`harness_torch.attacks` (one spec,
:class:`harness.attacks.AttackConfig`), on float32 N,H,W,C images:

- functions :func:`fgsm`, :func:`bim`, :func:`pgd` (``loss_fn(labels, logits)``
  replaces the per-example cross-entropy);
- classes :class:`FGSM`, :class:`BIM`, :class:`PGD`, called as
  ``attack(model, x, y=None, target=None)``, with the label ``mode`` (true-label,
  predicted, targeted) and ``seed``.

Every result lies inside the eps ball around ``x`` and inside [0, 1] (projection
then clipping). Models run with ``training=False`` and must output logits. For a
Keras model (any ``tf.Module``) each iteration runs as a ``tf.function`` graph,
compiled once per model and attack settings (see :class:`_Steps`).
"""

from __future__ import annotations

import weakref
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable, ClassVar

import numpy as np
import tensorflow as tf

from harness.attacks import AttackBase, AttackConfig, attack_classes, mode_labels
from harness.errors import UsageError

from . import device  # noqa: F401 - honours HARNESS_DEVICE=cpu before TensorFlow starts GPUs

#: loss_fn(labels, logits) -> per-example losses, shape (N,) (a scalar is accepted too)
LossFn = Callable[[tf.Tensor, tf.Tensor], tf.Tensor]

__all__ = ["BIM", "FGSM", "PGD", "Attack", "NSLPerturb", "bim", "fgsm", "pgd"]


def _images(x: Any) -> tf.Tensor:
    """``x`` as a float32 tensor, checked to be images in [0, 1]."""
    if not isinstance(x, (tf.Tensor, tf.Variable, np.ndarray)) or not tf.as_dtype(x.dtype).is_floating:
        raise UsageError("attacks take float image tensors in [0, 1]")
    x0 = tf.cast(tf.convert_to_tensor(x), tf.float32)
    if tf.size(x0) > 0:
        low, high = float(tf.reduce_min(x0)), float(tf.reduce_max(x0))
        if low < 0.0 or high > 1.0:
            raise UsageError(
                f"attack inputs must be images in [0, 1], got values in [{low:.3g}, {high:.3g}]",
                hint="normalization belongs inside the model; attack budgets are in pixel space",
            )
    return x0


def _prepare(x: Any, y: Any) -> tuple[tf.Tensor, tf.Tensor]:
    x0 = _images(x)
    if y is None:
        raise UsageError("the attack needs labels y (or loss_fn targets)")
    y = tf.stop_gradient(tf.convert_to_tensor(y))
    if y.shape.rank == 0 or y.shape[0] != x0.shape[0]:
        raise UsageError(f"got {y.shape[0] if y.shape.rank else 0} labels for {x0.shape[0]} images")
    return x0, y


def _is_labels(y: tf.Tensor) -> bool:
    return y.shape.rank == 1 and y.dtype.is_integer


def _losses(logits: tf.Tensor, y: tf.Tensor, loss_fn: LossFn | None) -> tf.Tensor:
    if loss_fn is None:
        return tf.nn.sparse_softmax_cross_entropy_with_logits(labels=tf.cast(y, tf.int64), logits=logits)
    losses = tf.convert_to_tensor(loss_fn(y, logits))
    return tf.broadcast_to(losses, [tf.shape(logits)[0]]) if losses.shape.rank == 0 else tf.reshape(losses, [-1])


def _per_example_norm(t: tf.Tensor) -> tf.Tensor:
    """L2 norm of each example, shaped to broadcast against ``t``."""
    norm = tf.sqrt(tf.reduce_sum(tf.square(tf.reshape(t, [tf.shape(t)[0], -1])), axis=1))
    return tf.reshape(norm, [-1] + [1] * (t.shape.rank - 1))


def _step(x: tf.Tensor, grad: tf.Tensor, step_size: float, norm: str) -> tf.Tensor:
    if norm == "linf":
        return x + step_size * tf.sign(grad)
    return x + step_size * grad / tf.maximum(_per_example_norm(grad), 1e-12)


def _project(x_adv: tf.Tensor, x0: tf.Tensor, eps: float, norm: str) -> tf.Tensor:
    """Project into the eps ball around ``x0``, then clip to [0, 1] (which only shrinks the step)."""
    delta = x_adv - x0
    if norm == "linf":
        delta = tf.clip_by_value(delta, -eps, eps)
    else:
        delta = delta * tf.minimum(eps / tf.maximum(_per_example_norm(delta), 1e-12), 1.0)
    return tf.clip_by_value(x0 + delta, 0.0, 1.0)


def _random_delta(x0: tf.Tensor, eps: float, norm: str, rng: tf.random.Generator) -> tf.Tensor:
    """A uniform random point of the eps ball."""
    shape = tf.shape(x0)
    if norm == "linf":
        return (2.0 * rng.uniform(shape) - 1.0) * eps
    direction = rng.normal(shape)
    direction = direction / tf.maximum(_per_example_norm(direction), 1e-12)
    dims = int(np.prod(x0.shape[1:]))
    radius = rng.uniform([shape[0]]) ** (1.0 / dims)
    return direction * tf.reshape(eps * radius, [-1] + [1] * (x0.shape.rank - 1))


class _Best:
    """Worst case per example: a candidate that fools the model beats one that does not,
    otherwise the higher attack score (loss, or minus the loss when targeted) wins."""

    def __init__(self, x0: tf.Tensor):
        n = x0.shape[0]
        self.x = x0
        self.score = tf.fill([n], -np.inf)
        self.fooled = tf.zeros([n], tf.bool)

    def update(self, x: tf.Tensor, score: tf.Tensor, fooled: tf.Tensor) -> None:
        better = (fooled & ~self.fooled) | ((fooled == self.fooled) & (score > self.score))
        self.x = tf.where(tf.reshape(better, [-1] + [1] * (x.shape.rank - 1)), x, self.x)
        self.score = tf.where(better, score, self.score)
        self.fooled = self.fooled | fooled


def _logits(model: Any, x: tf.Tensor) -> tf.Tensor:
    return tf.cast(model(x, training=False), tf.float32)


def _fooled(logits: tf.Tensor, y: tf.Tensor, targeted: bool, labels: bool) -> tf.Tensor:
    """Per example: does the model miss ``y`` (hit it, when targeted)? Always False for soft targets."""
    if not labels:
        return tf.zeros(tf.shape(logits)[:1], tf.bool)
    hit = tf.argmax(logits, axis=1, output_type=y.dtype) == y
    return hit if targeted else ~hit


class _Steps:
    """One attack iteration and the scoring of a candidate, for one model and one configuration.

    ``step(x_adv, x0, y) -> (next iterate, losses of x_adv, fooled at x_adv)``: the gradient of
    the summed losses, the signed or normalised step, the projection. ``score(x, y) -> (losses,
    fooled)``. For Keras models (any ``tf.Module``) without a custom ``loss_fn`` both run as
    ``tf.function`` graphs, kept per model in :data:`_COMPILED`; otherwise eagerly. Same ops either
    way: compiling removes the per-op Python dispatch of eager mode, which dominates for small models.
    """

    def __init__(self, model: Any, config: AttackConfig, loss_fn: LossFn | None, labels: bool,
                 compiled: bool):
        self.sign = sign = -1.0 if config.targeted else 1.0
        norm, eps, step_size, targeted = config.norm, config.eps, config.step_size, config.targeted
        model_ref = weakref.ref(model) if compiled else (lambda: model)  # a graph must not keep its model alive

        def step(x_adv: tf.Tensor, x0: tf.Tensor, y: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor, tf.Tensor]:
            with tf.GradientTape() as tape:
                tape.watch(x_adv)
                logits = _logits(model_ref(), x_adv)
                losses = _losses(logits, y, loss_fn)
                total = tf.reduce_sum(losses)
            grad = tape.gradient(total, x_adv)
            x_next = _project(_step(x_adv, sign * grad, step_size, norm), x0, eps, norm)
            return x_next, losses, _fooled(logits, y, targeted, labels)

        def score(x: tf.Tensor, y: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
            logits = _logits(model_ref(), x)
            return _losses(logits, y, loss_fn), _fooled(logits, y, targeted, labels)

        self.step = tf.function(step, reduce_retracing=True) if compiled else step
        self.score = tf.function(score, reduce_retracing=True) if compiled else score


#: compiled :class:`_Steps` per (model id, settings); an entry is dropped when its model is collected
_COMPILED: dict[tuple[Any, ...], _Steps] = {}


def _steps(model: Any, config: AttackConfig, loss_fn: LossFn | None, labels: bool) -> _Steps:
    if loss_fn is not None or not isinstance(model, tf.Module):  # a fresh loss_fn per call would retrace
        return _Steps(model, config, loss_fn, labels, compiled=False)
    key = (id(model), config.norm, config.eps, config.step_size, config.targeted, labels)
    steps = _COMPILED.get(key)
    if steps is None:
        steps = _COMPILED[key] = _Steps(model, config, None, labels, compiled=True)
        weakref.finalize(model, _COMPILED.pop, key, None)
    return steps


def _run(model, x, y, config: AttackConfig, rng: tf.random.Generator | None, loss_fn: LossFn | None,
         keep_best: bool) -> tf.Tensor:
    """Shared PGD loop (FGSM and BIM are special cases)."""
    x0, y = _prepare(x, y)
    if config.eps == 0 or x0.shape[0] == 0:
        return tf.identity(x0)
    steps = _steps(model, config, loss_fn, _is_labels(y))
    select = keep_best or config.restarts > 1
    best = _Best(x0) if select else None
    rng = rng if rng is not None else tf.random.get_global_generator()
    x_adv = x0
    for _ in range(config.restarts):
        x_adv = x0
        if config.random_start:
            x_adv = tf.clip_by_value(x0 + _random_delta(x0, config.eps, config.norm, rng), 0.0, 1.0)
        for _ in range(config.steps):
            x_next, losses, fooled = steps.step(x_adv, x0, y)
            if keep_best:
                best.update(x_adv, steps.sign * losses, fooled)
            x_adv = x_next
        if select:
            losses, fooled = steps.score(x_adv, y)
            best.update(x_adv, steps.sign * losses, fooled)
    x_adv = best.x if select else x_adv
    # the candidates are all in the ball already; one more projection guards against rounding
    return tf.stop_gradient(_project(x_adv, x0, config.eps, config.norm))


def fgsm(model: Any, x: Any, y: Any, eps: float | None = None, norm: str = "linf", *, targeted: bool = False,
         loss_fn: LossFn | None = None) -> tf.Tensor:
    """One step of size ``eps``: sign of the gradient (linf) or the normalised gradient (l2, FGM).

    ``targeted``: ``y`` are target labels and the step descends their loss.
    """
    config = AttackConfig.for_attack("fgsm", eps=eps, norm=norm, mode="targeted" if targeted else "true-label")
    return _run(model, x, y, config, None, loss_fn, keep_best=False)


def pgd(model: Any, x: Any, y: Any, eps: float | None = None, step_size: float | None = None, steps: int = 10,
        norm: str = "linf", random_start: bool = True, restarts: int = 1,
        generator: tf.random.Generator | None = None, loss_fn: LossFn | None = None, *, targeted: bool = False,
        keep_best: bool = True) -> tf.Tensor:
    """Projected gradient descent; returns the worst case over iterates and restarts per example.

    ``step_size`` None: ``2.5 * eps / steps``. ``generator`` (a ``tf.random.Generator``)
    drives the random start. ``keep_best=False`` returns each run's last iterate.
    """
    config = AttackConfig(eps=eps, step_size=step_size, steps=steps, restarts=restarts, norm=norm,
                          random_start=random_start, mode="targeted" if targeted else "true-label", seed=None)
    return _run(model, x, y, config, generator, loss_fn, keep_best)


def bim(model: Any, x: Any, y: Any, eps: float | None = None, step_size: float | None = None, steps: int = 10,
        norm: str = "linf", *, targeted: bool = False, loss_fn: LossFn | None = None,
        keep_best: bool = True) -> tf.Tensor:
    """Basic Iterative Method: :func:`pgd` from the clean image, no random start, one run."""
    return pgd(model, x, y, eps, step_size, steps, norm, random_start=False, restarts=1, loss_fn=loss_fn,
               targeted=targeted, keep_best=keep_best)


def _mode_labels(name: str, mode: str, model: Any, x: Any, y: Any, target: Any) -> tf.Tensor:
    """The labels an attack moves away from (or towards, when targeted); ``predicted`` ignores ``y``."""
    return mode_labels(name, mode, y, target, tf.convert_to_tensor,
                       lambda: tf.argmax(_logits(model, _images(x)), axis=1))


class Attack(AttackBase):
    """Base class: ``attack(model, x, y=None, target=None) -> x_adv`` per :class:`AttackConfig`.

    Subclasses take their parameters by keyword; names and defaults are in
    :data:`harness.attacks.ATTACK_PARAMS` (one table for both frameworks), and an unknown one is an error.
    """

    def labels(self, model: Any, x: Any, y: Any = None, target: Any = None) -> tf.Tensor:
        """The labels the attack moves away from (or towards, when targeted)."""
        return _mode_labels(self.name, self.config.mode, model, x, y, target)

    def __call__(self, model: Any, x: Any, y: Any = None, target: Any = None) -> tf.Tensor:
        labels = self.labels(model, x, y, target)
        rng = tf.random.Generator.from_seed(self.config.seed) if self.config.seed is not None else None
        return _run(model, x, labels, self.config, rng, None, keep_best=self.keep_best)


FGSM, BIM, PGD = attack_classes(Attack, __name__)


class NSLPerturb:
    """Adversarial neighbours from NSL's ``perturb_on_batch``, clipped to [0, 1] (the seeds' validation).

    The perturbation comes from ``reference_model`` -- a Keras model, or a weights file
    (``.h5`` or a training ``checkpoint.npz``) of the attacked model's architecture -- or,
    when None, from the attacked
    model itself (white-box). ``adv_step_size``, ``adv_grad_norm`` (``infinity`` or
    ``l2``), ``pgd_iterations``, ``pgd_epsilon`` and ``random_init`` are NSL's knobs.
    Mode ``true-label`` moves away from ``y``; ``predicted`` from the reference
    model's own predictions (unlabelled data).
    """

    name: ClassVar[str] = "nsl-perturb"
    MODES: ClassVar[tuple[str, ...]] = ("true-label", "predicted")

    def __init__(self, reference_model: Any = None, adv_step_size: float = 0.2, adv_grad_norm: str = "infinity",
                 pgd_iterations: int = 1, pgd_epsilon: float | None = None, random_init: bool = False,
                 mode: str = "true-label"):
        from .nsl import adv_reg_config

        if mode not in self.MODES:
            raise UsageError(f"nsl-perturb: mode must be one of {', '.join(self.MODES)}, got {mode!r}")
        self.mode = mode
        self.reference_model = reference_model
        self.knobs = {"adv_step_size": adv_step_size, "adv_grad_norm": adv_grad_norm,
                      "pgd_iterations": pgd_iterations, "pgd_epsilon": pgd_epsilon, "random_init": random_init}
        self.adv_config = adv_reg_config(self.name, multiplier=0.0, clip_value_min=0.0, clip_value_max=1.0,
                                         **self.knobs)
        self._wrapped: tuple[Any, Any] | None = None  # (source model, its NSL wrapper)

    @property
    def description(self) -> str:
        return "NSL adversarial neighbours (perturb_on_batch) from a reference model, clipped to [0, 1]"

    @property
    def config(self) -> SimpleNamespace:
        """The budget the neighbours stay within (the attack contract's ``config.eps``/``config.norm``):
        ``pgd_epsilon`` when set, else the steps' sizes summed (``random_init`` adds one step)."""
        knobs = self.knobs
        steps = knobs["pgd_iterations"] + int(knobs["random_init"])
        eps = knobs["pgd_epsilon"] if knobs["pgd_epsilon"] is not None else knobs["adv_step_size"] * steps
        return SimpleNamespace(eps=float(eps), norm="linf" if knobs["adv_grad_norm"] == "infinity" else "l2")

    def _source(self, model: Any) -> Any:
        reference = self.reference_model
        if reference is None:
            return model
        if isinstance(reference, (str, Path)):
            import tf_keras as keras

            from .train import load_checkpoint_weights

            self.reference_model = load_checkpoint_weights(keras.models.clone_model(model), reference)
            return self.reference_model
        if not callable(reference):
            raise UsageError(f"nsl-perturb: reference_model must be a Keras model or a weights path, got {reference!r}")
        return reference

    def _wrapper(self, source: Any) -> Any:
        from .nsl import wrap

        if self._wrapped is None or self._wrapped[0] is not source:
            self._wrapped = (source, wrap(source, self.adv_config, tuple(int(v) for v in source.input_shape[1:])))
        return self._wrapped[1]

    def __call__(self, model: Any, x: Any, y: Any = None, target: Any = None) -> tf.Tensor:
        if target is not None:
            raise UsageError("nsl-perturb: targeted attacks are not supported", hint="use fgsm, bim or pgd")
        source = self._source(model)
        x0 = _images(x)
        labels = _mode_labels(self.name, self.mode, source, x0, y, None)
        if labels.shape.rank != 1 or labels.shape[0] != x0.shape[0]:
            raise UsageError(f"got {labels.shape[0] if labels.shape.rank else 0} labels for {x0.shape[0]} images")
        if x0.shape[0] == 0:
            return x0
        adversarial = self._wrapper(source).perturb_on_batch({"image": x0, "label": tf.cast(labels, tf.int64)})
        return tf.clip_by_value(tf.convert_to_tensor(adversarial["image"], tf.float32), 0.0, 1.0)

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in self.knobs.items())
        return f"NSLPerturb({fields}, mode={self.mode!r})"
