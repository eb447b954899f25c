"""A third-party attack plugin for the robustness ensemble (torch): an attack that ignores its budget
and returns a NaN (the harness must catch and project it), and one that raises."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from harness import hookimpl
from harness.specs import AttackSpec


@dataclass(frozen=True)
class Config:
    eps: float = 0.1
    seed: int = 0
    norm: str = "linf"

    def to_dict(self):
        return asdict(self)


class Sloppy:
    """Random signs of size 3 * eps (three times the budget), one NaN pixel."""

    threat = "black-box"
    implementation = "test plugin"

    def __init__(self, eps: float = 0.1, seed: int = 0):
        self.config = Config(eps, seed)

    def __call__(self, model, x, y=None, target=None):
        import torch

        signs = np.sign(np.random.default_rng(self.config.seed).standard_normal(tuple(x.shape))).astype(np.float32)
        out = x + 3 * self.config.eps * torch.from_numpy(signs).to(x.device)
        out[0, 0, 0, 0] = float("nan")
        return out


class Broken:
    def __init__(self, eps: float = 0.1, seed: int = 0):
        self.config = Config(eps, seed)

    def __call__(self, model, x, y=None, target=None):
        raise RuntimeError("boom")


@hookimpl
def harness_register_attacks():
    return [
        AttackSpec(name="sloppy", factory=Sloppy, description="Test: out of budget, with a NaN", framework="torch",
                   params={"eps": 0.1, "seed": 0}),
        AttackSpec(name="broken", factory=Broken, description="Test: raises", framework="torch",
                   params={"eps": 0.1, "seed": 0}),
    ]
