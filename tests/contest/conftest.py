"""Fixtures for the contest tests: a clean-only digits split (no plugin, no training: built in a second).
Plain helpers are in contest_helpers.py (a module name of its own: tests/scoring has a conftest too)."""

from __future__ import annotations

from pathlib import Path

import pytest

RECIPE = """
[split]
dataset = "digits"
source = "test"
seed = 1818
public_fraction = 0.5
limit = 40

[[perturbations]]
category = "clean"
kind = "clean"
"""


@pytest.fixture(scope="session")
def contest_recipe(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("contest-recipe") / "recipe.toml"
    path.write_text(RECIPE)
    return path


@pytest.fixture(scope="session")
def contest_split(contest_recipe) -> Path:
    """A 40-image clean split of the digits test images."""
    from harness.scoring.split import build_split, load_recipe

    out = contest_recipe.parent / "split"
    build_split(load_recipe(contest_recipe), out, progress=False)
    return out
