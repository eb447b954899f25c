"""The FGSM / BIM / PGD loop, written once for every framework over an :class:`AttackOps` adapter.

The driver owns the maths (step, projection, random start in the eps ball), the
restarts and the per-example worst-case bookkeeping. A framework package supplies
an :class:`AttackOps` object holding only framework calls: tensor conversion,
the model's forward pass and input gradient, random draws, and elementwise
primitives. Maths here uses the adapter's methods plus ``+ - * / ** < > == & | ~``
on its tensors, so torch and TensorFlow run the same ops in the same order.

Every result lies inside the eps ball around ``x`` and inside [0, 1] (projection
then clipping, both of which can only shrink the perturbation).
"""

from __future__ import annotations

import math
from typing import Any, Callable, ContextManager, Protocol

from ..errors import UsageError
from .config import AttackBase, AttackConfig, mode_labels

#: loss_fn(...) -> per-example losses; the argument order is the framework's (see its attacks module)
LossFn = Callable[[Any, Any], Any]


class AttackOps(Protocol):
    """Framework calls the driver needs; tensors are the framework's own."""

    def images(self, model: Any, x: Any) -> Any:
        """``x`` as float32 on the model's device; UsageError unless a float image tensor."""

    def labels(self, y: Any, like: Any) -> Any:
        """``y`` as a tensor next to ``like``, cut from any gradient."""

    def convert_labels(self, y: Any) -> Any:
        """User-given labels (any array-like) as a tensor (for :func:`mode_labels`)."""

    def size(self, t: Any) -> int:
        """Number of elements."""

    def rank(self, t: Any) -> int:
        """Number of dimensions."""

    def length(self, t: Any) -> int:
        """Size of the first dimension."""

    def numel_per_example(self, t: Any) -> int:
        """Elements per example (all dimensions but the first)."""

    def min_max(self, t: Any) -> tuple[float, float]:
        """Smallest and largest value, as Python floats."""

    def is_labels(self, y: Any) -> bool:
        """True for a vector of integer class labels (False for soft targets)."""

    def inference(self, model: Any, enabled: bool) -> ContextManager[None]:
        """The block runs the model in inference mode (when ``enabled``) and restores it after."""

    def no_grad(self) -> ContextManager[None]:
        """The block records no gradients."""

    def logits(self, model: Any, x: Any) -> Any:
        """The model's outputs on ``x`` (inference mode)."""

    def losses(self, logits: Any, y: Any, loss_fn: LossFn | None) -> Any:
        """Per-example losses (cross-entropy when ``loss_fn`` is None), shape (N,)."""

    def losses_and_gradient(self, model: Any, x: Any, y: Any, loss_fn: LossFn | None) -> tuple[Any, Any, Any]:
        """(logits, per-example losses, gradient of their sum wrt ``x``), logits and losses cut from the graph."""

    def hits(self, logits: Any, y: Any) -> Any:
        """Per example: is the top logit the label ``y``?"""

    def argmax(self, logits: Any) -> Any:
        """Top class per example."""

    def sign(self, t: Any) -> Any:
        ...

    def clip(self, t: Any, low: float, high: float) -> Any:
        ...

    def maximum(self, t: Any, value: float) -> Any:
        ...

    def minimum(self, t: Any, value: float) -> Any:
        ...

    def example_norm(self, t: Any) -> Any:
        """L2 norm of each example, shaped to broadcast against ``t``."""

    def per_example(self, v: Any, like: Any) -> Any:
        """A vector of one value per example, shaped to broadcast against ``like``."""

    def where(self, condition: Any, a: Any, b: Any) -> Any:
        """``a`` where a per-example ``condition`` holds, else ``b`` (the condition broadcast over rows)."""

    def full(self, like: Any, value: float) -> Any:
        """A float vector of ``value``, one per example of ``like``."""

    def falses(self, like: Any) -> Any:
        """A bool vector of False, one per example of ``like``."""

    def generator(self, seed: int | None) -> Any:
        """The framework's generator seeded with ``seed`` (None: None)."""

    def uniform(self, rng: Any, like: Any, rows: bool = False) -> Any:
        """U[0, 1) shaped like ``like`` (``rows``: one per example), drawn from ``rng`` (None: the global one)."""

    def normal(self, rng: Any, like: Any) -> Any:
        """N(0, 1) shaped like ``like``, drawn from ``rng`` (None: the global one)."""

    def move_like(self, t: Any, like: Any) -> Any:
        """``t`` on ``like``'s device."""

    def steps(self, model: Any, config: AttackConfig, loss_fn: LossFn | None, labels: bool) -> "Steps":
        """The :class:`Steps` to run (a framework may compile and cache them)."""

    def unchanged(self, x0: Any, x: Any) -> Any:
        """The result when there is nothing to do (eps 0, no images): a copy of ``x0`` where ``x`` lives."""

    def finish(self, x_adv: Any, x: Any) -> Any:
        """The result: ``x_adv`` cut from any graph, where ``x`` lives."""


