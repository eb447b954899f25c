"""Adaptive recipe entries: parsing errors name file and field in one line; a built split keeps their images
clean and records the settings and a per-category seed for the second scoring phase."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from harness.errors import UsageError
from harness.scoring.adaptive import adaptive_categories
from harness.scoring.split import build_split, load_recipe, open_split

HEAD = """
[split]
dataset = "digits"
source = "test"
seed = 77
limit = 30

[[perturbations]]
category = "clean"
kind = "clean"

[[perturbations]]
category = "adv"
"""


def recipe(tmp_path, entry: str):
    path = tmp_path / "recipe.toml"
    path.write_text(HEAD + entry + "\n")
    return path


@pytest.mark.parametrize("entry, field, message", [
    ('kind = "adaptive"\nname = "pgd"', "eps", "missing or not > 0"),
    ('kind = "adaptive"\nname = "pgd"\neps = -0.1', "eps", "missing or not > 0"),
    ('kind = "adaptive"\nname = "pgdd"\neps = 0.1', "name", "Unknown attack 'pgdd'. Did you mean 'pgd'?"),
    ('kind = "adaptive"\nname = "pgd"\neps = 0.1\nnorm = "l1"', "norm", "must be one of linf, l2"),
    ('kind = "adaptive"\nname = "pgd"\neps = 0.1\nparams = { stepz = 3 }', "params",
     "attack 'pgd' has no parameter 'stepz'. Did you mean 'steps'?"),
    ('kind = "adaptive"\nname = "pgd"\neps = 0.1\nparams = { eps = 0.2 }', "params", "eps is set by the ensemble"),
    ('kind = "adaptive"\nname = "pgd"\neps = 0.1\nparams = { norm = "l2" }', "norm", "set the norm with"),
    ('kind = "adaptive"\nname = "pgd"\neps = 0.1\nreference = "x"', "reference", "adaptive entries take no"),
    ('kind = "adaptive"\nname = "pgd"\neps = 0.1\nmembers = ["pgd"]', "members", "only name = \"ensemble\""),
    ('kind = "adaptive"\nname = "ensemble"\neps = 0.1\nmembers = ["pgd", { name = "square", params = { itr = 1 } }]',
     "members[1]", "attack 'square' has no parameter 'itr'"),
    ('kind = "adaptive"\nname = "ensemble"\neps = 0.1\nmembers = [3]', "members[0]", "an attack name or a table"),
    ('kind = "adaptive"\nname = "ensemble"\neps = 0.1\nmembers = ["pgd", "pgd"]', "members[1]", "a member twice"),
    ('kind = "adaptive"\nname = "pgd"\neps = nan', "eps", "missing or not > 0"),
    ('kind = "augmentation"\nname = "gaussian-noise"\neps = 0.1', "eps", "only adaptive entries"),
])
def test_recipe_errors_name_file_and_field(tmp_path, entry, field, message):
    with pytest.raises(UsageError) as caught:
        load_recipe(recipe(tmp_path, entry))
    text = caught.value.message
    assert "\n" not in text and text.startswith(f"{tmp_path / 'recipe.toml'}: perturbations[1].{field}: ")
    assert message in text


def test_adaptive_category_holds_no_other_entry(tmp_path):
    path = recipe(tmp_path, 'kind = "adaptive"\nname = "pgd"\neps = 0.1\n\n[[perturbations]]\ncategory = "adv"\n'
                            'kind = "augmentation"\nname = "gaussian-noise"')
    with pytest.raises(UsageError, match=r"perturbations\[1\]\.category: 'adv' is adaptive"):
        load_recipe(path)


def test_parsed_entry_tag_and_settings(tmp_path):
    entry = load_recipe(recipe(tmp_path, 'kind = "adaptive"\nname = "ensemble"\neps = 0.5\nnorm = "l2"\n'
                                         'members = ["pgd", { name = "square", params = { max_iter = 20 } }]'))
    adv = entry.perturbations[1]
    assert adv.tag == "adaptive:ensemble{eps=0.5,members=pgd+square,norm=l2}"
    assert adv.adaptive_settings(9) == {"attack": "ensemble", "eps": 0.5, "norm": "l2", "params": {},
                                        "members": ["pgd", {"name": "square", "params": {"max_iter": 20}}],
                                        "seed": 9}


def test_built_split_keeps_adaptive_images_clean_and_records_settings(tmp_path):
    adaptive = recipe(tmp_path, 'kind = "adaptive"\nname = "pgd"\neps = 0.1\nparams = { steps = 3 }')
    (tmp_path / "plain").mkdir()
    plain = recipe(tmp_path / "plain", 'kind = "clean"')  # the same draws, nothing perturbed
    summary = build_split(load_recipe(adaptive), tmp_path / "split", progress=False)
    build_split(load_recipe(plain), tmp_path / "plain-split", progress=False)
    images = np.load(tmp_path / "split" / "images" / "images.npy")
    assert np.array_equal(images, np.load(tmp_path / "plain-split" / "images" / "images.npy"))
    settings = summary["adaptive"]["adv"]
    assert settings == json.loads((tmp_path / "split" / "organiser" / "summary.json").read_text())["adaptive"]["adv"]
    assert {k: settings[k] for k in ("attack", "eps", "norm", "params", "members")} == {
        "attack": "pgd", "eps": 0.1, "norm": "linf", "params": {"steps": 3}, "members": []}
    assert isinstance(settings["seed"], int)
    with open(tmp_path / "split" / "organiser" / "tags.csv", newline="") as handle:
        tags = {row["perturbation"] for row in csv.DictReader(handle) if row["category"] == "adv"}
    assert tags == {"adaptive:pgd{eps=0.1,norm=linf,steps=3}"}
    split = open_split(tmp_path / "split")
    (category,) = adaptive_categories(split)
    assert category.name == "adv" and category.seed == settings["seed"] and category.eps == 0.1
    assert np.array_equal(category.indices, np.flatnonzero(np.asarray(split.categories) == "adv"))
    assert len(category.indices) == summary["categories"]["adv"] == 15
