"""The recipe's [attack_track]: every check names file and field in one line; a built split holds the attack
track's images (no labels beside them), its labels and tags for the organiser, all in the manifest; a recipe
without the table builds the same split as before the attack track existed."""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest

from harness.errors import UsageError
from harness.scoring.split import AttackTrackRules, build_split, load_recipe, open_split, verify_split

from helpers import TEST_SUBMISSIONS

HEAD = """[split]
dataset = "digits"
source = "test"
seed = 77
limit = 30
[[perturbations]]
category = "clean"
kind = "clean"
[[perturbations]]
category = "noise"
kind = "augmentation"
name = "gaussian-noise"
severity = 2
"""
#: the split hash of HEAD alone, built before the attack track existed (commit 186b2b4)
HASH_BEFORE = "5975a48cfce7afd8e65574ae1fb1c919b581bb74c146415278ce933a2f6e2475"
TINY = TEST_SUBMISSIONS / "tiny"
TRACK = '[attack_track]\ncount = 20\neps = 0.1\n'
BASELINE = '[[attack_track.baselines]]\nname = "fgsm"\nsurrogate = "{tiny}"\n'


def recipe(tmp_path, text: str):
    path = tmp_path / "recipe.toml"
    path.write_text(HEAD + text.replace("{tiny}", str(TINY)))
    return path


@pytest.mark.parametrize("text, field, message", [
    ('[attack_track]\neps = 0.1', "attack_track.count", "missing (required)"),
    ('[attack_track]\ncount = 5', "attack_track.eps", "missing (required)"),
    ('[attack_track]\ncount = 0\neps = 0.1', "attack_track.count", "must be at least 1"),
    ('[attack_track]\ncount = 5\neps = 0', "attack_track.eps", "must be > 0"),
    ('[attack_track]\ncount = 5\neps = nan', "attack_track.eps", "must be > 0"),
    ('[attack_track]\ncount = 5\neps = 0.1\nnorm = "l3"', "attack_track.norm", "must be one of linf, l2"),
    ('[attack_track]\ncount = 5\neps = 0.1\naccess = "whitebox"', "attack_track.access",
     "Did you mean 'white-box'?"),
    ('[attack_track]\ncount = 5\neps = 0.1\ntime_limit = 0', "attack_track.time_limit", "seconds > 0"),
    ('[attack_track]\ncount = 5\neps = 0.1\ndefense_time_limit = -1', "attack_track.defense_time_limit",
     "seconds > 0"),
    ('[attack_track]\ncount = 5\neps = 0.1\ncounts = 3', "attack_track.counts", "unknown field. Did you mean"),
    ('[attack_track]\ncount = 5\neps = 0.1\nsource = "val"', "attack_track.source",
     "must be the held-out split 'test' ([split] source): defenses train with the dataset's other splits"),
    (TRACK + '[[attack_track.baselines]]\nname = "fgsn"\nsurrogate = "{tiny}"', "attack_track.baselines[0].name",
     "Unknown attack 'fgsn'. Did you mean 'fgsm'?"),
    (TRACK + 'access = "white-box"\n[[attack_track.baselines]]\nname = "nsl-perturb"\nframework = "tf"',
     "attack_track.baselines[0].name", "attack 'nsl-perturb' has no eps parameter"),
    (TRACK + 'access = "white-box"\n[[attack_track.baselines]]\nname = "pgd"\nframework = "jax"',
     "attack_track.baselines[0].framework", "must be one of torch, tf"),
    (TRACK + 'access = "white-box"\n[[attack_track.baselines]]\nname = "pgd"\nframework = "tf"\n'
             'params = { steps = 0 }', "attack_track.baselines[0].params", "steps must be an integer >= 1"),
    (TRACK + BASELINE + 'params = { eps = 0.3 }', "attack_track.baselines[0].params.eps",
     "set by the contest (attack_track.eps), not by the baseline"),
    (TRACK + BASELINE + 'params = { seed = 3 }', "attack_track.baselines[0].params.seed", "set by the contest"),
    (TRACK + BASELINE + 'params = { norm = "l2" }', "attack_track.baselines[0].params.norm", "set by the contest"),
    (TRACK + BASELINE + 'params = { mode = "sideways" }', "attack_track.baselines[0].params", "mode"),
    (TRACK + BASELINE + 'params = { stepz = 3 }', "attack_track.baselines[0].params", "no parameter 'stepz'"),
    (TRACK + '[[attack_track.baselines]]\nname = "fgsm"', "attack_track.baselines[0].surrogate",
     "missing: transfer baselines attack a surrogate"),
    (TRACK + '[[attack_track.baselines]]\nname = "fgsm"\nsurrogate = "nowhere"',
     "attack_track.baselines[0].surrogate", "no submission folder at"),
    (TRACK + 'access = "white-box"\n' + BASELINE, "attack_track.baselines[0].surrogate",
     "white-box baselines take no surrogate"),
    (TRACK + BASELINE + 'framework = "tf"', "attack_track.baselines[0].framework", "a torch submission, not tf"),
    (TRACK + BASELINE + BASELINE, "attack_track.baselines[1].label", "'baseline-fgsm' names another baseline"),
    (TRACK + BASELINE + 'label = "a b"', "attack_track.baselines[0].label", "letters, digits"),
    (TRACK + BASELINE + 'surrogat = "x"', "attack_track.baselines[0].surrogat", "unknown field"),
])
def test_recipe_errors_name_file_and_field(tmp_path, text, field, message):
    with pytest.raises(UsageError) as caught:
        load_recipe(recipe(tmp_path, text))
    found = caught.value.message
    assert "\n" not in found and found.startswith(f"{tmp_path / 'recipe.toml'}: {field}: ")
    assert message in found


