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
compiled once per model and attack settings (see :meth:`TFAttackOps.steps`). The loop is
:func:`harness.attacks.run`, shared with torch; this module holds its TensorFlow calls.
"""

from __future__ import annotations

import contextlib
import weakref
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable, ClassVar

import numpy as np
import tensorflow as tf

from harness.attacks import (AttackConfig, DriverAttack, Steps, attack_classes, checked_images, mode_labels,
                             predicted_labels, run)
from harness.errors import UsageError

from . import device  # noqa: F401 - honours HARNESS_DEVICE=cpu before TensorFlow starts GPUs

#: loss_fn(labels, logits) -> per-example losses, shape (N,) (a scalar is accepted too)
LossFn = Callable[[tf.Tensor, tf.Tensor], tf.Tensor]

__all__ = ["BIM", "FGSM", "PGD", "Attack", "NSLPerturb", "TFAttackOps", "bim", "fgsm", "pgd"]


def _logits(model: Any, x: tf.Tensor) -> tf.Tensor:
    return tf.cast(model(x, training=False), tf.float32)


class TFAttackOps:
    """:class:`harness.attacks.AttackOps` over TensorFlow tensors (N,H,W,C).

    For a Keras model (any ``tf.Module``) without a custom ``loss_fn``, :meth:`steps` compiles the
    driver's step and score as ``tf.function`` graphs, kept per model in :data:`_COMPILED`; otherwise
    they run eagerly. Same ops either way: compiling removes the per-op Python dispatch of eager
    mode, which dominates for small models.
    """

    def images(self, model: Any, x: Any) -> tf.Tensor:
        if not isinstance(x, (tf.Tensor, tf.Variable, np.ndarray)) or not tf.as_dtype(x.dtype).is_floating:
            raise UsageError("attacks take float image tensors in [0, 1]")
        return tf.cast(tf.convert_to_tensor(x), tf.float32)

    def labels(self, y: Any, like: tf.Tensor) -> tf.Tensor:
        return tf.stop_gradient(tf.convert_to_tensor(y))

    def convert_labels(self, y: Any) -> tf.Tensor:
        return tf.convert_to_tensor(y)

    def size(self, t: tf.Tensor) -> int:
        return int(tf.size(t))

    def rank(self, t: tf.Tensor) -> int:
        return t.shape.rank

    def length(self, t: tf.Tensor) -> int:
        return t.shape[0]

    def numel_per_example(self, t: tf.Tensor) -> int:
        return int(np.prod(t.shape[1:]))

    def min_max(self, t: tf.Tensor) -> tuple[float, float]:
        return float(tf.reduce_min(t)), float(tf.reduce_max(t))

    def is_labels(self, y: tf.Tensor) -> bool:
        return y.shape.rank == 1 and y.dtype.is_integer

    def inference(self, model: Any, enabled: bool):
        return contextlib.nullcontext()  # models are called with training=False

    def no_grad(self):
        return contextlib.nullcontext()  # gradients are only recorded inside a tape

    def logits(self, model: Any, x: tf.Tensor) -> tf.Tensor:
        return _logits(model, x)

    def losses(self, logits: tf.Tensor, y: tf.Tensor, loss_fn: LossFn | None) -> tf.Tensor:
        if loss_fn is None:
            return tf.nn.sparse_softmax_cross_entropy_with_logits(labels=tf.cast(y, tf.int64), logits=logits)
        losses = tf.convert_to_tensor(loss_fn(y, logits))
        return tf.broadcast_to(losses, [tf.shape(logits)[0]]) if losses.shape.rank == 0 else tf.reshape(losses, [-1])

    def losses_and_gradient(self, model, x, y, loss_fn):
        with tf.GradientTape() as tape:
            tape.watch(x)
            logits = _logits(model, x)
            losses = self.losses(logits, y, loss_fn)
            total = tf.reduce_sum(losses)
        return logits, losses, tape.gradient(total, x)

    def hits(self, logits: tf.Tensor, y: tf.Tensor) -> tf.Tensor:
        return tf.argmax(logits, axis=1, output_type=y.dtype) == y

    def argmax(self, logits: tf.Tensor) -> tf.Tensor:
        return tf.argmax(logits, axis=1)

    def sign(self, t: tf.Tensor) -> tf.Tensor:
        return tf.sign(t)

    def clip(self, t: tf.Tensor, low: float, high: float) -> tf.Tensor:
        return tf.clip_by_value(t, low, high)

    def maximum(self, t: tf.Tensor, value: float) -> tf.Tensor:
        return tf.maximum(t, value)

    def minimum(self, t: tf.Tensor, value: float) -> tf.Tensor:
        return tf.minimum(t, value)

    def example_norm(self, t: tf.Tensor) -> tf.Tensor:
        norm = tf.sqrt(tf.reduce_sum(tf.square(tf.reshape(t, [tf.shape(t)[0], -1])), axis=1))
        return tf.reshape(norm, [-1] + [1] * (t.shape.rank - 1))

    def per_example(self, v: tf.Tensor, like: tf.Tensor) -> tf.Tensor:
        return tf.reshape(v, [-1] + [1] * (like.shape.rank - 1))

    def where(self, condition: tf.Tensor, a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
        return tf.where(tf.reshape(condition, [-1] + [1] * (a.shape.rank - 1)), a, b)

    def full(self, like: tf.Tensor, value: float) -> tf.Tensor:
        return tf.fill(tf.shape(like)[:1], value)

    def falses(self, like: tf.Tensor) -> tf.Tensor:
        return tf.zeros(tf.shape(like)[:1], tf.bool)

    def generator(self, seed: int | None) -> tf.random.Generator | None:
        return tf.random.Generator.from_seed(seed) if seed is not None else None

    def uniform(self, rng: tf.random.Generator | None, like: tf.Tensor, rows: bool = False) -> tf.Tensor:
        rng = rng if rng is not None else tf.random.get_global_generator()
        return rng.uniform(tf.shape(like)[:1] if rows else tf.shape(like))

    def normal(self, rng: tf.random.Generator | None, like: tf.Tensor) -> tf.Tensor:
        rng = rng if rng is not None else tf.random.get_global_generator()
        return rng.normal(tf.shape(like))

    def move_like(self, t: tf.Tensor, like: tf.Tensor) -> tf.Tensor:
        return t

    def steps(self, model: Any, config: AttackConfig, loss_fn: LossFn | None, labels: bool) -> Steps:
        if loss_fn is not None or not isinstance(model, tf.Module):  # a fresh loss_fn per call would retrace
            return Steps(self, lambda: model, config, loss_fn, labels)
        key = (id(model), config.norm, config.eps, config.step_size, config.targeted, labels)
        steps = _COMPILED.get(key)
        if steps is None:
            steps = Steps(self, weakref.ref(model), config, None, labels)  # a graph must not keep its model alive
            steps.step = tf.function(steps.step, reduce_retracing=True)
            steps.score = tf.function(steps.score, reduce_retracing=True)
            _COMPILED[key] = steps
            weakref.finalize(model, _COMPILED.pop, key, None)
        return steps

    def unchanged(self, x0: tf.Tensor, x: Any) -> tf.Tensor:
        return tf.identity(x0)

    def finish(self, x_adv: tf.Tensor, x: Any) -> tf.Tensor:
        return tf.stop_gradient(x_adv)


#: compiled :class:`~harness.attacks.Steps` per (model id, settings); an entry is dropped when its model is collected
_COMPILED: dict[tuple[Any, ...], Steps] = {}

OPS = TFAttackOps()


def fgsm(model: Any, x: Any, y: Any, eps: float | None = None, norm: str = "linf", *, targeted: bool = False,
         loss_fn: LossFn | None = None) -> tf.Tensor:
    """One step of size ``eps``: sign of the gradient (linf) or the normalised gradient (l2, FGM).

    ``targeted``: ``y`` are target labels and the step descends their loss.
    """
    config = AttackConfig.for_attack("fgsm", eps=eps, norm=norm, mode="targeted" if targeted else "true-label")
    return run(OPS, model, x, y, config, None, loss_fn, keep_best=False)


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
    return run(OPS, model, x, y, config, generator, loss_fn, keep_best=keep_best)


def bim(model: Any, x: Any, y: Any, eps: float | None = None, step_size: float | None = None, steps: int = 10,
        norm: str = "linf", *, targeted: bool = False, loss_fn: LossFn | None = None,
        keep_best: bool = True) -> tf.Tensor:
    """Basic Iterative Method: :func:`pgd` from the clean image, no random start, one run."""
    return pgd(model, x, y, eps, step_size, steps, norm, random_start=False, restarts=1, loss_fn=loss_fn,
               targeted=targeted, keep_best=keep_best)


class Attack(DriverAttack):
    """Base class: ``attack(model, x, y=None, target=None) -> x_adv`` per :class:`AttackConfig`.

    Subclasses take their parameters by keyword; names and defaults are in
    :data:`harness.attacks.ATTACK_PARAMS` (one table for both frameworks), and an unknown one is an error.
    """

    ops = OPS


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
        x0 = checked_images(OPS, source, x)
        labels = mode_labels(self.name, self.mode, y, None, OPS.convert_labels,
                             lambda: predicted_labels(OPS, source, x0))
        if labels.shape.rank != 1 or labels.shape[0] != x0.shape[0]:
            raise UsageError(f"got {labels.shape[0] if labels.shape.rank else 0} labels for {x0.shape[0]} images")
        if x0.shape[0] == 0:
            return x0
        adversarial = self._wrapper(source).perturb_on_batch({"image": x0, "label": tf.cast(labels, tf.int64)})
        return tf.clip_by_value(tf.convert_to_tensor(adversarial["image"], tf.float32), 0.0, 1.0)

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in self.knobs.items())
        return f"NSLPerturb({fields}, mode={self.mode!r})"
