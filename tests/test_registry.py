"""Registries: wildcards, create with parameters, errors written for people."""

from __future__ import annotations

import numpy as np
import pytest

from harness import registry
from harness.errors import PluginError
from harness.plugins import get_plugin_manager
from harness.specs import KINDS, AttackSpec, DatasetSpec


@pytest.fixture
def with_sample(fresh_plugins):
    get_plugin_manager().load_module("sample_plugin")
    registry.clear_cache()


def test_list_with_wildcards_and_framework(with_sample):
    assert registry.list_attacks("sample-*") == ["sample-uniform"]
    assert registry.list_attacks("nothing*") == []
    assert "digits" in registry.list_datasets("d*")
    assert set(registry.list_backbones(framework="torch")) >= {"small-cnn", "wide_resnet50_2"}
    assert registry.list_backbones(framework="tf") == [
        n for n in registry.list_backbones() if {"tf", "any"} & set(registry.variants("backbone", n))]


def test_create_applies_parameters_over_defaults(with_sample):
    attack = registry.create_attack("sample-uniform", eps=0.25)
    assert attack.eps == 0.25
    assert registry.create_augmentation("sample-invert")(0.25) == 0.75


def test_unknown_name_suggests_the_closest(with_sample):
    with pytest.raises(PluginError) as info:
        registry.create_attack("sample-unifrom")
    assert info.value.message.startswith("Unknown attack 'sample-unifrom'. Did you mean 'sample-uniform'? Available: ")
    assert info.value.exit_code == 2


def test_unknown_parameter_is_named_with_suggestion(with_sample):
    with pytest.raises(PluginError, match=r"attack 'sample-uniform' has no parameter 'esp'. Did you mean 'eps'\?"):
        registry.create_attack("sample-uniform", esp=0.1)


def test_unknown_kind():
    with pytest.raises(PluginError, match="Unknown plugin kind 'atack'. Did you mean 'attack'"):
        registry.registry("atack")


def test_spec_validation():
    with pytest.raises(PluginError, match="framework must be one of"):
        AttackSpec(name="x", factory="math:sqrt", framework="jax")
    with pytest.raises(PluginError, match="non-empty string name"):
        DatasetSpec(name="", factory="math:sqrt")


def test_lazy_factory_errors_name_the_plugin():
    spec = AttackSpec(name="ghost", factory="no_such_module_xyz:make", source="ghost-plugin")
    with pytest.raises(PluginError, match=r"attack 'ghost' \(from ghost-plugin\): cannot load factory"):
        spec.create()


def test_missing_framework_gives_install_hint(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "torch" else real(name, *a))
    spec = AttackSpec(name="t", factory="x:y", framework="torch")
    assert not spec.available
    with pytest.raises(PluginError) as info:
        spec.create()
    assert "needs torch, which is not installed" in info.value.message
    assert info.value.hint == "pip install 'harness[torch]'"


@pytest.mark.parametrize("kind", KINDS)
def test_every_registered_spec_is_well_formed(kind):
    for name, spec in registry.registry(kind).items():
        assert spec.name == name and spec.description, f"{kind} '{name}' needs a description"
        assert spec.distribution and spec.source
        if isinstance(spec.factory, str):
            assert ":" in spec.factory, f"{kind} '{name}': factory must be 'module:attribute'"


def test_third_party_dataset_backbone_and_defense_work_together(with_sample, cache_dir):
    """A sample plugin's dataset goes through the cache; its backbone and defense train on it."""
    from harness.data import load_dataset

    assert registry.list_datasets("sample-*") == ["sample-stripes"]
    assert registry.list_backbones("sample-*") == ["sample-centroid"]
    assert registry.list_defenses("sample-*") == ["sample-centroid-fit"]
    torch = pytest.importorskip("torch")
    train = load_dataset("sample-stripes").split("train")
    model = registry.create_backbone("sample-centroid", num_classes=2)
    registry.create_defense("sample-centroid-fit").fit(model, train)
    images = torch.as_tensor(np.array(train.images), dtype=torch.float32).permute(0, 3, 1, 2) / 255.0
    assert (model(images).argmax(1).numpy() == train.labels).all()


def test_plugin_without_parameters_rejects_any(with_sample):
    with pytest.raises(PluginError, match=r"dataset 'sample-stripes' has no parameter 'n'. Parameters: none"):
        registry.create_dataset("sample-stripes", n=3)


@pytest.fixture
def with_variants(fresh_plugins):
    get_plugin_manager().load_module("framework_variant_plugin")
    registry.clear_cache()


def test_one_name_may_have_one_variant_per_framework(with_variants):
    import math

    assert list(registry.variants("attack", "variant-attack")) == ["torch", "tf"]
    assert registry.get_attack("variant-attack", framework="tf").factory == "math:floor"
    assert registry.get_attack("variant-attack", framework="torch").factory == "math:sqrt"
    assert registry.get_attack("variant-attack").framework == "torch"  # no framework: any, torch, tf order
    assert registry.get_attack("variant-attack", framework="tf").load_factory() is math.floor
    assert registry.list_attacks("variant-*", framework="tf") == ["variant-attack"]
    assert registry.list_augmentations("variant-*", framework="tf") == []


def test_a_missing_framework_variant_is_named(with_variants):
    with pytest.raises(PluginError, match=r"^augmentation 'variant-aug' has no tf version \(it exists for: torch\)$"):
        registry.get_augmentation("variant-aug", framework="tf")
    with pytest.raises(PluginError, match=r"Unknown framework 'tensorflow'"):
        registry.get_augmentation("variant-aug", framework="tensorflow")


def test_same_framework_twice_is_still_a_duplicate(with_variants):
    import types

    original = __import__("framework_variant_plugin")
    again = types.SimpleNamespace(harness_register_attacks=original.harness_register_attacks)
    get_plugin_manager().register(again, name="again")
    registry.clear_cache()
    with pytest.raises(PluginError, match="Duplicate attack 'variant-attack'"):
        registry.registry("attack")
