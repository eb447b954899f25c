"""A plugin that breaks its contract gets one line naming it and the broken rule, when it is created."""

from __future__ import annotations

import pytest

from harness import registry
from harness.errors import PluginError
from harness.plugins import get_plugin_manager

BROKEN = [
    ("attack", "no-target", "the attack cannot be called as attack(model, x, y=None, target=None) "
                            "(rule: attacks are called as attack(model, x, y=None, target=None))"),
    ("attack", "no-config", "the attack has no config.eps, so the harness cannot enforce its budget "
                            "(rule: attacks expose config.eps and config.norm)"),
    ("attack", "negative-eps", "config.eps is -0.1 (rule: config.eps is the budget in pixel space [0, 1], "
                               "a finite float >= 0)"),
    ("attack", "nan-eps", "config.eps is nan (rule: config.eps is the budget in pixel space [0, 1], "
                          "a finite float >= 0)"),
    ("attack", "l3-norm", "config.norm is 'l3' (rule: config.norm is one of linf, l2)"),
    ("attack", "not-an-attack", "the factory returned int, which is not callable "
                                "(rule: attacks are called as attack(model, x, y=None, target=None))"),
    ("attack", "undeclared", "the factory does not accept its parameters eps "
                             "(rule: a factory accepts every parameter named in its spec's params)"),
    ("augmentation", "seed-only", "the augmentation does not accept the keyword generator "
                                  "(rule: augmentations are called as aug(x, *, generator=...))"),
    ("backbone", "no-input-shape", "the factory does not accept num_classes=, input_shape= and its params "
                                   "(rule: backbone factories accept num_classes= and input_shape=(H, W, C))"),
    ("backbone", "numpy-model", "the factory returned function, not a torch.nn.Module "
                                "(rule: backbones return a model of their framework (torch.nn.Module or Keras Model))"),
    ("defense", "no-resume", "its fit cannot be called as fit(model, train, val, out_dir=..., resume=...) "
                             "(rule: defenses expose fit(model, train, val=None, out_dir=None, *, resume=False))"),
    ("dataset", "list-params", "the dataset's .params is list, not a mapping "
                               "(rule: datasets expose .params, a mapping identifying their content)"),
]


@pytest.fixture
def breaking(fresh_plugins):
    get_plugin_manager().load_module("contract_breaking_plugin")
    registry.clear_cache()
    yield
    registry.clear_cache()


@pytest.mark.parametrize("kind, name, rule", BROKEN, ids=[name for _, name, _ in BROKEN])
def test_a_broken_rule_is_one_line_naming_the_plugin(breaking, kind, name, rule):
    arguments = {"num_classes": 2, "input_shape": (8, 8, 1)} if kind == "backbone" else {}
    with pytest.raises(PluginError) as info:
        registry.create(kind, name, **arguments)
    assert info.value.message == f"{kind} '{name}' (plugin contract_breaking_plugin): {rule}"
    assert info.value.exit_code == 2


def test_the_plugin_and_its_distribution_are_both_named():
    from harness.contracts import plugin_label
    from harness.specs import AttackSpec

    spec = AttackSpec(name="my-attack", factory="x:y", source="my_pkg", distribution="my-package")
    assert plugin_label(spec) == "attack 'my-attack' (plugin my_pkg from my-package)"
    assert plugin_label(AttackSpec(name="a", factory="x:y")) == "attack 'a' (plugin not registered)"
