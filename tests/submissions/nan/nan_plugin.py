"""A model whose outputs are NaN, trained by a do-nothing defense."""

import torch

from harness import hookimpl
from harness.specs import BackboneSpec, DefenseSpec


class NaNNet(torch.nn.Module):
    def __init__(self, num_classes, input_shape):
        super().__init__()
        self.linear = torch.nn.Linear(1, num_classes)
        self.num_classes = num_classes

    def forward(self, x):
        return torch.full((x.shape[0], self.num_classes), float("nan"))


class NoFit:
    def __init__(self, **params):
        self.params = params

    def fit(self, model, train, val=None, out_dir=None, *, resume=False):
        return None


@hookimpl
def harness_register_backbones():
    return [BackboneSpec(name="nan-net", factory=NaNNet, description="NaN outputs", framework="torch")]


@hookimpl
def harness_register_defenses():
    return [DefenseSpec(name="nan-fit", factory=NoFit, description="no training", framework="torch",
                        params={"seed": 0, "progress": True})]
