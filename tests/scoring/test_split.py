"""The hidden split: recipe errors, what goes where, manifest checks, determinism."""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest

from harness.errors import UsageError
from harness.scoring.split import allocate, build_split, load_recipe, open_split, verify_split

from conftest import write_recipe
from helpers import TEST_SUBMISSIONS


def test_layout_partition_and_tags(hidden_split):
    participants = sorted(p.name for p in (hidden_split / "images").iterdir())
    assert participants == ["ids.json", "images.npy", "manifest.json"]  # no labels, tags or recipe
    organiser = sorted(p.name for p in (hidden_split / "organiser").iterdir())
    assert organiser == ["labels.npy", "recipe.toml", "summary.json", "tags.csv"]
    split = open_split(hidden_split)
    images = np.load(split.images_path)
    assert images.shape == (120, 8, 8, 1) and images.dtype == np.uint8
    assert split.public.sum() == split.summary["public_count"] == 36  # 30% of 120
    assert split.summary["categories"] == {"clean": 60, "noise": 30, "fgsm": 30}
    categories = np.asarray(split.categories)  # stratified: 30% of each category is public
    assert {c: int(split.public[categories == c].sum()) for c in ("clean", "noise", "fgsm")} == {
        "clean": 18, "noise": 9, "fgsm": 9}
    with open(hidden_split / "organiser" / "tags.csv") as handle:
        tags = {row["perturbation"] for row in csv.DictReader(handle)}
    assert tags == {"clean", "augmentation:gaussian-noise@3", "attack:fgsm{eps=0.1}"}


def test_perturbations_change_images_within_budget(hidden_split, cache_dir):
    from harness.data import load_dataset

    split = open_split(hidden_split)
    images = np.load(split.images_path).astype(int)
    test = load_dataset("digits").split("test")
    originals = {}
    for image, label in zip(test.images, test.labels):
        originals.setdefault(int(label), []).append(np.asarray(image, dtype=int))
    categories = np.asarray(split.categories)
    for i in np.flatnonzero(categories == "fgsm")[:10]:
        # the nearest original of the same class is within the 0.1 budget (25 grey levels)
        distance = min(np.abs(images[i] - o).max() for o in originals[int(split.labels[i])])
        assert 0 < distance <= 25
    for i in np.flatnonzero(categories == "clean")[:10]:
        assert min(np.abs(images[i] - o).max() for o in originals[int(split.labels[i])]) == 0


def test_manifest_catches_changed_missing_and_added_files(hidden_split, tmp_path):
    copy = tmp_path / "split"
    shutil.copytree(hidden_split, copy)
    split_hash = verify_split(copy)
    assert split_hash == json.loads((hidden_split / "manifest.json").read_text())["split_hash"]
    labels = copy / "organiser" / "labels.npy"
    original = labels.read_bytes()
    labels.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
    with pytest.raises(UsageError, match=r"labels.npy: changed since the split was built \(sha256 mismatch\)$"):
        verify_split(copy)
    labels.unlink()
    with pytest.raises(UsageError, match=r"labels.npy: missing from the hidden split"):
        verify_split(copy)
    labels.write_bytes(original)
    (copy / "images" / "extra.npy").write_bytes(b"x")
    with pytest.raises(UsageError, match=r"extra.npy: not part of the hidden split"):
        verify_split(copy)


def test_same_recipe_same_split(hidden_split, tmp_path):
    recipe = tmp_path / "recipe.toml"
    shutil.copyfile(hidden_split / "organiser" / "recipe.toml", recipe)
    # reuse the session's trained reference so the attack is identical
    references = hidden_split.parent / "references"
    summary = build_split(load_recipe(recipe), tmp_path / "again", references=references, progress=False)
    assert summary["split_hash"] == verify_split(hidden_split)


def test_allocate_gives_exact_shares():
    rng = np.random.default_rng(0)
    assignment = allocate([2, 1, 1], 10, rng)
    assert np.bincount(assignment).tolist() == [5, 3, 2] or np.bincount(assignment).tolist() == [5, 2, 3]


