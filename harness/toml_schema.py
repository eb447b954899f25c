"""One validator for the project's TOML files (``submission.toml``, split recipes).

A schema is a mapping ``field -> Field(types, required)``. :func:`check_table` reports
unknown fields (with a did-you-mean and the list of fields), values of the wrong type
and missing required fields as :class:`Problem` s, each naming its dotted field;
:func:`check_modules` checks a ``plugins = [...]`` list of module names against the
folder that holds them. Submissions report every problem; recipes raise the first
with :func:`first_problem` (one line naming the file and the field).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from .errors import UsageError, suggest

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

_TYPE_NAMES = {str: "a string", int: "an integer", float: "a number", list: "a list", dict: "a table",
               bool: "true or false"}


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a TOML file: the field (dotted path) and what to do."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message


@dataclass(frozen=True)
class Field:
    """A field's accepted types (the first names it in messages) and whether it must be present.

    ``float`` accepts integers too (widened to float); ``bool`` is accepted only where listed.
    """

    types: tuple[type, ...]
    required: bool = False

    @property
    def type_name(self) -> str:
        return _TYPE_NAMES[self.types[0]]


def read_toml(path: Path) -> dict[str, Any]:
    """Parse a TOML file; a syntax error becomes a one-line UsageError naming the file and line."""
    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path}: not valid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise UsageError(f"{path}: not valid TOML: the file is not UTF-8 text") from None
    except OSError as exc:
        raise UsageError(f"{path}: cannot read: {exc.strerror or exc}") from None


def typed(value: Any, spec: Field) -> tuple[bool, Any]:
    """(whether ``value`` fits ``spec``, the value with an integer widened where a number is expected)."""
    if isinstance(value, bool):
        return bool in spec.types, value
    if float in spec.types and isinstance(value, int):
        return True, float(value)
    return isinstance(value, spec.types), value


def check_table(data: Mapping[str, Any], schema: Mapping[str, Field], prefix: str = "",
                problems: list[Problem] | None = None) -> tuple[dict[str, Any], list[Problem]]:
    """Check ``data`` against ``schema``: (the well-typed values, every problem in field order, then the
    missing required fields). ``prefix`` is the table's dotted path (e.g. ``"split."``)."""
    problems = [] if problems is None else problems
    values: dict[str, Any] = {}
    for key, value in data.items():
        if key not in schema:
            problems.append(Problem(f"{prefix}{key}", f"unknown field.{suggest(key, schema)} "
                                                      f"Fields: {', '.join(schema)}"))
            continue
        ok, value = typed(value, schema[key])
        if ok:
            values[key] = value
        else:
            problems.append(Problem(f"{prefix}{key}", f"must be {schema[key].type_name}, got {value!r}"))
    for key, spec in schema.items():
        if spec.required and key not in data:
            problems.append(Problem(f"{prefix}{key}", "missing (required)"))
    return values, problems


def check_modules(modules: Any, folder: Path, field: str = "plugins") -> list[Problem]:
    """A ``plugins`` list: module names, each a ``NAME.py`` or ``NAME/__init__.py`` in ``folder``."""
    if not isinstance(modules, list):
        return [Problem(field, f"must be a list of module names, got {modules!r}")]
    problems = []
    for i, module in enumerate(modules):
        if not isinstance(module, str) or not module.isidentifier():
            problems.append(Problem(f"{field}[{i}]", f"must be a module name in this folder, got {module!r}"))
        elif not ((folder / f"{module}.py").is_file() or (folder / module / "__init__.py").is_file()):
            problems.append(Problem(f"{field}[{i}]", f"no module '{module}' in {folder} "
                                                     f"(expected {module}.py or {module}/__init__.py)"))
    return problems


def first_problem(path: Path, problems: list[Problem]) -> None:
    """Raise the first problem as a one-line UsageError ``PATH: field: message`` (nothing when none)."""
    if problems:
        raise UsageError(f"{path}: {problems[0]}")