# --------------------------------------------------------------------------- the maths, once


def take_step(ops: AttackOps, x: Any, grad: Any, step_size: float, norm: str) -> Any:
    """One ascent step along ``grad``: its sign (linf) or its per-example unit direction (l2)."""
    if norm == "linf":
        return x + step_size * ops.sign(grad)
    return x + step_size * grad / ops.maximum(ops.example_norm(grad), 1e-12)


def project(ops: AttackOps, x_adv: Any, x0: Any, eps: float, norm: str) -> Any:
    """Project into the eps ball around ``x0``, then clip to [0, 1] (which only shrinks the step)."""
    delta = x_adv - x0
    if norm == "linf":
        delta = ops.clip(delta, -eps, eps)
    else:
        delta = delta * ops.minimum(eps / ops.maximum(ops.example_norm(delta), 1e-12), 1.0)
    return ops.clip(x0 + delta, 0.0, 1.0)


def random_delta(ops: AttackOps, x0: Any, eps: float, norm: str, rng: Any) -> Any:
    """A uniform random point of the eps ball (drawn where the generator lives, moved next to ``x0``)."""
    if norm == "linf":
        delta = (2 * ops.uniform(rng, x0) - 1) * eps
    else:
        direction = ops.normal(rng, x0)
        direction = direction / ops.maximum(ops.example_norm(direction), 1e-12)
        radius = ops.uniform(rng, x0, rows=True) ** (1.0 / ops.numel_per_example(x0))
        delta = direction * ops.per_example(eps * radius, direction)
    return ops.move_like(delta, x0)


def fooled(ops: AttackOps, logits: Any, y: Any, targeted: bool, labels: bool) -> Any:
    """Per example: does the model miss ``y`` (hit it, when targeted)? Always False for soft targets."""
    if not labels:
        return ops.falses(logits)
    hit = ops.hits(logits, y)
    return hit if targeted else ~hit


class Steps:
    """One attack iteration and the scoring of a candidate, for one model and one configuration.

    ``step(x_adv, x0, y) -> (next iterate, losses of x_adv, fooled at x_adv)``: the gradient of the
    summed losses, the signed or normalised step, the projection. ``score(x, y) -> (losses, fooled)``.
    ``model_ref()`` returns the model (a weak reference keeps a compiled graph from holding it alive).
    """

    def __init__(self, ops: AttackOps, model_ref: Callable[[], Any], config: AttackConfig,
                 loss_fn: LossFn | None, labels: bool):
        self.sign = sign = -1.0 if config.targeted else 1.0
        norm, eps, step_size, targeted = config.norm, config.eps, config.step_size, config.targeted

        def step(x_adv: Any, x0: Any, y: Any) -> tuple[Any, Any, Any]:
            logits, losses, grad = ops.losses_and_gradient(model_ref(), x_adv, y, loss_fn)
            x_next = project(ops, take_step(ops, x_adv, sign * grad, step_size, norm), x0, eps, norm)
            return x_next, losses, fooled(ops, logits, y, targeted, labels)

        def score(x: Any, y: Any) -> tuple[Any, Any]:
            with ops.no_grad():
                logits = ops.logits(model_ref(), x)
                return ops.losses(logits, y, loss_fn), fooled(ops, logits, y, targeted, labels)

        self.step = step
        self.score = score


class Best:
    """Worst case per example: a candidate that fools the model beats one that does not,
    otherwise the higher attack score (loss, or minus the loss when targeted) wins."""

    def __init__(self, ops: AttackOps, x0: Any):
        self.ops = ops
        self.x = x0
        self.score = ops.full(x0, -math.inf)
        self.fooled = ops.falses(x0)

    def update(self, x: Any, score: Any, fooled: Any) -> None:
        better = (fooled & ~self.fooled) | ((fooled == self.fooled) & (score > self.score))
        self.x = self.ops.where(better, x, self.x)
        self.score = self.ops.where(better, score, self.score)
        self.fooled = self.fooled | fooled


