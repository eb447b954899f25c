"""R+FGSM (Tramer et al. 2018) following the harness attack contract.

``attack(model, x, y=None, target=None)``: x float32 N,C,H,W in [0, 1] (torch), the result the same;
``attack.config`` has ``eps`` (L-inf, pixel space) and ``norm``; y None attacks the predicted labels.
"""

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class RandomStepConfig:
    eps: float
    alpha: float
    seed: int
    norm: str = "linf"

    def to_dict(self) -> dict:
        return asdict(self)


class RandomStepFGSM:
    threat = "white-box"

    def __init__(self, eps: float = 8 / 255, alpha: float | None = None, seed: int = 0):
        if eps < 0:
            raise ValueError(f"eps must be >= 0, got {eps}")
        self.config = RandomStepConfig(float(eps), float(eps / 2 if alpha is None else alpha), int(seed))

    def __call__(self, model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor | None = None,
                 target: torch.Tensor | None = None) -> torch.Tensor:
        eps, alpha = self.config.eps, self.config.alpha
        generator = torch.Generator(device=x.device).manual_seed(self.config.seed)
        training = model.training
        model.eval()
        try:
            if target is None and y is None:
                with torch.no_grad():
                    y = model(x).argmax(1)
            noise = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
            start = (x + alpha * noise.sign()).clamp(0, 1).detach().requires_grad_(True)
            labels, sign = (target, -1.0) if target is not None else (y, 1.0)
            loss = F.cross_entropy(model(start), labels)
            (grad,) = torch.autograd.grad(loss, start)
            adversarial = start.detach() + sign * (eps - alpha) * grad.sign()
            return torch.min(torch.max(adversarial, x - eps), x + eps).clamp(0, 1).detach()
        finally:
            model.train(training)
