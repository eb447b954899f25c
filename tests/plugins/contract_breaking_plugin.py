"""A plugin whose every registration breaks one contract rule (tests/contracts/test_rules.py)."""

from __future__ import annotations

import math
from types import SimpleNamespace

from harness import hookimpl
from harness.specs import AttackSpec, AugmentationSpec, BackboneSpec, DatasetSpec, DefenseSpec


class BudgetedAttack:
    """A well-formed attack whose budget is whatever it is given."""

    def __init__(self, eps=0.1, norm="linf"):
        self.config = SimpleNamespace(eps=eps, norm=norm)

    def __call__(self, model, x, y=None, target=None):
        return x


class NoTargetAttack(BudgetedAttack):
    def __call__(self, model, x, y=None):
        return x


class NoConfigAttack:
    def __call__(self, model, x, y=None, target=None):
        return x


def seeded_augmentation():
    return lambda x, seed=None: x


def tiny_model(num_classes):
    return object()


def numpy_model(num_classes, input_shape):
    return lambda x: x


class NoResumeTrainer:
    def fit(self, model, train, val=None):
        return []


class ListDataset:
    params = [("n", 3)]

    def plan(self, *, skip_bad=False):
        raise AssertionError("never planned")


def takes_nothing():
    return BudgetedAttack()


@hookimpl
def harness_register_attacks():
    return [
        AttackSpec(name="no-target", factory=NoTargetAttack, description="no target argument"),
        AttackSpec(name="no-config", factory=NoConfigAttack, description="no config"),
        AttackSpec(name="negative-eps", factory=BudgetedAttack, description="eps < 0", params={"eps": -0.1}),
        AttackSpec(name="nan-eps", factory=BudgetedAttack, description="eps nan", params={"eps": math.nan}),
        AttackSpec(name="l3-norm", factory=BudgetedAttack, description="unknown norm", params={"norm": "l3"}),
        AttackSpec(name="not-an-attack", factory=lambda: 42, description="not callable"),
        AttackSpec(name="undeclared", factory=takes_nothing, description="rejects its params", params={"eps": 0.1}),
    ]


@hookimpl
def harness_register_augmentations():
    return [AugmentationSpec(name="seed-only", factory=seeded_augmentation, description="seed=, no generator")]


@hookimpl
def harness_register_backbones():
    return [
        BackboneSpec(name="no-input-shape", factory=tiny_model, description="no input_shape", framework="torch"),
        BackboneSpec(name="numpy-model", factory=numpy_model, description="not a torch module", framework="torch"),
    ]


@hookimpl
def harness_register_defenses():
    return [DefenseSpec(name="no-resume", factory=NoResumeTrainer, description="fit without out_dir or resume")]


@hookimpl
def harness_register_datasets():
    return [DatasetSpec(name="list-params", factory=ListDataset, description="params is a list")]
