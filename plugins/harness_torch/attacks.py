"""White-box attacks in pixel space [0, 1]: FGSM, BIM and PGD, in L-inf and L2.

Two layers:

- functions for trainers (model hardening, PGD adversarial training, TRADES):
  :func:`fgsm`, :func:`bim`, :func:`pgd`; ``loss_fn(logits, y)`` replaces the
  cross-entropy (e.g. a per-example KL to the clean prediction for TRADES);
- classes for evaluation and the registry: :class:`FGSM`, :class:`BIM`,
  :class:`PGD`, called as ``attack(model, x, y=None, target=None)``, with the
  label ``mode`` (true-label, predicted, targeted) and ``seed`` of
  :class:`harness.attacks.AttackConfig`.

Every result lies inside the eps ball around ``x`` and inside [0, 1] (projection
then clamping, both of which can only shrink the perturbation). The model runs
in eval mode during the attack and every module gets its own mode back after;
gradients are taken with ``torch.autograd.grad`` so parameters' ``.grad`` stay
untouched. Inputs move to the model's device; the result comes back on ``x``'s.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Callable, Iterator

import torch
import torch.nn.functional as F

from harness.attacks import AttackBase, AttackConfig, attack_classes, mode_labels
from harness.errors import UsageError

from .device import model_device

#: loss_fn(logits, y) -> per-example losses, shape (N,) (a scalar is accepted too)
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

__all__ = ["BIM", "FGSM", "PGD", "Attack", "bim", "eval_mode", "fgsm", "pgd"]


@contextmanager
def eval_mode(model: torch.nn.Module, enabled: bool = True) -> Iterator[None]:
    """Run the block with ``model`` in eval mode, then give every module its own mode back."""
    modes = [(module, module.training) for module in model.modules()]
    if enabled:
        model.eval()
    try:
        yield
    finally:
        for module, training in modes:
            module.training = training


def _images(model: torch.nn.Module, x: Any) -> torch.Tensor:
    """``x`` as float32 on the model's device, checked to be images in [0, 1]."""
    if not isinstance(x, torch.Tensor) or not x.is_floating_point():
        raise UsageError("attacks take float image tensors in [0, 1]")
    x0 = x.detach().to(device=model_device(model), dtype=torch.float32)
    if x0.numel() and (x0.min().item() < 0.0 or x0.max().item() > 1.0):
        raise UsageError(
            f"attack inputs must be images in [0, 1], got values in [{x0.min().item():.3g}, {x0.max().item():.3g}]",
            hint="normalization belongs inside the model; attack budgets are in pixel space",
        )
    return x0


def _prepare(model: torch.nn.Module, x: torch.Tensor, y: Any) -> tuple[torch.Tensor, torch.Tensor]:
    x0 = _images(model, x)
    if y is None:
        raise UsageError("the attack needs labels y (or loss_fn targets)")
    y = torch.as_tensor(y).detach().to(x0.device)
    if y.dim() == 0 or y.shape[0] != x0.shape[0]:
        raise UsageError(f"got {y.shape[0] if y.dim() else 0} labels for {x0.shape[0]} images")
    return x0, y


def _losses(logits: torch.Tensor, y: torch.Tensor, loss_fn: LossFn | None) -> torch.Tensor:
    if loss_fn is None:
        return F.cross_entropy(logits, y, reduction="none")
    losses = loss_fn(logits, y)
    return losses.expand(logits.shape[0]) if losses.dim() == 0 else losses.reshape(logits.shape[0])


def _per_example_norm(t: torch.Tensor) -> torch.Tensor:
    """L2 norm of each example, shaped to broadcast against ``t``."""
    return t.flatten(1).norm(dim=1).view(-1, *([1] * (t.dim() - 1)))


def _step(x: torch.Tensor, grad: torch.Tensor, step_size: float, norm: str) -> torch.Tensor:
    if norm == "linf":
        return x + step_size * grad.sign()
    return x + step_size * grad / _per_example_norm(grad).clamp_min(1e-12)


def _project(x_adv: torch.Tensor, x0: torch.Tensor, eps: float, norm: str) -> torch.Tensor:
    """Project into the eps ball around ``x0``, then clamp to [0, 1] (which only shrinks the step)."""
    delta = x_adv - x0
    if norm == "linf":
        delta = delta.clamp(-eps, eps)
    else:
        delta = delta * (eps / _per_example_norm(delta).clamp_min(1e-12)).clamp(max=1.0)
    return (x0 + delta).clamp(0.0, 1.0)


def _random_delta(x0: torch.Tensor, eps: float, norm: str, generator: torch.Generator | None) -> torch.Tensor:
    """A uniform random point of the eps ball (drawn on the generator's device)."""
    device = generator.device if generator is not None else x0.device
    if norm == "linf":
        delta = (2 * torch.rand(x0.shape, generator=generator, device=device) - 1) * eps
    else:
        direction = torch.randn(x0.shape, generator=generator, device=device)
        direction = direction / _per_example_norm(direction).clamp_min(1e-12)
        radius = torch.rand(x0.shape[0], generator=generator, device=device) ** (1.0 / x0[0].numel())
        delta = direction * (eps * radius).view(-1, *([1] * (x0.dim() - 1)))
    return delta.to(x0.device)


class _Best:
    """Worst case per example: a candidate that fools the model beats one that does not,
    otherwise the higher attack score (loss, or minus the loss when targeted) wins."""

    def __init__(self, x0: torch.Tensor):
        self.x = x0.clone()
        self.score = torch.full((x0.shape[0],), -torch.inf, device=x0.device)
        self.fooled = torch.zeros(x0.shape[0], dtype=torch.bool, device=x0.device)

    def update(self, x: torch.Tensor, score: torch.Tensor, fooled: torch.Tensor) -> None:
        better = (fooled & ~self.fooled) | ((fooled == self.fooled) & (score > self.score))
        self.x[better] = x[better]
        self.score = torch.where(better, score, self.score)
        self.fooled |= fooled


