"""``harness site build|check``: the static web site of a results store (docs/site.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .common import console, error_console

app = typer.Typer(help="The static web site of a results store: leaderboards and one page per submission.",
                  no_args_is_help=True)


@app.command("build")
def build(
    db: Path = typer.Argument(..., help="SQLite results store (harness score --db, or a contest's results.sqlite)."),
    out: Path = typer.Option(..., "--out", help="Site folder, replaced as a whole (new, empty or an earlier site)."),
    private: Optional[bool] = typer.Option(None, "--private/--public",
                                           help="Show the private (or public) partition. Default: public, or "
                                                "private once the contest's deadline passed with reveal_private."),
    split_hash: Optional[str] = typer.Option(None, "--split-hash", help="This split (a prefix will do). Default: "
                                             "the contest's split, else the latest scored."),
    specs: Optional[bool] = typer.Option(None, "--specs/--no-specs",
                                         help="Show (or hide) each result's submission.toml. Default: shown, "
                                              "unless the contest says publish_specs = false."),
) -> None:
    """Write the site: index.html (defense board), attacks.html, one page per submission; works offline."""
    from ..site import build_site

    summary = build_site(db, out, private=private, split_hash=split_hash, specs=specs)
    console.print(f"[green]wrote[/] {summary.pages} pages ({summary.bytes / 1e6:.1f} MB, {summary.partition} "
                  f"partition) in {summary.seconds:.1f} s: {summary.out / 'index.html'}", highlight=False,
                  soft_wrap=True)


@app.command("check")
def check(
    folder: Path = typer.Argument(..., help="A folder written by harness site build."),
) -> None:
    """Check every link, image and stylesheet reference resolves inside the folder, no URL leaves it, every image
    has alt text and every page a viewport and a title. Exit 1 when any problem is found."""
    from ..site import check_site

    problems = check_site(folder)
    for problem in problems:
        error_console.print(problem, highlight=False, soft_wrap=True, markup=False)
    if problems:
        error_console.print(f"[bold red]{len(problems)} problem(s)[/] in {folder}", highlight=False)
        raise typer.Exit(1)
    pages = len(list(Path(folder).rglob("*.html")))
    console.print(f"[green]ok[/] {folder}: {pages} pages, every link and image resolves", highlight=False)
