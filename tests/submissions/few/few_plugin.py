"""A model that drops the last image of every batch: too few predictions."""

import torch

from harness import hookimpl
from harness.specs import BackboneSpec, DefenseSpec


class ShortNet(torch.nn.Module):
    def __init__(self, num_classes, input_shape):
        super().__init__()
        self.linear = torch.nn.Linear(int(torch.tensor(input_shape).prod()), num_classes)

    def forward(self, x):
        return self.linear(x.flatten(1))[:-1]


class NoFit:
    def __init__(self, **params):
        self.params = params

    def fit(self, model, train, val=None, out_dir=None, *, resume=False):
        return None


@hookimpl
def harness_register_backbones():
    return [BackboneSpec(name="short-net", factory=ShortNet, description="drops rows", framework="torch")]


@hookimpl
def harness_register_defenses():
    return [DefenseSpec(name="few-fit", factory=NoFit, description="no training", framework="torch",
                        params={"seed": 0, "progress": True})]