def _run(model, x, y, config: AttackConfig, generator, loss_fn, keep_best, use_eval_mode) -> torch.Tensor:
    """Shared PGD loop (FGSM and BIM are special cases)."""
    x0, y = _prepare(model, x, y)
    if config.eps == 0 or x0.shape[0] == 0:
        return x0.clone().to(x.device)
    sign = -1.0 if config.targeted else 1.0
    is_labels = y.dim() == 1 and not y.is_floating_point()

    def fooled(logits: torch.Tensor) -> torch.Tensor:
        if not is_labels:
            return torch.zeros(logits.shape[0], dtype=torch.bool, device=logits.device)
        hit = logits.argmax(dim=1) == y
        return hit if config.targeted else ~hit

    select = keep_best or config.restarts > 1
    best = _Best(x0) if select else None
    x_adv = x0
    with eval_mode(model, use_eval_mode):
        for _ in range(config.restarts):
            x_adv = x0.clone()
            if config.random_start:
                x_adv = (x0 + _random_delta(x0, config.eps, config.norm, generator)).clamp(0.0, 1.0)
            for _ in range(config.steps):
                x_adv.requires_grad_(True)
                logits = model(x_adv)
                losses = _losses(logits, y, loss_fn)
                (grad,) = torch.autograd.grad(losses.sum(), x_adv)
                x_adv = x_adv.detach()
                if keep_best:
                    best.update(x_adv, sign * losses.detach(), fooled(logits.detach()))
                x_adv = _project(_step(x_adv, sign * grad, config.step_size, config.norm), x0, config.eps,
                                 config.norm)
            if select:
                with torch.no_grad():
                    logits = model(x_adv)
                    best.update(x_adv, sign * _losses(logits, y, loss_fn), fooled(logits))
    x_adv = best.x if select else x_adv
    # the candidates are all in the ball already; one more projection guards against rounding
    return _project(x_adv, x0, config.eps, config.norm).detach().to(x.device)


def fgsm(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float | None = None,
         norm: str = "linf", *, targeted: bool = False, loss_fn: LossFn | None = None,
         use_eval_mode: bool = True) -> torch.Tensor:
    """One step of size ``eps``: sign of the gradient (linf) or the normalised gradient (l2, FGM).

    ``targeted``: ``y`` are target labels and the step descends their loss.
    """
    config = AttackConfig.for_attack("fgsm", eps=eps, norm=norm, mode="targeted" if targeted else "true-label")
    return _run(model, x, y, config, None, loss_fn, keep_best=False, use_eval_mode=use_eval_mode)


def pgd(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float | None = None,
        step_size: float | None = None, steps: int = 10, norm: str = "linf", random_start: bool = True,
        restarts: int = 1, generator: torch.Generator | None = None, loss_fn: LossFn | None = None, *,
        targeted: bool = False, keep_best: bool = True, use_eval_mode: bool = True) -> torch.Tensor:
    """Projected gradient descent; returns the worst case over iterates and restarts per example.

    An example that any candidate misclassifies (with integer labels ``y``) gets a
    misclassified candidate; otherwise the highest-loss one. ``keep_best=False``
    returns each run's last iterate (still choosing among restarts); with one
    restart that saves a forward pass.
    ``step_size`` None: ``2.5 * eps / steps``. ``generator`` drives the random start.
    """
    config = AttackConfig(eps=eps, step_size=step_size, steps=steps, restarts=restarts, norm=norm,
                          random_start=random_start, mode="targeted" if targeted else "true-label", seed=None)
    return _run(model, x, y, config, generator, loss_fn, keep_best, use_eval_mode)


def bim(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float | None = None,
        step_size: float | None = None, steps: int = 10, norm: str = "linf", *, targeted: bool = False,
        loss_fn: LossFn | None = None, keep_best: bool = True, use_eval_mode: bool = True) -> torch.Tensor:
    """Basic Iterative Method: :func:`pgd` from the clean image, no random start, one run."""
    return pgd(model, x, y, eps, step_size, steps, norm, random_start=False, restarts=1, loss_fn=loss_fn,
               targeted=targeted, keep_best=keep_best, use_eval_mode=use_eval_mode)


class Attack(AttackBase):
    """Base class: ``attack(model, x, y=None, target=None) -> x_adv`` per :class:`AttackConfig`.

    Subclasses take their parameters by keyword; names and defaults are in
    :data:`harness.attacks.ATTACK_PARAMS` (one table for both frameworks), and an unknown one is an error.
    """

    def labels(self, model: torch.nn.Module, x: torch.Tensor, y: Any = None, target: Any = None) -> torch.Tensor:
        """The labels the attack moves away from (or towards, when targeted).

        Mode ``predicted`` uses the model's own predictions and ignores ``y``.
        """
        def predict() -> torch.Tensor:
            with eval_mode(model), torch.no_grad():
                return model(_images(model, x)).argmax(dim=1)

        return mode_labels(self.name, self.config.mode, y, target, torch.as_tensor, predict)

    def __call__(self, model: torch.nn.Module, x: torch.Tensor, y: Any = None, target: Any = None) -> torch.Tensor:
        labels = self.labels(model, x, y, target)
        generator = torch.Generator().manual_seed(self.config.seed) if self.config.seed is not None else None
        return _run(model, x, labels, self.config, generator, None, keep_best=self.keep_best, use_eval_mode=True)


FGSM, BIM, PGD = attack_classes(Attack, __name__)
