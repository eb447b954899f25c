"""``harness plugins [KIND]``: a table of every registered plugin."""

from __future__ import annotations

from typing import Optional

import typer
from rich import box
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
    found = []
    for each in kinds:
        for name in list_plugins(each, pattern, framework=framework):
            for spec in variants(each, name).values():
                if framework is None or spec.framework in (framework, "any"):
                    found.append((each, name, spec))
    console.print(plugins_table(found))
    rows = len(found)
    console.print(f"{rows} plugins")
    for failure in get_plugin_manager().load_errors:
        error_console.print(f"[yellow]Warning:[/] {failure}", highlight=False, soft_wrap=True)


def plugins_table(found: list) -> Table:
    """(kind, name, spec) rows in a table that fits 80 columns: names and descriptions wrap, never "…"; where
    every plugin comes from one distribution, the caption names it instead of a column."""
    sources = {f"{spec.distribution} {spec.version}" for _, _, spec in found}
    table = Table(title="harness plugins", box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 1),
                  caption=f"from {sources.pop()}" if len(sources) == 1 else None)
    table.add_column("kind", no_wrap=True)
    table.add_column("name", style="bold", overflow="fold")
    table.add_column("framework", overflow="fold")
    table.add_column("description", ratio=1, overflow="fold")
    if sources:
        table.add_column("from", overflow="fold")
    for each, name, spec in found:
        framework_cell = spec.framework if spec.available else f"{spec.framework} [red](not installed)[/]"
        source = [f"{spec.distribution} {spec.version}"] if sources else []
        table.add_row(each, name, framework_cell, spec.description, *source)
    return table