def test_the_attacks_category_is_taken_with_an_attack_track(tmp_path):
    text = TRACK.replace("[attack_track]", '[[perturbations]]\ncategory = "attacks"\nkind = "clean"\n[attack_track]')
    with pytest.raises(UsageError, match=r"perturbations\[2\]\.category: 'attacks' is the attack track's"):
        load_recipe(recipe(tmp_path, text))


def test_parsed_rules_and_their_dict(tmp_path):
    text = TRACK + 'norm = "l2"\naccess = "transfer"\ntime_limit = 60\n' + BASELINE + \
        'params = { mode = "predicted" }\nsurrogate_profile = "cpu"\n' + BASELINE.replace('"fgsm"', '"pgd"') + \
        'label = "pgd-2"\n'
    rules = load_recipe(recipe(tmp_path, text)).attack_track
    assert (rules.source, rules.count, rules.eps, rules.norm, rules.time_limit, rules.defense_time_limit) == (
        "test", 20, 0.1, "l2", 60.0, 300.0)
    fgsm, pgd = rules.baselines
    assert (fgsm.label, fgsm.attack, dict(fgsm.params), fgsm.surrogate, fgsm.surrogate_profile, fgsm.framework) == (
        "baseline-fgsm", "fgsm", {"mode": "predicted"}, TINY.resolve(), "cpu", "torch")
    assert pgd.label == "pgd-2"
    data = json.loads(json.dumps(rules.to_dict()))
    assert data["baselines"][0]["surrogate"] == str(TINY.resolve())
    assert AttackTrackRules.from_dict(data) == rules


def test_white_box_baselines_without_surrogate(tmp_path):
    rules = load_recipe(recipe(tmp_path, TRACK + 'access = "white-box"\n[[attack_track.baselines]]\nname = "pgd"\n'
                                                 'params = { steps = 3 }\n')).attack_track
    (pgd,) = rules.baselines
    assert rules.access == "white-box" and pgd.surrogate is None and pgd.framework == "torch"