@pytest.mark.parametrize("change, message", [
    (('seed = 4242', ''), "split.seed: missing (required)"),
    (('seed = 4242', 'seed = "x"'), "split.seed: must be an integer, got 'x'"),
    (('public_fraction = 0.3', 'public_fraction = 1.5'),
     "split.public_fraction: must be between 0 and 1 (exclusive), got 1.5"),
    (('kind = "augmentation"', 'kind = "augment"'),
     "perturbations[1].kind: must be one of clean, augmentation, attack, adaptive, got 'augment'. "
     "Did you mean 'augmentation'?"),
    (('severity = 3', 'severity = 9'), "perturbations[1].severity: must be 1..5, got 9"),
    (('severity = 3', 'severty = 3'), "perturbations[1].severty: unknown field. Did you mean 'severity'? Fields: "),
    (('reference = ', 'referenc = '), "perturbations[2].referenc: unknown field. Did you mean 'reference'?"),
    (('limit = 120', 'limit = 0'), "split.limit: must be at least 1, got 0"),
])
def test_recipe_errors_name_file_and_field(tmp_path, change, message):
    recipe = write_recipe(tmp_path, TEST_SUBMISSIONS / "tiny", **{change[0]: change[1]})
    with pytest.raises(UsageError) as info:
        load_recipe(recipe)
    assert info.value.message.startswith(f"{recipe}: {message}")


