"""Pieces every command shares: the error-handling root group, consoles, parameter parsing."""

from __future__ import annotations

import ast
import os
from typing import Any

import typer
from typer.core import TyperGroup
from rich.console import Console

from ..errors import HarnessError, UsageError

console = Console()
error_console = Console(stderr=True)


def debug_enabled() -> bool:
    return os.environ.get("HARNESS_DEBUG", "").strip().lower() not in ("", "0", "false", "no")


def report_error(error: HarnessError) -> None:
    """One line (plus a hint line) on stderr."""
    error_console.print(f"[bold red]Error:[/] {error.message}", highlight=False, soft_wrap=True)
    if error.hint:
        error_console.print(f"[dim]Hint: {error.hint}[/]", highlight=False, soft_wrap=True)


class HarnessGroup(TyperGroup):
    """The app's root group: errors of every command and sub-command handled here, once.

    A HarnessError becomes one line and exit code 2 (bad input) or 1 (failure); anything unexpected also
    becomes one line (exit 1); HARNESS_DEBUG=1 shows tracebacks instead. Click's own errors (bad options,
    ``typer.Exit``) pass through to typer's click, which reports them as before.
    """

    def invoke(self, ctx: typer.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, typer.TyperException):  # click's own: bad options, exits
            raise
        except HarnessError as error:
            if debug_enabled():
                raise
            report_error(error)
            raise typer.Exit(error.exit_code) from None
        except KeyboardInterrupt:
            error_console.print("[bold red]Interrupted[/]")
            raise typer.Exit(130) from None
        except Exception as error:  # noqa: BLE001 - last resort: one line, traceback with HARNESS_DEBUG=1
            if debug_enabled():
                raise
            error_console.print(
                f"[bold red]Error:[/] unexpected {type(error).__name__}: {error}", highlight=False, soft_wrap=True
            )
            error_console.print("[dim]Hint: rerun with HARNESS_DEBUG=1 for the traceback[/]", highlight=False)
            raise typer.Exit(1) from None


def parse_value(text: str) -> Any:
    """'3' -> 3, '0.5' -> 0.5, 'true' -> True, '[1, 2]' -> [1, 2], 'none' -> None, else the string."""
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("none", "null"):
        return None
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def parse_params(items: list[str] | None) -> dict[str, Any]:
    """``["a=1", "b=x"]`` -> ``{"a": 1, "b": "x"}``; a malformed item is a UsageError."""
    params: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--param '{item}': expected KEY=VALUE")
        params[key.strip()] = parse_value(value)
    return params