def test_build_writes_the_attack_track_and_leaves_other_splits_unchanged(tmp_path):
    plain = tmp_path / "plain"
    plain.mkdir()
    assert build_split(load_recipe(recipe(plain, "")), plain / "split", progress=False)["split_hash"] == HASH_BEFORE
    summary = build_split(load_recipe(recipe(tmp_path, TRACK + BASELINE)), tmp_path / "split", progress=False)
    root = tmp_path / "split"
    for name in ("images/images.npy", "images/ids.json", "organiser/labels.npy", "organiser/tags.csv"):
        assert (root / name).read_bytes() == (plain / "split" / name).read_bytes()  # the defense split: as before
    assert sorted(p.name for p in (root / "attack_track").iterdir()) == ["images.npy"]  # no labels beside them
    manifest = json.loads((root / "manifest.json").read_text())["files"]
    assert {"attack_track/images.npy", "organiser/attack_labels.npy", "organiser/attack_tags.csv"} <= set(manifest)
    assert verify_split(root) == summary["split_hash"] != HASH_BEFORE
    split = open_split(root)
    images = np.load(split.attack_images_path)
    assert images.shape == (20, 8, 8, 1) and images.dtype == np.uint8
    assert split.attack_public.sum() == summary["attack_track"]["public_count"] == 6  # 30% of 20
    from dataclasses import replace

    from harness.submission import content_hash

    rules, given = split.attack_track, load_recipe(tmp_path / "recipe.toml").attack_track
    (copy,) = [b.surrogate for b in rules.baselines]  # the surrogate is the split's copy, same files
    assert copy == root / "organiser" / "surrogates" / "baseline-fgsm"
    assert content_hash(copy) == content_hash(given.baselines[0].surrogate)
    assert "organiser/surrogates/baseline-fgsm/submission.toml" in manifest
    assert rules == replace(given, baselines=(replace(given.baselines[0], surrogate=copy),))
    # the split hash follows the surrogate's content, not where the organiser keeps it: the same recipe (its
    # surrogate relative to it) in two places gives one split
    hashes = []
    for place in ("here", "elsewhere/deeper"):
        folder = tmp_path / place
        shutil.copytree(given.baselines[0].surrogate, folder / "surrogate")
        text = (tmp_path / "recipe.toml").read_text().replace(str(given.baselines[0].surrogate), "surrogate")
        (folder / "recipe.toml").write_text(text)
        hashes.append(build_split(load_recipe(folder / "recipe.toml"), folder / "split", progress=False)["split_hash"])
    assert hashes[0] == hashes[1]
    assert summary["attack_track"]["count"] == 20
    with open(root / "organiser" / "attack_tags.csv", newline="") as handle:
        tags = list(csv.DictReader(handle))
    assert [t["id"] for t in tags][:2] == ["atk-00000", "atk-00001"]
    assert [int(t["label"]) for t in tags] == list(split.attack_labels)
    from harness.data import load_dataset

    test = load_dataset("digits").split("test")
    for image, label in zip(images[:5], split.attack_labels[:5]):  # clean source images with their labels
        match = [i for i in range(len(test)) if np.array_equal(test.images[i], image)]
        assert match and int(test.labels[match[0]]) == label
    assert open_split(plain / "split").attack_track is None and open_split(plain / "split").attack_labels is None


def test_build_errors_name_attack_track_fields(tmp_path):
    with pytest.raises(UsageError, match=r"attack_track\.count: 5000 images asked, split 'test' holds"):
        build_split(load_recipe(recipe(tmp_path, TRACK.replace("20", "5000"))), tmp_path / "s", progress=False)
    assert not (tmp_path / "s").exists()


def test_the_split_table_states_the_attack_track():
    from harness.cli.split_cmd import split_table

    summary = {"count": 120, "public_count": 36, "categories": {"clean": 120},
               "attack_track": {"count": 20, "public_count": 6, "access": "transfer", "norm": "linf", "eps": 0.1,
                                "baselines": [{"label": "baseline-fgsm"}, {"label": "baseline-pgd"}]}}
    assert split_table(summary).caption == ("attack track: 20 images (6 public), transfer access, linf eps 0.1; "
                                            "baselines: baseline-fgsm, baseline-pgd")
    assert split_table({**summary, "attack_track": None}).caption is None
