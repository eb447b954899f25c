"""AutoAttack's members on torch tensors: APGD-CE, APGD-T (Croce & Hein 2020) and Square (Andriushchenko et al. 2020).

Native, so the model is queried on its own device without numpy round trips (ART's Square made
``harness evaluate --robust`` take > 15 minutes on 240 images). Each is an attack plugin:
``attack(model, x, y=None, target=None)`` on float32 N,C,H,W in [0, 1], ``y`` None meaning the
model's own labels; examples the model already gets wrong are returned unchanged (as in the
reference). Per example the result is an image that fools the model when one was found, else the
highest-loss iterate (APGD) or the lowest-margin candidate (Square). Parameters and schedules are
:mod:`harness.attacks.autoattack`; each rule below names its place in the authors' reference
implementation (github.com/fra31/auto-attack; torchattacks 3.5.1 ports it: ``apgd.py``, ``apgdt.py``,
``square.py``). Random draws come from a ``torch.Generator`` seeded with ``seed`` on the CPU (the
same numbers on every device) and move to the model's device.
"""

from __future__ import annotations

from typing import Any, Callable, ClassVar

import torch
import torch.nn.functional as F

from harness.attacks import checked_images
from harness.attacks.autoattack import (AUTOATTACK_DESCRIPTIONS, AUTOATTACK_PARAMS, MOMENTUM, KnobConfig,
                                        apgd_schedule, square_p, square_side)
from harness.errors import UsageError

from .attacks import OPS, eval_mode

__all__ = ["APGDCE", "APGDT", "Square", "apgd", "dlr_loss", "dlr_targeted_loss", "square_linf"]

#: loss(logits, y) -> per-example losses to maximise
Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _sorted_logit(sorted_logits: torch.Tensor, k: int) -> torch.Tensor:
    """The k-th largest logit (1-based), the smallest one for models with fewer than k classes."""
    return sorted_logits[:, -min(k, sorted_logits.shape[1])]


def dlr_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Difference of Logits Ratio, untargeted (Croce & Hein 2020, eq. 5; reference ``dlr_loss``):
    -(z_y - max_{i != y} z_i) / (z_pi1 - z_pi3), shift- and scale-invariant in the logits."""
    sorted_logits, order = logits.sort(dim=1)
    top_is_y = (order[:, -1] == y).float()
    z_y = logits.gather(1, y[:, None])[:, 0]
    best_other = sorted_logits[:, -2] * top_is_y + sorted_logits[:, -1] * (1 - top_is_y)
    return -(z_y - best_other) / (sorted_logits[:, -1] - _sorted_logit(sorted_logits, 3) + 1e-12)


def dlr_targeted_loss(logits: torch.Tensor, y: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Targeted DLR (Croce & Hein 2020, eq. 6; reference ``dlr_loss_targeted``):
    -(z_y - z_t) / (z_pi1 - (z_pi3 + z_pi4) / 2)."""
    sorted_logits = logits.sort(dim=1)[0]
    z_y, z_t = logits.gather(1, y[:, None])[:, 0], logits.gather(1, target[:, None])[:, 0]
    third, fourth = _sorted_logit(sorted_logits, 3), _sorted_logit(sorted_logits, 4)
    return -(z_y - z_t) / (sorted_logits[:, -1] - 0.5 * third - 0.5 * fourth + 1e-12)


def _rows(v: torch.Tensor) -> torch.Tensor:
    return v.view(-1, 1, 1, 1)


def _l2(t: torch.Tensor) -> torch.Tensor:
    return _rows(t.flatten(1).norm(dim=1))


def _project(x_adv: torch.Tensor, x: torch.Tensor, eps: float, norm: str) -> torch.Tensor:
    """Into the eps ball around ``x`` (reference: min/max for linf, rescaling for l2), then into [0, 1]."""
    if norm == "linf":
        return torch.min(torch.max(x_adv, x - eps), x + eps).clamp(0.0, 1.0)
    delta = x_adv - x
    size = _l2(delta)
    return (x + delta / (size + 1e-12) * torch.clamp(size, max=eps)).clamp(0.0, 1.0)


