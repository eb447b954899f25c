"""One exception hierarchy for the whole harness.

The CLI turns a :class:`HarnessError` into one line plus an optional hint;
:class:`UsageError` (bad input) exits with code 2, anything else with code 1.
"""

from __future__ import annotations

import difflib
from typing import Iterable


class HarnessError(Exception):
    """Base class of every error the harness raises on purpose."""

    exit_code = 1

    def __init__(self, message: str, *, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint


class UsageError(HarnessError):
    """The user gave something wrong: a name, a file, a field, a value."""

    exit_code = 2


class PluginError(UsageError):
    """A plugin is unknown, duplicated or broken."""


class DataError(UsageError):
    """A dataset file or cache is missing, corrupt or malformed."""


class DownloadError(HarnessError):
    """A download (dataset, pretrained weights) could not happen."""


def suggest(name: str, choices: Iterable[str]) -> str:
    """' Did you mean 'x'?' for the closest of ``choices`` to ``name``, or ''."""
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f" Did you mean '{close[0]}'?" if close else ""
