"""Torch implementation of :class:`harness.perturb.noise.ArrayOps`; the maths lives in harness."""

from __future__ import annotations

from typing import Any

import torch

from harness.perturb import noise as _noise


class TorchOps:
    """:class:`~harness.perturb.noise.ArrayOps` over torch tensors.

    Samples are drawn on the generator's device (the default generator of the
    tensor's device when ``generator`` is None) and moved to the tensor's device,
    so a CPU generator gives the same numbers on every device.
    """

    def __init__(self, generator: torch.Generator | None = None):
        self.generator = generator

    def _device(self, like: torch.Tensor) -> torch.device:
        return self.generator.device if self.generator is not None else like.device

    def normal(self, like: torch.Tensor) -> torch.Tensor:
        out = torch.randn(like.shape, generator=self.generator, device=self._device(like), dtype=like.dtype)
        return out.to(like.device)

    def uniform(self, like: torch.Tensor) -> torch.Tensor:
        out = torch.rand(like.shape, generator=self.generator, device=self._device(like), dtype=like.dtype)
        return out.to(like.device)

    def poisson(self, rate: torch.Tensor) -> torch.Tensor:
        out = torch.poisson(rate.to(self._device(rate)), generator=self.generator)
        return out.to(rate.device, rate.dtype)

    def clip(self, x: torch.Tensor, low: float, high: float) -> torch.Tensor:
        return x.clamp(low, high)

    def where(self, condition: torch.Tensor, a: Any, b: Any) -> torch.Tensor:
        return torch.where(condition, a, b)


def torch_noise(name: str, x: torch.Tensor, severity: int = 3, generator: torch.Generator | None = None,
                **params: Any) -> torch.Tensor:
    """Noise ``name`` (see :data:`harness.perturb.NOISE_NAMES`) on a float tensor in [0, 1]."""
    return _noise.apply_noise(name, x, TorchOps(generator), severity, **params)
