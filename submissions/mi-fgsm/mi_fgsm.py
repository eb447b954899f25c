"""Momentum iterative FGSM (MI-FGSM): Dong et al., "Boosting Adversarial Attacks with Momentum" (CVPR 2018),
the attack that won the NIPS 2017 adversarial competition.

Each step accumulates the L1-normalised gradient into a momentum term and moves by the sign of it::

    g_{t+1} = decay * g_t + grad / ||grad||_1
    x_{t+1} = clip_{x, eps}(x_t + alpha * sign(g_{t+1})),    alpha = eps / steps

(l2: the step is alpha * g / ||g||_2 and the projection is onto the l2 ball). The momentum stabilises the
update direction, which is what makes its images transfer from a surrogate model to unseen defenses.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from harness import hookimpl
from harness.specs import AttackSpec


@dataclass(frozen=True)
class MIFGSMConfig:
    """The attack's parameters; eps and norm are the budget the harness enforces."""

    eps: float = 8 / 255
    steps: int = 10
    decay: float = 1.0
    norm: str = "linf"

    def __post_init__(self):
        if not (isinstance(self.eps, (int, float)) and math.isfinite(self.eps) and self.eps >= 0):
            raise ValueError(f"mi-fgsm: eps must be a finite number >= 0, got {self.eps!r}")
        if not (isinstance(self.steps, int) and self.steps >= 1):
            raise ValueError(f"mi-fgsm: steps must be an integer >= 1, got {self.steps!r}")
        if not (isinstance(self.decay, (int, float)) and math.isfinite(self.decay) and self.decay >= 0):
            raise ValueError(f"mi-fgsm: decay must be a finite number >= 0, got {self.decay!r}")
        if self.norm not in ("linf", "l2"):
            raise ValueError(f"mi-fgsm: norm must be linf or l2, got {self.norm!r}")

    def to_dict(self):
        return asdict(self)


class MIFGSM:
    """``attack(model, x, y=None, target=None)`` on a torch model: x float32 N,C,H,W in [0, 1]; y None attacks
    the model's own predictions; target: move towards these labels instead."""

    def __init__(self, eps=8 / 255, steps=10, decay=1.0, norm="linf"):
        self.config = MIFGSMConfig(float(eps), int(steps), float(decay), norm)

    def __call__(self, model, x, y=None, target=None):
        import torch
        import torch.nn.functional as F

        eps, steps, decay, norm = self.config.eps, self.config.steps, self.config.decay, self.config.norm
        alpha = eps / steps
        modes = [(module, module.training) for module in model.modules()]
        model.eval()  # attack the model as it predicts; every module gets its own mode back below
        try:
            x0 = x.detach().float()
            with torch.no_grad():
                labels = torch.as_tensor(target if target is not None else y if y is not None
                                         else model(x0).argmax(dim=1), device=x0.device)
            sign = -1.0 if target is not None else 1.0  # targeted: descend the target's loss
            momentum = torch.zeros_like(x0)
            adv = x0.clone()
            for _ in range(steps):
                adv.requires_grad_(True)
                loss = F.cross_entropy(model(adv), labels, reduction="sum")
                (grad,) = torch.autograd.grad(sign * loss, adv)
                momentum = decay * momentum + grad / _norm(grad, 1)
                with torch.no_grad():
                    if norm == "linf":
                        adv = adv + alpha * momentum.sign()
                        adv = torch.min(torch.max(adv, x0 - eps), x0 + eps)
                    else:
                        adv = adv + alpha * momentum / _norm(momentum, 2)
                        delta = adv - x0
                        adv = x0 + delta * torch.clamp(eps / _norm(delta, 2), max=1.0)
                    adv = adv.clamp(0.0, 1.0)
            return adv.detach()
        finally:
            for module, training in modes:
                module.training = training


def _norm(t, p):
    """Per-example L``p`` norm of ``t``, shaped to broadcast over it (never 0: a zero gradient stays zero)."""
    return t.flatten(1).norm(p=p, dim=1).clamp_min(1e-12).view(-1, *([1] * (t.dim() - 1)))


@hookimpl
def harness_register_attacks():
    return [AttackSpec(name="mi-fgsm", factory=MIFGSM, framework="torch",
                       description="Momentum iterative FGSM (Dong et al. 2018), the NIPS 2017 winner",
                       params={"eps": 8 / 255, "steps": 10, "decay": 1.0, "norm": "linf"})]