# --------------------------------------------------------------------------- the loop


def checked_images(ops: AttackOps, model: Any, x: Any) -> Any:
    """``x`` as the framework's float32 images, checked to lie in [0, 1]."""
    x0 = ops.images(model, x)
    if ops.size(x0):
        low, high = ops.min_max(x0)
        if low < 0.0 or high > 1.0:
            raise UsageError(
                f"attack inputs must be images in [0, 1], got values in [{low:.3g}, {high:.3g}]",
                hint="normalization belongs inside the model; attack budgets are in pixel space",
            )
    return x0


def _prepare(ops: AttackOps, model: Any, x: Any, y: Any) -> tuple[Any, Any]:
    x0 = checked_images(ops, model, x)
    if y is None:
        raise UsageError("the attack needs labels y (or loss_fn targets)")
    y = ops.labels(y, x0)
    if ops.rank(y) == 0 or ops.length(y) != ops.length(x0):
        raise UsageError(f"got {ops.length(y) if ops.rank(y) else 0} labels for {ops.length(x0)} images")
    return x0, y


def run(ops: AttackOps, model: Any, x: Any, y: Any, config: AttackConfig, rng: Any = None,
        loss_fn: LossFn | None = None, *, keep_best: bool = True, use_eval_mode: bool = True) -> Any:
    """PGD per ``config`` (FGSM and BIM are special cases): restarts, steps, worst case per example.

    ``keep_best`` False: each run's last iterate (still choosing among restarts). ``rng`` drives the
    random start (None: the framework's global generator).
    """
    x0, y = _prepare(ops, model, x, y)
    if config.eps == 0 or ops.length(x0) == 0:
        return ops.unchanged(x0, x)
    steps = ops.steps(model, config, loss_fn, ops.is_labels(y))
    select = keep_best or config.restarts > 1
    best = Best(ops, x0) if select else None
    x_adv = x0
    with ops.inference(model, use_eval_mode):
        for _ in range(config.restarts):
            x_adv = x0
            if config.random_start:
                x_adv = ops.clip(x0 + random_delta(ops, x0, config.eps, config.norm, rng), 0.0, 1.0)
            for _ in range(config.steps):
                x_next, losses, is_fooled = steps.step(x_adv, x0, y)
                if keep_best:
                    best.update(x_adv, steps.sign * losses, is_fooled)
                x_adv = x_next
            if select:
                losses, is_fooled = steps.score(x_adv, y)
                best.update(x_adv, steps.sign * losses, is_fooled)
    x_adv = best.x if select else x_adv
    # the candidates are all in the ball already; one more projection guards against rounding
    return ops.finish(project(ops, x_adv, x0, config.eps, config.norm), x)


def predicted_labels(ops: AttackOps, model: Any, x: Any) -> Any:
    """The model's own top class for images ``x`` (inference mode, no gradients)."""
    with ops.inference(model, True), ops.no_grad():
        return ops.argmax(ops.logits(model, checked_images(ops, model, x)))


class DriverAttack(AttackBase):
    """``attack(model, x, y=None, target=None) -> x_adv`` per :class:`AttackConfig`, over ``ops``.

    A framework subclasses it with its :class:`AttackOps` as ``ops``; :func:`attack_classes`
    derives FGSM, BIM and PGD from that subclass. Parameters are checked against
    :data:`harness.attacks.ATTACK_PARAMS`.
    """

    ops: AttackOps

    def labels(self, model: Any, x: Any, y: Any = None, target: Any = None) -> Any:
        """The labels the attack moves away from (or towards, when targeted).

        Mode ``predicted`` uses the model's own predictions and ignores ``y``.
        """
        return mode_labels(self.name, self.config.mode, y, target, self.ops.convert_labels,
                           lambda: predicted_labels(self.ops, model, x))

    def __call__(self, model: Any, x: Any, y: Any = None, target: Any = None) -> Any:
        labels = self.labels(model, x, y, target)
        return run(self.ops, model, x, labels, self.config, self.ops.generator(self.config.seed),
                   keep_best=self.keep_best)

