"""Plugin discovery through the ``harness`` entry-point group, and the env switches."""

from __future__ import annotations

import pytest

from harness import registry
from harness.errors import PluginError
from harness.plugins import HarnessPluginManager, get_plugin_manager
from helpers import install_fake_distribution


@pytest.fixture
def site(tmp_path, fresh_plugins, monkeypatch):
    path = tmp_path / "site"
    path.mkdir()
    monkeypatch.syspath_prepend(str(path))
    return path


def test_builtins_load_through_entry_points(fresh_plugins):
    pm = get_plugin_manager()
    assert {"datasets", "torch"} <= set(pm.origins)
    assert pm.origins["datasets"].distribution == "harness"
    assert pm.load_errors == []
    assert "digits" in registry.list_datasets()
    assert registry.get_dataset("digits").distribution == "harness"


def test_third_party_plugin_discovered_by_entry_point(site, monkeypatch):
    install_fake_distribution(site, "harness-sample", {"sample": "sample_plugin"}, version="2.3")
    monkeypatch.delenv("HARNESS_DISABLE_PLUGIN_AUTOLOAD")
    spec = registry.get_attack("sample-uniform")
    assert (spec.source, spec.distribution, spec.version) == ("sample", "harness-sample", "2.3")
    assert "sample-invert" in registry.list_augmentations("sample-*")


def test_autoload_disabled_skips_third_party_but_not_builtins(site):
    install_fake_distribution(site, "harness-sample", {"sample": "sample_plugin"})
    assert registry.list_attacks("sample-*") == []  # conftest sets HARNESS_DISABLE_PLUGIN_AUTOLOAD=1
    assert "digits" in registry.list_datasets()


def test_allow_list_loads_named_plugin_even_with_autoload_disabled(site, monkeypatch):
    install_fake_distribution(site, "harness-sample", {"sample": "sample_plugin"})
    install_fake_distribution(site, "harness-dup", {"dup": "duplicate_plugin"})
    monkeypatch.setenv("HARNESS_PLUGINS", "sample")
    assert registry.list_attacks("sample-*") == ["sample-uniform"]  # 'dup' not allowed: no duplicate error
    assert "dup" not in get_plugin_manager().origins


def test_allow_list_by_distribution_name(site, monkeypatch):
    install_fake_distribution(site, "harness-sample", {"sample": "sample_plugin"})
    monkeypatch.delenv("HARNESS_DISABLE_PLUGIN_AUTOLOAD")
    monkeypatch.setenv("HARNESS_PLUGINS", "harness-sample")
    assert registry.list_attacks("sample-*") == ["sample-uniform"]


def test_empty_allow_list_loads_no_third_party(site, monkeypatch):
    install_fake_distribution(site, "harness-sample", {"sample": "sample_plugin"})
    monkeypatch.delenv("HARNESS_DISABLE_PLUGIN_AUTOLOAD")
    monkeypatch.setenv("HARNESS_PLUGINS", "")
    assert registry.list_attacks("sample-*") == []


def test_broken_plugin_is_named_and_the_rest_still_load(site, monkeypatch):
    install_fake_distribution(site, "harness-broken", {"broken": "broken_plugin"}, version="0.9")
    install_fake_distribution(site, "harness-sample", {"sample": "sample_plugin"})
    monkeypatch.delenv("HARNESS_DISABLE_PLUGIN_AUTOLOAD")
    pm = get_plugin_manager()
    assert [e.name for e in pm.load_errors] == ["broken"]
    message = str(pm.load_errors[0])
    assert "Plugin 'broken'" in message and "harness-broken" in message
    assert "No module named 'harness_dependency_that_does_not_exist'" in message
    assert registry.list_attacks("sample-*") == ["sample-uniform"]


def test_duplicate_names_are_an_error_naming_both_sources(site, monkeypatch):
    install_fake_distribution(site, "harness-sample", {"sample": "sample_plugin"})
    install_fake_distribution(site, "harness-dup", {"dup": "duplicate_plugin"})
    monkeypatch.delenv("HARNESS_DISABLE_PLUGIN_AUTOLOAD")
    with pytest.raises(PluginError) as info:
        registry.list_attacks()
    message = info.value.message
    assert message.startswith("Duplicate attack 'sample-uniform'")
    assert "'dup' (harness-dup)" in message and "'sample' (harness-sample)" in message


def test_wrong_spec_type_is_reported(fresh_plugins):
    get_plugin_manager().load_module("wrong_spec_plugin")
    with pytest.raises(PluginError, match="Plugin 'wrong_spec_plugin' returned BackboneSpec from harness_register_attacks"):
        registry.list_attacks()


def test_trace_hooks_writes_hook_calls(fresh_plugins, monkeypatch, capsys):
    monkeypatch.setenv("HARNESS_TRACE_HOOKS", "1")
    pm = HarnessPluginManager()
    pm.load_entry_points()
    pm.hook.harness_register_datasets()
    assert "harness_register_datasets" in capsys.readouterr().err


def test_every_hook_is_documented_and_tested():
    """Meta-test (datasette style): each hookspec has a docstring and is exercised by a test."""
    from pathlib import Path

    from harness import hookspecs

    hooks = [name for name in dir(hookspecs) if name.startswith("harness_")]
    assert len(hooks) == 5
    test_text = "".join(p.read_text() for p in Path(__file__).parent.rglob("*.py"))
    for hook in hooks:
        assert getattr(hookspecs, hook).__doc__, f"{hook} has no docstring"
        kind = hook.removeprefix("harness_register_").rstrip("s")
        assert f"list_{kind}s(" in test_text or f'"{kind}"' in test_text, f"{hook} has no test"


def test_misspelled_hook_is_named(fresh_plugins):
    with pytest.raises(PluginError) as info:
        get_plugin_manager().load_module("typo_plugin")
    assert info.value.message.startswith("Plugin 'typo_plugin': unknown hook 'harness_register_atacks'")
