"""The torch ArrayOps agrees with numpy on the shared noise maths."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from harness.perturb import NOISE_NAMES, ArrayOps, numpy_noise  # noqa: E402
from harness_torch.noise import TorchOps, torch_noise  # noqa: E402


def stats(images) -> tuple[float, float, float, float]:
    images = np.asarray(images, dtype=np.float64)
    return images.mean(), images.std(), (images == 0).mean(), (images == 1).mean()


@pytest.mark.parametrize("severity", [1, 3, 5])
@pytest.mark.parametrize("name", NOISE_NAMES)
def test_numpy_and_torch_agree_in_distribution(name, severity):
    x = np.full((16, 3, 32, 32), 0.45, dtype=np.float32)
    x[:, :, :8] = 0.02  # near the clip too
    np_mean, np_std, np_zeros, np_ones = stats(numpy_noise(name, x, severity, seed=0))
    out = torch_noise(name, torch.from_numpy(x), severity, generator=torch.Generator().manual_seed(0))
    assert out.dtype == torch.float32 and out.shape == x.shape
    t_mean, t_std, t_zeros, t_ones = stats(out.numpy())
    assert t_mean == pytest.approx(np_mean, abs=0.003)
    assert t_std == pytest.approx(np_std, rel=0.03)
    assert t_zeros == pytest.approx(np_zeros, abs=0.004)
    assert t_ones == pytest.approx(np_ones, abs=0.004)


@pytest.mark.parametrize("name", NOISE_NAMES)
def test_torch_noise_is_deterministic_given_a_generator(name):
    x = torch.full((4, 3, 8, 8), 0.5)
    a = torch_noise(name, x, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, torch_noise(name, x, generator=torch.Generator().manual_seed(1)))
    assert not torch.equal(a, torch_noise(name, x, generator=torch.Generator().manual_seed(2)))


def test_torch_ops_is_array_ops_and_keeps_dtype():
    ops = TorchOps(torch.Generator().manual_seed(0))
    assert isinstance(ops, ArrayOps)
    x = torch.full((2, 3), 0.5, dtype=torch.float64)
    for sample in (ops.normal(x), ops.uniform(x), ops.poisson(x * 10)):
        assert sample.dtype == torch.float64 and sample.shape == x.shape
