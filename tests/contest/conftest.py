"""Fixtures for the contest tests: a clean-only digits split (no plugin, no training: built in a second) and
copies of the tiny test submission under other teams and names."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from helpers import TEST_SUBMISSIONS

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


def tiny_copy(folder: Path, team: str = "tests", name: str = "tiny", changes: dict[str, str] | None = None) -> Path:
    """tests/submissions/tiny copied to ``folder`` with its team and name set and each {old: new} text change."""
    shutil.copytree(TEST_SUBMISSIONS / "tiny", folder)
    path = folder / "submission.toml"
    text = path.read_text().replace('team = "tests"', f'team = "{team}"').replace('name = "tiny"', f'name = "{name}"')
    for old, new in (changes or {}).items():
        text = text.replace(old, new)
    path.write_text(text)
    return folder


def write_contest(folder: Path, text: str) -> Path:
    """``folder/contest.toml`` holding ``text``."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "contest.toml"
    path.write_text(text)
    return path
