"""``harness plugins [KIND]``: a table of every registered plugin."""

from __future__ import annotations

from typing import Optional

import typer
from rich.table import Table

from .common import console, error_console


def plugins(
    kind: Optional[str] = typer.Argument(None,
                                         help="Only this kind: dataset, backbone, augmentation, attack, defense."),
    pattern: str = typer.Option("*", "--pattern", "-k", help="Wildcard filter on names, e.g. 'pgd*'."),
    framework: Optional[str] = typer.Option(None, "--framework", "-f", help="Only plugins usable with: torch, tf."),
) -> None:
    """List every plugin: kind, name, framework, description, distribution and version."""
    from ..plugins import get_plugin_manager
    from ..registry import list_plugins, registry, variants
    from ..specs import KINDS

    kinds = KINDS
    if kind is not None:
        kind = kind.rstrip("s") if kind.rstrip("s") in KINDS else kind
        registry(kind)  # unknown kind -> one-line error with a suggestion
        kinds = (kind,)
    table = Table(title="harness plugins", show_lines=False)
    table.add_column("kind", no_wrap=True)
    table.add_column("name", no_wrap=True, style="bold")
    table.add_column("framework", no_wrap=True)
    table.add_column("description", ratio=1, min_width=24, overflow="fold")
    table.add_column("distribution", no_wrap=True)
    table.add_column("version", no_wrap=True)
    rows = 0
    for each in kinds:
        for name in list_plugins(each, pattern, framework=framework):
            for spec in variants(each, name).values():
                if framework is not None and spec.framework not in (framework, "any"):
                    continue
                framework_cell = spec.framework if spec.available else f"{spec.framework} [red](not installed)[/]"
                table.add_row(each, name, framework_cell, spec.description, spec.distribution, spec.version)
                rows += 1
    console.print(table)
    console.print(f"{rows} plugins")
    for failure in get_plugin_manager().load_errors:
        error_console.print(f"[yellow]Warning:[/] {failure}", highlight=False, soft_wrap=True)
