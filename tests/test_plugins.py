"""Plugin discovery through the ``harness`` entry-point group, and the env switches."""

from __future__ import annotations

import sys
from importlib import metadata

import pytest

from harness import registry
from harness.errors import PluginError, UsageError
from harness.plugins import BUILTIN_PLUGINS, HarnessPluginManager, folder_plugins, get_plugin_manager
from helpers import install_fake_distribution


@pytest.fixture
def site(tmp_path, fresh_plugins, monkeypatch):
    path = tmp_path / "site"
    path.mkdir()
    monkeypatch.syspath_prepend(str(path))
    return path


def test_builtins_register_by_import(fresh_plugins):
    pm = get_plugin_manager()
    assert set(BUILTIN_PLUGINS) <= set(pm.origins)
    assert pm.origins["datasets"].distribution == "harness"
    assert pm.load_errors == []
    assert "digits" in registry.list_datasets()
    assert registry.get_dataset("digits").distribution == "harness"


def test_builtins_present_without_any_entry_point(fresh_plugins, monkeypatch):
    """A stale or partial install (no entry points at all) still has every built-in."""
    monkeypatch.setattr(metadata, "entry_points", lambda **kwargs: [])
    pm = get_plugin_manager()
    assert set(BUILTIN_PLUGINS) <= set(pm.origins) and pm.load_errors == []
    assert {"digits", "fgsm", "small-cnn"} <= set(registry.list_datasets()) | set(registry.list_attacks()) | \
        set(registry.list_backbones())


def test_stale_builtin_entry_points_are_not_loaded_twice(site):
    """An older install declared the built-ins as entry points of 'harness': they are skipped, not duplicated."""
    install_fake_distribution(site, "harness", {"torch": "harness_torch.plugin", "datasets": "harness.data.builtin"})
    install_fake_distribution(site, "harness-sample", {"sample": "sample_plugin"})
    pm = get_plugin_manager()
    assert pm.load_errors == [] and "sample" not in pm.origins  # autoload is off in tests
    assert registry.list_attacks("fgsm") == ["fgsm"]  # no duplicate-name error


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
    with pytest.raises(PluginError,
                       match="Plugin 'wrong_spec_plugin' returned BackboneSpec from harness_register_attacks"):
        registry.list_attacks()


def test_trace_hooks_writes_hook_calls(fresh_plugins, monkeypatch, capsys):
    monkeypatch.setenv("HARNESS_TRACE_HOOKS", "1")
    pm = HarnessPluginManager()
    pm.load_builtins()
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


TEAM_PLUGINS = """
from harness import hookimpl
from harness.specs import AttackSpec

TEAM = "{team}"


class TeamAttack:
    # a do-nothing attack that meets the attack contract and says whose it is

    team = TEAM

    def __init__(self, eps=0.0):
        self.config = type("Config", (), {{"eps": float(eps), "norm": "linf"}})()

    def __call__(self, model, x, y=None, target=None):
        return x


def make_attack(**params):
    return TeamAttack(**params)


@hookimpl
def harness_register_attacks():
    return [AttackSpec(name="team-attack", factory="team_plugins:make_attack", description="from " + TEAM,
                       params={{"eps": 0.0}})]
"""


def team_folder(tmp_path, team: str):
    folder = tmp_path / team
    folder.mkdir()
    (folder / "team_plugins.py").write_text(TEAM_PLUGINS.format(team=team))
    return folder


def test_same_named_modules_of_two_folders_stay_apart(tmp_path, fresh_plugins):
    first, second = team_folder(tmp_path, "first"), team_folder(tmp_path, "second")
    for folder in (first, second, first):
        with folder_plugins(folder, ["team_plugins"], declared_in=folder / "x.toml") as names:
            assert names == [f"{folder}/team_plugins"]
            spec = registry.get_attack("team-attack")
            assert spec.description == f"from {folder.name}" and spec.source == names[0]
            assert registry.create_attack("team-attack").team == folder.name  # the lazy factory path resolves here too
        assert registry.list_attacks("team-*") == [] and "team_plugins" not in sys.modules
        assert str(folder) not in sys.path


def test_folder_plugins_nest_and_import_once(tmp_path, fresh_plugins):
    folder = team_folder(tmp_path, "first")
    (folder / "team_plugins.py").write_text(TEAM_PLUGINS.format(team="first") + "\nimport builtins\n"
                                            "builtins.team_imports = getattr(builtins, 'team_imports', 0) + 1\n")
    import builtins

    with folder_plugins(folder, ["team_plugins"], declared_in=folder / "x.toml"):
        with folder_plugins(folder, ["team_plugins"], declared_in=folder / "x.toml"):
            assert registry.list_attacks("team-*") == ["team-attack"]
        assert registry.list_attacks("team-*") == ["team-attack"]  # the inner block leaves the outer's plugins
    with folder_plugins(folder, ["team_plugins"], declared_in=folder / "x.toml"):
        assert registry.get_attack("team-attack").description == "from first"
    assert builtins.team_imports == 1
    del builtins.team_imports


def test_folder_plugin_import_error_names_the_file(tmp_path, fresh_plugins):
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "team_plugins.py").write_text("import harness_dependency_that_does_not_exist\n")
    with pytest.raises(UsageError) as info:
        with folder_plugins(folder, ["team_plugins"], declared_in=folder / "recipe.toml"):
            pass
    assert info.value.message == (f"{folder / 'recipe.toml'}: plugins: module 'team_plugins' failed to import: "
                                  "ModuleNotFoundError: No module named 'harness_dependency_that_does_not_exist'")
    assert "team_plugins" not in get_plugin_manager().origins and str(folder) not in sys.path


def test_thirdparty_package_is_listed_by_harness_plugins(thirdparty_plugins):
    from typer.testing import CliRunner

    from harness.cli.main import app

    assert get_plugin_manager().origins["extra"].distribution == "harness-extra"
    result = CliRunner().invoke(app, ["plugins", "-k", "extra-*"], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    rows = {line.split()[1]: line for line in result.output.splitlines() if " extra-" in line}
    assert set(rows) == {"extra-rfgsm", "extra-invert-patch"}
    assert "from harness-extra 0.3.0" in result.output  # one distribution: named in the caption
    mixed = CliRunner().invoke(app, ["plugins", "attack"], env={"COLUMNS": "250"}).output
    assert any("extra-rfgsm" in line and "harness-extra 0.3.0" in line for line in mixed.splitlines())
    assert any(" fgsm " in line and "harness " in line for line in mixed.splitlines())  # a "from" column
    assert "2 plugins" in result.output


def test_thirdparty_augmentation_keeps_the_neutral_contract(thirdparty_plugins):
    import numpy as np

    images = np.random.default_rng(0).integers(0, 256, size=(6, 8, 8, 1), dtype=np.uint8)
    augmentation = registry.create_augmentation("extra-invert-patch", framework="torch", severity=2)
    out = augmentation(images, generator=np.random.default_rng(1))
    assert out.shape == images.shape and out.dtype == np.uint8 and (out != images).any()
    assert (out == augmentation(images, generator=np.random.default_rng(1))).all()  # seeded by the generator