def test_recipe_syntax_and_missing_file(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[split\n")
    with pytest.raises(UsageError, match=rf"^{bad}: not valid TOML: "):
        load_recipe(bad)
    with pytest.raises(UsageError, match="no such recipe file"):
        load_recipe(tmp_path / "none.toml")


def test_split_build_command_and_a_missing_plugin(tmp_path, hidden_split):
    from typer.testing import CliRunner

    from harness.cli.main import app

    recipe = write_recipe(tmp_path, TEST_SUBMISSIONS / "tiny", **{'name = "gaussian-noise"': 'name = "gausian-noise"'})
    result = CliRunner().invoke(app, ["split", "build", str(recipe), "--out", str(tmp_path / "s"), "--no-progress"])
    assert result.exit_code == 2
    assert "Unknown augmentation 'gausian-noise'. Did you mean 'gaussian-noise'?" in result.output
    assert not (tmp_path / "s").exists()  # nothing half-written
    ok = CliRunner().invoke(app, ["split", "verify", str(hidden_split)])
    assert ok.exit_code == 0 and "ok" in ok.output


EXTRA_RECIPE = """
[split]
dataset = "digits"
source = "test"
seed = 99
limit = 60

[[perturbations]]
category = "clean"
weight = 1

[[perturbations]]
category = "{category}"
kind = "{kind}"
name = "{name}"
{extra}
weight = 2
"""


def _extra_split(tmp_path, hidden_split, **fields):
    recipe = tmp_path / "recipe.toml"
    recipe.write_text(EXTRA_RECIPE.format(**fields))
    summary = build_split(load_recipe(recipe), tmp_path / "split", references=tmp_path / "refs", progress=False)
    assert summary["categories"] == {"clean": 20, fields["category"]: 40}
    return open_split(tmp_path / "split")


def test_thirdparty_attack_in_a_recipe(tmp_path, hidden_split, thirdparty_plugins):
    reference = hidden_split.parent / "references" / "tiny" / "cpu"  # the session's trained tiny reference
    split = _extra_split(tmp_path, hidden_split, category="rfgsm", kind="attack", name="extra-rfgsm",
                         extra=f'params = {{ eps = 0.1 }}\nreference_artifact = "{reference}"')
    with open(tmp_path / "split" / "organiser" / "tags.csv") as handle:
        assert {row["perturbation"] for row in csv.DictReader(handle)} == {"clean", "attack:extra-rfgsm{eps=0.1}"}
    assert np.load(split.images_path).shape == (60, 8, 8, 1)


def test_thirdparty_augmentation_in_a_recipe(tmp_path, hidden_split, thirdparty_plugins):
    split = _extra_split(tmp_path, hidden_split, category="patch", kind="augmentation", name="extra-invert-patch",
                         extra="severity = 2")
    assert sum(c == "patch" for c in split.categories) == 40


def test_recipe_plugin_modules_register_while_building(tmp_path, hidden_split):
    """``plugins = [...]`` next to the recipe: its attack is used for the split, and gone afterwards."""
    from harness.registry import list_attacks

    (tmp_path / "recipe_attacks.py").write_text(
        "from types import SimpleNamespace\n\n"
        "from harness import hookimpl\n"
        "from harness.specs import AttackSpec\n\n\n"
        "class Brighten:\n"
        "    threat = 'black-box'\n\n"
        "    def __init__(self, eps=0.1):\n"
        "        self.config = SimpleNamespace(eps=eps, norm='linf')\n\n"
        "    def __call__(self, model, x, y=None, target=None):\n"
        "        return (x + self.config.eps).clamp(0, 1)\n\n\n"
        "@hookimpl\n"
        "def harness_register_attacks():\n"
        "    return [AttackSpec(name='recipe-brighten', factory=Brighten, framework='torch', params={'eps': 0.1})]\n")
    reference = hidden_split.parent / "references" / "tiny" / "cpu"
    recipe = tmp_path / "recipe.toml"
    recipe.write_text('plugins = ["recipe_attacks"]\n' + EXTRA_RECIPE.format(
        category="mine", kind="attack", name="recipe-brighten", extra=f'reference_artifact = "{reference}"'))
    assert load_recipe(recipe).plugins == ("recipe_attacks",)
    build_split(load_recipe(recipe), tmp_path / "split", references=tmp_path / "refs", progress=False)
    assert open_split(tmp_path / "split").summary["categories"] == {"clean": 20, "mine": 40}
    assert "recipe-brighten" not in list_attacks()
    recipe.write_text('plugins = ["missing_module"]\n' + EXTRA_RECIPE.format(
        category="mine", kind="attack", name="recipe-brighten", extra=f'reference_artifact = "{reference}"'))
    with pytest.raises(UsageError) as info:
        load_recipe(recipe)
    assert info.value.message == (f"{recipe}: plugins[0]: no module 'missing_module' in {tmp_path} "
                                  "(expected missing_module.py or missing_module/__init__.py)")


def _runs_with(tiny_artifact, tmp_path):
    """A runs folder laid out as ``harness train`` writes it, holding the session's trained tiny model."""
    runs = tmp_path / "runs"
    shutil.copytree(tiny_artifact, runs / tiny_artifact.parent.name / tiny_artifact.name)
    return runs


def test_split_build_reuses_a_model_trained_by_harness_train(tmp_path, tiny_artifact, hidden_split,
                                                             submissions_dir, monkeypatch):
    from typer.testing import CliRunner

    from harness import workflow
    from harness.cli.main import app

    def no_training(*args, **kwargs):
        raise AssertionError("split build trained a reference that harness train had trained")

    monkeypatch.setattr(workflow, "train_submission", no_training)
    runs = _runs_with(tiny_artifact, tmp_path)
    recipe = write_recipe(tmp_path, submissions_dir / "tiny")
    result = CliRunner().invoke(app, ["split", "build", str(recipe), "--out", str(tmp_path / "s"), "--no-progress",
                                      "--runs", str(runs), "--references", str(tmp_path / "refs")],
                                env={"COLUMNS": "300"})
    assert result.exit_code == 0, result.output
    used = runs / tiny_artifact.parent.name / tiny_artifact.name
    assert f"reference for attack:fgsm{{eps=0.1}}: reused {used} (same content hash)" in result.output
    assert verify_split(tmp_path / "s") == verify_split(hidden_split)  # the same model: the same split


def test_split_build_retrains_when_the_content_hash_differs(tmp_path, tiny_artifact, submissions_dir, monkeypatch):
    from harness import workflow

    def training(submission, run_dir, **kwargs):
        raise RuntimeError(f"training {submission.name} into {run_dir}")

    monkeypatch.setattr(workflow, "train_submission", training)
    runs = _runs_with(tiny_artifact, tmp_path)
    record = runs / tiny_artifact.parent.name / tiny_artifact.name / "model.json"
    record.write_text(json.dumps({**json.loads(record.read_text()), "content_hash": "edited-since"}))
    recipe = write_recipe(tmp_path, submissions_dir / "tiny")
    with pytest.raises(RuntimeError, match=f"into {tmp_path / 'refs'}"):
        build_split(load_recipe(recipe), tmp_path / "s", references=tmp_path / "refs", runs=runs, progress=False)
