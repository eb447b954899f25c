"""Torch-only behaviour of FGSM, BIM and PGD (the shared tests are tests/attacks/test_attacks.py):
module modes and parameter gradients left alone, dtype and device handling."""

from __future__ import annotations

import copy

import pytest

torch = pytest.importorskip("torch")

from harness_torch.attacks import BIM, FGSM, PGD  # noqa: E402

ATTACKS = {"fgsm": FGSM, "bim": BIM, "pgd": PGD}
N = 200


@pytest.fixture(scope="module")
def batch(digits_data):
    return digits_data.x_test[:N], digits_data.y_test[:N]


@pytest.mark.parametrize("name", list(ATTACKS))
def test_model_modes_and_gradients_are_left_alone(digits_model, batch, name):
    model = copy.deepcopy(digits_model).train()
    model[3].eval()  # a mixed set of modes must come back exactly
    modes = [m.training for m in model.modules()]
    state = {k: v.clone() for k, v in model.state_dict().items()}
    first = next(model.parameters())
    first.grad = torch.full_like(first, 0.5)
    x, y = batch
    ATTACKS[name](eps=0.1)(model, x, y)
    assert [m.training for m in model.modules()] == modes
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())  # BN stats untouched
    assert torch.equal(first.grad, torch.full_like(first, 0.5))
    assert all(p.grad is None for p in list(model.parameters())[1:])


def test_float64_input_comes_back_float32_on_its_device():
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))
    x = torch.rand(5, 1, 2, 2, dtype=torch.float64)
    x_adv = PGD(eps=0.1, steps=2)(model, x, torch.tensor([0, 1, 2, 0, 1]))
    assert x_adv.device == x.device and x_adv.dtype == torch.float32


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cpu_inputs_run_on_a_cuda_model(digits_model, batch):
    model = copy.deepcopy(digits_model).cuda()
    x, y = batch
    x_adv = PGD(eps=0.1, steps=3)(model, x, y)
    assert x_adv.device == x.device
    assert (x_adv - x).abs().max().item() <= 0.1 + 1e-6
    assert torch.allclose(x_adv, PGD(eps=0.1, steps=3)(digits_model, x, y), atol=1e-4)
