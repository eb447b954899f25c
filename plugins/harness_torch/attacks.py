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

The loop is :func:`harness.attacks.run`, shared with TensorFlow; this module holds
its torch calls (:class:`TorchAttackOps`).
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Callable, Iterator

import torch
import torch.nn.functional as F

from harness.attacks import AttackConfig, DriverAttack, Steps, attack_classes, run
from harness.errors import UsageError

from .device import model_device

#: loss_fn(logits, y) -> per-example losses, shape (N,) (a scalar is accepted too)
LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

__all__ = ["BIM", "FGSM", "PGD", "Attack", "TorchAttackOps", "bim", "eval_mode", "fgsm", "pgd"]


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


class TorchAttackOps:
    """:class:`harness.attacks.AttackOps` over torch tensors (N,C,H,W); random draws happen on the
    generator's device (the default generator of the images' device when None) and move to the images'."""

    def images(self, model: torch.nn.Module, x: Any) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or not x.is_floating_point():
            raise UsageError("attacks take float image tensors in [0, 1]")
        return x.detach().to(device=model_device(model), dtype=torch.float32)

    def labels(self, y: Any, like: torch.Tensor) -> torch.Tensor:
        return torch.as_tensor(y).detach().to(like.device)

    def convert_labels(self, y: Any) -> torch.Tensor:
        return torch.as_tensor(y)

    def size(self, t: torch.Tensor) -> int:
        return t.numel()

    def rank(self, t: torch.Tensor) -> int:
        return t.dim()

    def length(self, t: torch.Tensor) -> int:
        return t.shape[0]

    def numel_per_example(self, t: torch.Tensor) -> int:
        return t[0].numel()

    def min_max(self, t: torch.Tensor) -> tuple[float, float]:
        return t.min().item(), t.max().item()

    def is_labels(self, y: torch.Tensor) -> bool:
        return y.dim() == 1 and not y.is_floating_point()

    def inference(self, model: torch.nn.Module, enabled: bool):
        return eval_mode(model, enabled)

    def no_grad(self):
        return torch.no_grad()

    def logits(self, model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
        return model(x)

    def losses(self, logits: torch.Tensor, y: torch.Tensor, loss_fn: LossFn | None) -> torch.Tensor:
        if loss_fn is None:
            return F.cross_entropy(logits, y, reduction="none")
        losses = loss_fn(logits, y)
        return losses.expand(logits.shape[0]) if losses.dim() == 0 else losses.reshape(logits.shape[0])

    def losses_and_gradient(self, model, x, y, loss_fn):
        x = x.detach().requires_grad_(True)  # autograd.grad: parameters' .grad stay untouched
        logits = model(x)
        losses = self.losses(logits, y, loss_fn)
        (grad,) = torch.autograd.grad(losses.sum(), x)
        return logits.detach(), losses.detach(), grad

    def hits(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return logits.argmax(dim=1) == y

    def argmax(self, logits: torch.Tensor) -> torch.Tensor:
        return logits.argmax(dim=1)

    def sign(self, t: torch.Tensor) -> torch.Tensor:
        return t.sign()

    def clip(self, t: torch.Tensor, low: float, high: float) -> torch.Tensor:
        return t.clamp(low, high)

    def maximum(self, t: torch.Tensor, value: float) -> torch.Tensor:
        return t.clamp_min(value)

    def minimum(self, t: torch.Tensor, value: float) -> torch.Tensor:
        return t.clamp(max=value)

    def example_norm(self, t: torch.Tensor) -> torch.Tensor:
        return t.flatten(1).norm(dim=1).view(-1, *([1] * (t.dim() - 1)))

    def per_example(self, v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        return v.view(-1, *([1] * (like.dim() - 1)))

    def where(self, condition: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.where(condition.view(-1, *([1] * (a.dim() - 1))), a, b)

    def full(self, like: torch.Tensor, value: float) -> torch.Tensor:
        return torch.full((like.shape[0],), value, device=like.device)

    def falses(self, like: torch.Tensor) -> torch.Tensor:
        return torch.zeros(like.shape[0], dtype=torch.bool, device=like.device)

    def generator(self, seed: int | None) -> torch.Generator | None:
        return torch.Generator().manual_seed(seed) if seed is not None else None

    def uniform(self, rng: torch.Generator | None, like: torch.Tensor, rows: bool = False) -> torch.Tensor:
        shape = (like.shape[0],) if rows else like.shape
        return torch.rand(shape, generator=rng, device=rng.device if rng is not None else like.device)

    def normal(self, rng: torch.Generator | None, like: torch.Tensor) -> torch.Tensor:
        return torch.randn(like.shape, generator=rng, device=rng.device if rng is not None else like.device)

    def move_like(self, t: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        return t.to(like.device)

    def steps(self, model, config: AttackConfig, loss_fn: LossFn | None, labels: bool) -> Steps:
        return Steps(self, lambda: model, config, loss_fn, labels)

    def unchanged(self, x0: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return x0.clone().to(x.device)

    def finish(self, x_adv: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return x_adv.detach().to(x.device)


OPS = TorchAttackOps()


def fgsm(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float | None = None,
         norm: str = "linf", *, targeted: bool = False, loss_fn: LossFn | None = None,
         use_eval_mode: bool = True) -> torch.Tensor:
    """One step of size ``eps``: sign of the gradient (linf) or the normalised gradient (l2, FGM).

    ``targeted``: ``y`` are target labels and the step descends their loss.
    """
    config = AttackConfig.for_attack("fgsm", eps=eps, norm=norm, mode="targeted" if targeted else "true-label")
    return run(OPS, model, x, y, config, None, loss_fn, keep_best=False, use_eval_mode=use_eval_mode)


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
    return run(OPS, model, x, y, config, generator, loss_fn, keep_best=keep_best, use_eval_mode=use_eval_mode)


def bim(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float | None = None,
        step_size: float | None = None, steps: int = 10, norm: str = "linf", *, targeted: bool = False,
        loss_fn: LossFn | None = None, keep_best: bool = True, use_eval_mode: bool = True) -> torch.Tensor:
    """Basic Iterative Method: :func:`pgd` from the clean image, no random start, one run."""
    return pgd(model, x, y, eps, step_size, steps, norm, random_start=False, restarts=1, loss_fn=loss_fn,
               targeted=targeted, keep_best=keep_best, use_eval_mode=use_eval_mode)


class Attack(DriverAttack):
    """Base class: ``attack(model, x, y=None, target=None) -> x_adv`` per :class:`AttackConfig`.

    Subclasses take their parameters by keyword; names and defaults are in
    :data:`harness.attacks.ATTACK_PARAMS` (one table for both frameworks), and an unknown one is an error.
    """

    ops = OPS


FGSM, BIM, PGD = attack_classes(Attack, __name__)