def _loss_and_grad(model: torch.nn.Module, x: torch.Tensor, loss: Loss, y: torch.Tensor
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    x = x.detach().requires_grad_(True)
    logits = model(x)
    losses = loss(logits, y)
    (grad,) = torch.autograd.grad(losses.sum(), x)
    return logits.detach(), losses.detach(), grad.detach()


def apgd(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, loss: Loss, eps: float, norm: str,
         n_iter: int, rho: float, generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
    """One APGD run on every example of ``x`` (reference ``attack_single_run``): (per example the image
    to keep, fooled). Kept image: the last iterate that fooled the model, else the highest-loss one."""
    first, decrement, shortest = apgd_schedule(n_iter)
    rows = len(x)
    # random start on the ball's surface (reference: t / max|t| for linf, t / ||t|| for l2)
    if norm == "linf":
        t = (2 * torch.rand(x.shape, generator=generator) - 1).to(x.device)
        x_adv = x + eps * t / t.flatten(1).abs().amax(dim=1).view(-1, 1, 1, 1)
    else:
        t = torch.randn(x.shape, generator=generator).to(x.device)
        x_adv = x + eps * t / (_l2(t) + 1e-12)
    x_adv = x_adv.clamp(0.0, 1.0)
    logits, losses, grad = _loss_and_grad(model, x_adv, loss, y)
    fooled = logits.argmax(dim=1) != y
    x_fooled = x_adv.clone()
    x_best, grad_best, loss_best = x_adv.clone(), grad.clone(), losses.clone()
    step_size = torch.full((rows, 1, 1, 1), 2.0 * eps, device=x.device)  # eta^(0) = 2 eps (sec. 3.1)
    x_old = x_adv.clone()
    loss_steps = torch.zeros((n_iter, rows), device=x.device)
    interval, since_check = first, 0
    if norm == "linf":  # the ball and [0, 1] at once: the same values as clipping to one, then the other
        low, high = (x - eps).clamp(0.0, 1.0), (x + eps).clamp(0.0, 1.0)

        def project(v: torch.Tensor) -> torch.Tensor:
            return torch.min(torch.max(v, low), high)
    else:
        def project(v: torch.Tensor) -> torch.Tensor:
            return _project(v, x, eps, norm)
    loss_best_last_check = loss_best.clone()
    reduced_last_check = torch.ones(rows, dtype=torch.bool, device=x.device)
    for i in range(n_iter):
        # the step with momentum alpha = 0.75 (0 at the first step: reference ``a = 0.75 if i > 0 else 1.0``)
        a = MOMENTUM if i > 0 else 1.0
        previous_move = x_adv - x_old
        x_old = x_adv
        if norm == "linf":
            z = project(x_adv + step_size * grad.sign())
        else:
            z = project(x_adv + step_size * grad / (_l2(grad) + 1e-12))
        x_adv = project(x_adv + (z - x_adv) * a + previous_move * (1 - a))
        logits, losses, grad = _loss_and_grad(model, x_adv, loss, y)
        now_fooled = logits.argmax(dim=1) != y
        x_fooled = torch.where(_rows(now_fooled), x_adv, x_fooled)
        fooled |= now_fooled
        loss_steps[i] = losses
        better = losses > loss_best
        x_best = torch.where(_rows(better), x_adv, x_best)
        grad_best = torch.where(_rows(better), grad, grad_best)
        loss_best = torch.where(better, losses, loss_best)
        since_check += 1
        if since_check == interval:
            # checkpoint (sec. 3.2, conditions 1 and 2; reference ``check_oscillation``): halve the step where the
            # loss rose in at most rho of the last ``interval`` steps, or where it was not halved last time and the
            # best loss did not improve; restart those from their best point
            rises = sum((loss_steps[i - c] > loss_steps[i - c - 1]).float() for c in range(interval))
            halve = (rises <= interval * rho) | (~reduced_last_check & (loss_best_last_check >= loss_best))
            reduced_last_check, loss_best_last_check = halve.clone(), loss_best.clone()
            if halve.any():
                step_size = torch.where(_rows(halve), step_size / 2.0, step_size)
                x_adv = torch.where(_rows(halve), x_best, x_adv)
                grad = torch.where(_rows(halve), grad_best, grad)
            since_check = 0
            interval = max(interval - decrement, shortest)
    return torch.where(_rows(fooled), x_fooled, x_best), fooled


def _margin(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """z_y - max_{i != y} z_i: negative when the model is fooled (Square's loss, reference ``margin_and_loss``)."""
    z_y = logits.gather(1, y[:, None])[:, 0]
    others = logits.scatter(1, y[:, None], float("-inf"))
    return z_y - others.amax(dim=1)


def square_linf(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, n_queries: int,
                p_init: float, generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
    """One L-inf Square run (Andriushchenko et al. 2020, Alg. 1 with the linf proposal of sec. 3.1; reference
    ``attack_single_run``): (the lowest-margin image per example, fooled). The window's position and colours are
    drawn per example, as in the paper's code (the AutoAttack port draws one position per batch)."""
    rows, channels, height, width = x.shape
    device = x.device

    def signs(*shape: int) -> torch.Tensor:
        return (2 * torch.randint(0, 2, shape, generator=generator) - 1).to(device=device, dtype=x.dtype)

    with torch.no_grad():
        # initialisation: vertical stripes of +-eps (sec. 3.1; reference ``random_choice([n, c, 1, w])``)
        x_best = (x + eps * signs(rows, channels, 1, width)).clamp(0.0, 1.0)
        margin_best = _margin(model(x_best), y)
        line_h = torch.arange(height, device=device).view(1, 1, height, 1)
        line_w = torch.arange(width, device=device).view(1, 1, 1, width)
        # the examples not fooled yet, gathered once per change of that set (not once per query)
        todo = torch.nonzero(margin_best > 0).flatten()
        x_cur, y_cur, best_cur, margin_cur = x[todo], y[todo], x_best[todo], margin_best[todo]
        # the window's two possible values, x +- eps inside [0, 1]: x_best + 2 eps * sign lies beyond the ball
        # (x_best is inside it), so the reference's projection lands exactly there
        low, high = (x_cur - eps).clamp(0.0, 1.0), (x_cur + eps).clamp(0.0, 1.0)
        for i in range(n_queries):
            if len(todo) == 0:
                break
            side = square_side(square_p(i, n_queries, p_init), height, width)
            count = len(todo)
            # top-left corner uniform in [0, size - side) as in the reference (``random_int(0, h - s)``)
            top = (torch.rand(count, generator=generator) * (height - side)).long().to(device).view(-1, 1, 1, 1)
            left = (torch.rand(count, generator=generator) * (width - side)).long().to(device).view(-1, 1, 1, 1)
            window = (line_h >= top) & (line_h < top + side) & (line_w >= left) & (line_w < left + side)
            # the window is set to x +- eps per channel (reference: x_best + 2 eps * sign, then projected)
            candidate = torch.where(window, torch.where(signs(count, channels, 1, 1) > 0, high, low), best_cur)
            margin = _margin(model(candidate), y_cur)
            better = margin < margin_cur  # loss "margin": improvement and misclassification both lower it
            margin_cur = torch.where(better, margin, margin_cur)
            best_cur = torch.where(_rows(better), candidate, best_cur)
            done = margin_cur <= 0
            if i == n_queries - 1 or bool(done.any()):  # write back; keep working on the rest
                x_best[todo], margin_best[todo] = best_cur, margin_cur
                keep = ~done
                todo, x_cur, y_cur, best_cur, margin_cur = (todo[keep], x_cur[keep], y_cur[keep], best_cur[keep],
                                                            margin_cur[keep])
                low, high = low[keep], high[keep]
    return x_best, margin_best <= 0


class NativeAttack:
    """Base class of the native members: parameters checked against :data:`AUTOATTACK_PARAMS`, labels,
    the restarts over the examples still correct, and the worst case per example."""

    name: ClassVar[str] = ""
    threat: ClassVar[str] = "white-box"
    implementation: ClassVar[str] = ""

    def __init__(self, **params: Any):
        self.config = KnobConfig.for_attack(self.name, AUTOATTACK_PARAMS, **params)

    @property
    def description(self) -> str:
        return AUTOATTACK_DESCRIPTIONS[self.name]

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.config.to_dict().items())})"

    def __call__(self, model: torch.nn.Module, x: Any, y: Any = None, target: Any = None) -> torch.Tensor:
        if target is not None:
            raise UsageError(f"{self.name}: target labels are not supported (untargeted; apgd-t picks its own)")
        x0 = checked_images(OPS, model, x)
        with eval_mode(model), torch.no_grad():
            logits = model(x0) if len(x0) else None
        labels = (logits.argmax(dim=1) if logits is not None else torch.zeros(0, dtype=torch.long)) if y is None \
            else torch.as_tensor(y).to(x0.device).long()
        if labels.shape != (len(x0),):
            raise UsageError(f"{self.name}: got {labels.shape[0] if labels.dim() else 0} labels for {len(x0)} images")
        if len(x0) == 0 or self.config.eps == 0:
            return x0.clone().to(x.device)
        generator = torch.Generator().manual_seed(self.config.seed)
        result = x0.clone()
        correct = logits.argmax(dim=1) == labels
        with eval_mode(model):
            for k in range(self.runs(logits.shape[1])):  # each run attacks the examples still correct
                todo = torch.nonzero(correct).flatten()
                if len(todo) == 0:
                    break
                candidate, fooled = self.run(model, x0[todo], labels[todo], logits[todo], generator, k)
                result[todo] = candidate  # a fooling image, else this run's best try
                correct[todo[fooled]] = False
        return result.to(x.device)

    def runs(self, num_classes: int) -> int:
        """How many runs to make (reference ``perturb``: ``n_restarts``; APGD-T: per target as well)."""
        return self.config.restarts

    def run(self, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, logits: torch.Tensor,
            generator: torch.Generator, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Run ``k`` on examples the model still gets right (``logits``: their clean ones): (image, fooled)."""
        raise NotImplementedError


class APGDCE(NativeAttack):
    """APGD on the cross-entropy (Croce & Hein 2020), native."""

    name = "apgd-ce"
    implementation = "harness native APGD-CE (Croce & Hein 2020, reference fra31/auto-attack)"

    def run(self, model, x, y, logits, generator, k):
        c = self.config
        losses = lambda z, labels: F.cross_entropy(z, labels, reduction="none")  # noqa: E731
        return apgd(model, x, y, losses, c.eps, c.norm, c.max_iter, c.rho, generator)


class APGDT(NativeAttack):
    """Targeted APGD on the DLR loss, once per target among the top ``n_targets`` wrong classes of the clean
    logits (reference ``APGDT.perturb``: targets outer, restarts inner), native."""

    name = "apgd-t"
    implementation = "harness native APGD-T (targeted DLR; Croce & Hein 2020, reference fra31/auto-attack)"

    def runs(self, num_classes: int) -> int:
        return min(self.config.n_targets, num_classes - 1) * self.config.restarts

    def run(self, model, x, y, logits, generator, k):
        c = self.config
        # target: the (2 + k // restarts)-th largest clean logit (reference ``sort(dim=1)[1][:, -target_class]``)
        target = logits.sort(dim=1)[1][:, -(2 + k // c.restarts)]
        losses = lambda z, labels: dlr_targeted_loss(z, labels, target)  # noqa: E731
        return apgd(model, x, y, losses, c.eps, c.norm, c.max_iter, c.rho, generator)


class Square(NativeAttack):
    """Square Attack (Andriushchenko et al. 2020): scores only, random square updates on the margin loss.
    L-inf is native; ``norm="l2"`` runs ART's SquareAttack (``art-square``)."""

    name = "square"
    threat = "black-box"
    implementation = "harness native Square linf (Andriushchenko et al. 2020, reference fra31/auto-attack)"

    def __call__(self, model, x, y=None, target=None):
        if self.config.norm == "l2":
            from .art_attacks import Square as ArtSquare

            params = {k: v for k, v in self.config.to_dict().items()}
            return ArtSquare(**params)(model, x, y, target)
        return super().__call__(model, x, y, target)

    def run(self, model, x, y, logits, generator, k):
        c = self.config
        return square_linf(model, x, y, c.eps, c.max_iter, c.p_init, generator)
