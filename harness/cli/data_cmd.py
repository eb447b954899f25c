"""``harness data prepare|info``: convert datasets to the cache and inspect caches."""

from __future__ import annotations

from pathlib import Path
from typing import Any, List, Optional

import typer
from rich.table import Table

from .common import console, parse_params

app = typer.Typer(help="Prepare datasets (one-time conversion to a memory-mapped cache) and inspect them.",
                  no_args_is_help=True)

CACHE_OPTION = typer.Option(None, "--cache-dir", help="Cache root (default: $HARNESS_CACHE_DIR or ~/.cache/harness).")
SOURCE_OPTION = typer.Option(None, "--source", "-s", help="Dataset folder or archive (tiny-imagenet, image-folder).")
PARAM_OPTION = typer.Option(None, "--param", "-p",
                            help="Dataset parameter KEY=VALUE (repeatable), e.g. -p image_size=32.")


def _dataset_params(source: Optional[Path], params: Optional[List[str]], download: bool = False) -> dict[str, Any]:
    values = parse_params(params)
    if source is not None:
        values["source"] = str(source)
    if download:
        values["download"] = True
    return values


def _summary_table(dataset) -> Table:
    manifest = dataset.manifest
    height, width, channels = dataset.image_shape
    table = Table(title=f"{dataset.name}: {dataset.num_classes} classes, {height}x{width}x{channels} uint8")
    for column in ("split", "images", "labelled", "skipped", "images sha256"):
        table.add_column(column)
    for name, split in manifest["splits"].items():
        opened = dataset.split(name)
        table.add_row(
            name,
            str(split["count"]),
            "yes" if opened.labelled else "no",
            str(len(split.get("skipped", []))),
            split["files"]["images"]["sha256"][:16],
        )
    return table


@app.command()
def prepare(
    name: str = typer.Argument("digits", help="Dataset plugin name (see `harness plugins dataset`)."),
    source: Optional[Path] = SOURCE_OPTION,
    param: Optional[List[str]] = PARAM_OPTION,
    download: bool = typer.Option(False, "--download", help="Download the dataset when it has an official URL."),
    skip_bad: bool = typer.Option(False, "--skip-bad", help="Skip and count bad images instead of stopping."),
    force: bool = typer.Option(False, "--force", help="Rebuild the cache even if it exists."),
    cache_dir: Optional[Path] = CACHE_OPTION,
    progress: bool = typer.Option(True, "--progress/--no-progress",
                                  help="Progress: bars on a terminal, a timed line per stage when piped."),
) -> None:
    """Convert a dataset once to a checksummed, memory-mapped cache (recorded: the name alone finds it)."""
    from ..data import prepare_dataset

    dataset = prepare_dataset(
        name,
        cache_dir=cache_dir,
        skip_bad=skip_bad,
        force=force,
        progress=progress,
        record=True,
        **_dataset_params(source, param, download),
    )
    console.print(_summary_table(dataset))
    skipped = sum(len(s.get("skipped", [])) for s in dataset.manifest["splits"].values())
    if skipped:
        console.print(f"[yellow]{skipped} bad images skipped[/] (listed in {dataset.path / 'manifest.json'})")
    console.print(f"cache: {dataset.path}")
    if dataset.path.resolve() in _defaults([dataset], cache_dir):
        console.print(f"default: '{name}' without parameters opens this cache on this machine")


def _defaults(datasets, cache_dir: Optional[Path]) -> set[Path]:
    """The cache folders that their dataset's name alone opens (the ones marked default)."""
    from ..data import default_cache
    from ..errors import HarnessError

    marked = set()
    for name in {dataset.name for dataset in datasets}:
        try:
            folder = default_cache(name, cache_dir)
        except HarnessError:  # ambiguous, or a dataset whose plugin is gone: nothing marked
            continue
        if folder is not None:
            marked.add(folder.resolve())
    return marked


@app.command()
def info(
    name: Optional[str] = typer.Argument(None, help="Dataset name; without it, list every prepared cache "
                                                    "('(default)': the one the name alone opens)."),
    source: Optional[Path] = SOURCE_OPTION,
    param: Optional[List[str]] = PARAM_OPTION,
    verify: bool = typer.Option(True, "--verify/--no-verify", help="Check every cache file's sha256."),
    cache_dir: Optional[Path] = CACHE_OPTION,
) -> None:
    """Show a prepared dataset (splits, counts, checksums, classes), or list all caches."""
    from ..data import list_prepared, load_dataset

    if name is None:
        table = Table(title="prepared datasets")
        for column in ("dataset", "shape", "classes", "splits", "created", "cache"):
            table.add_column(column, overflow="fold")
        prepared = list_prepared(cache_dir)
        defaults = _defaults(prepared, cache_dir)
        for dataset in prepared:
            counts = ", ".join(f"{k} {v['count']}" for k, v in dataset.manifest["splits"].items())
            shape = "x".join(str(d) for d in dataset.image_shape)
            marked = f"{dataset.name} (default)" if dataset.path.resolve() in defaults else dataset.name
            table.add_row(marked, shape, str(dataset.num_classes), counts, dataset.manifest.get("created", ""),
                          str(dataset.path))
        console.print(table)
        return
    dataset = load_dataset(name, cache_dir=cache_dir, verify=verify, prepare=False, **_dataset_params(source, param))
    console.print(_summary_table(dataset))
    names = dataset.class_names
    shown = ", ".join(names[:10]) + (f", ... ({len(names)} in all)" if len(names) > 10 else "")
    console.print(f"classes: {shown}")
    console.print(f"checksums: {'verified' if verify else 'not checked'}")
    console.print(f"cache: {dataset.path}")
