"""``harness split build|verify``: the hidden perturbed test split (organisers)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from .common import console

app = typer.Typer(help="Build and check the hidden perturbed test split (organisers).", no_args_is_help=True)


@app.command("build")
def split_build(
    recipe: Path = typer.Argument(..., help="Recipe TOML: held-out images, perturbations, proportions, secret seed."),
    out: Path = typer.Option(..., "--out", "-o", help="Split folder to write (replaced atomically)."),
    references: Path = typer.Option(Path("runs/references"), "--references",
                                    help="Where reference submissions for attacks are trained (and reused)."),
    runs: Path = typer.Option(Path("runs"), "--runs",
                              help="Where harness train wrote its models: a reference trained there with the same "
                                   "content hash (runs/NAME/PROFILE) is reused, not retrained."),
    progress: bool = typer.Option(True, "--progress/--no-progress",
                                  help="Progress: bars on a terminal, a timed line per stage when piped."),
) -> None:
    """Write OUT/images (for participants), OUT/organiser (labels, tags, recipe) and OUT/manifest.json."""
    from ..scoring.split import build_split, load_recipe

    summary = build_split(load_recipe(recipe), out, references=references, runs=runs, progress=progress)
    console.print(split_table(summary))
    for tag, used in summary["references"].items():
        console.print(f"reference for {tag}: {used}", highlight=False, soft_wrap=True)
    console.print(f"split hash {summary['split_hash'][:16]}: give participants {out / 'images'} only; "
                  f"keep {out / 'organiser'} private")


def split_table(summary: dict) -> Table:
    """The split's categories and image counts; with an attack track, its rules in the caption."""
    table = Table(title=f"hidden split: {summary['count']} images ({summary['public_count']} public)")
    table.add_column("category")
    table.add_column("images", justify="right")
    for category, count in summary["categories"].items():
        table.add_row(category, str(count))
    track = summary.get("attack_track")
    if track:
        baselines = ", ".join(b["label"] for b in track.get("baselines") or ()) or "none"
        table.caption = (f"attack track: {track['count']} images ({track['public_count']} public), "
                         f"{track['access']} access, {track['norm']} eps {track['eps']:g}; baselines: {baselines}")
    return table


@app.command("verify")
def split_verify(split: Path = typer.Argument(..., help="Split folder built by harness split build.")) -> None:
    """Check every file of a split against its manifest."""
    from ..scoring.split import verify_split

    console.print(f"[green]ok[/] {split}: split hash {verify_split(split)[:16]}")
