"""Fuzzing (hypothesis) of the TOML organisers read from strangers: submission.toml and split recipes
(image files: tests/data/test_decode_fuzz.py).

Every input ends in a result or a one-line HarnessError, never another
exception or a hang (the deadline). Example counts are bounded so the module runs in well under a minute.
"""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.errors import HarnessError
from helpers import fuzz_file as written, remove_fuzz_files

FUZZ = settings(max_examples=300, deadline=3000, suppress_health_check=[HealthCheck.too_slow],
                database=None, derandomize=True)

SUBMISSION_KEYS = ["name", "team", "framework", "dataset", "description", "seed", "plugins", "dataset_params",
                   "backbone", "augmentations", "defense", "training", "profiles", "requires_gpu", "extra", "track",
                   "attack"]
INNER_KEYS = ["name", "params", "epochs", "batch_size", "lr", "optimizer", "p", "cpu", "gpu", "training", "x"]
RECIPE_SPLIT_KEYS = ["dataset", "source", "seed", "public_fraction", "limit", "name", "dataset_params", "bogus"]
PERTURBATION_KEYS = ["category", "kind", "name", "weight", "severity", "params", "framework", "reference",
                     "reference_profile", "reference_artifact", "other"]
WORDS = ["torch", "tf", "digits", "small-cnn", "standard", "fgsm", "clean", "attack", "defense", "augmentation",
         "gaussian-noise", "cpu", "", "../..", "a b", "1e309"]


def toml_value(value) -> str:
    """A value as TOML (inline tables and arrays; strings JSON-escaped, which TOML accepts or rejects)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf") if math.isinf(value) else repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return "{" + ", ".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items()) + "}"


scalars = st.one_of(st.booleans(), st.integers(-10**20, 10**20), st.floats(), st.sampled_from(WORDS),
                    st.text(max_size=12))
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(INNER_KEYS), inner, max_size=3)), max_leaves=8)


def document(keys: list[str]):
    return st.dictionaries(st.sampled_from(keys), values, max_size=8).map(
        lambda d: "".join(f"{json.dumps(k)} = {toml_value(v)}\n" for k, v in d.items()))


garbage = st.one_of(st.text(max_size=200), st.binary(max_size=200).map(lambda b: b.decode("latin-1")))


def recipe_text():
    perturbation = st.dictionaries(st.sampled_from(PERTURBATION_KEYS), values, max_size=6).map(
        lambda d: "[[perturbations]]\n" + "".join(f"{json.dumps(k)} = {toml_value(v)}\n" for k, v in d.items()))
    split = st.dictionaries(st.sampled_from(RECIPE_SPLIT_KEYS), values, max_size=7).map(
        lambda d: "[split]\n" + "".join(f"{json.dumps(k)} = {toml_value(v)}\n" for k, v in d.items()))
    return st.tuples(split, st.lists(perturbation, max_size=3)).map(lambda t: t[0] + "\n".join(t[1]))


def one_line(error: HarnessError) -> None:
    assert error.message and "\n" not in error.message and "Traceback" not in error.message


@FUZZ
@given(st.one_of(document(SUBMISSION_KEYS), garbage))
def test_submission_toml_fuzz(text):
    from harness.submission import validate_submission

    try:
        problems = validate_submission(written(text, "submission.toml").parent)
    except HarnessError as error:
        one_line(error)
        return
    assert all(isinstance(p.field, str) and isinstance(p.message, str) for p in problems)


@FUZZ
@given(st.one_of(recipe_text(), garbage))
def test_recipe_fuzz(text):
    from harness.scoring.split import Recipe, load_recipe

    try:
        assert isinstance(load_recipe(written(text, "recipe.toml")), Recipe)
    except HarnessError as error:
        one_line(error)


@pytest.fixture(autouse=True, scope="module")
def _cleanup():
    yield
    remove_fuzz_files()
