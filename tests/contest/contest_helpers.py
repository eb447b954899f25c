"""Helpers for the contest tests: copies of the tiny test submission under other teams and names, contest
files."""

from __future__ import annotations

import shutil
from pathlib import Path

from helpers import TEST_SUBMISSIONS


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
