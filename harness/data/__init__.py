"""Datasets: plugins enumerate, the cache decodes once and memory-maps forever after.

>>> ds = load_dataset("digits")            # prepares the cache on first use
>>> train = ds.split("train")              # ImageSplit: uint8 NHWC images, int64 labels
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import DataError
from ..paths import cache_dir as default_cache_dir
from .cache import Dataset, ImageSplit, build_cache, cache_key, open_cache, read_manifest
from .plan import UNLABELLED, ArraySplit, DatasetPlan, DatasetSource, ImageRecord

__all__ = [
    "UNLABELLED",
    "ArraySplit",
    "Dataset",
    "DatasetPlan",
    "DatasetSource",
    "ImageRecord",
    "ImageSplit",
    "dataset_cache_path",
    "list_prepared",
    "load_dataset",
    "prepare_dataset",
]


def _source(name: str, params: dict[str, Any]) -> DatasetSource:
    from ..registry import create_dataset

    return create_dataset(name, **params)


def dataset_cache_path(name: str, cache_dir: Path | None = None, **params: Any) -> Path:
    """The cache folder that ``name`` with ``params`` uses (prepared or not)."""
    source = _source(name, params)
    return Path(cache_dir or default_cache_dir()) / cache_key(name, source.params)


def prepare_dataset(
    name: str,
    *,
    cache_dir: Path | None = None,
    skip_bad: bool = False,
    force: bool = False,
    progress: bool = False,
    **params: Any,
) -> Dataset:
    """Convert dataset ``name`` to its cache (once; ``force`` rebuilds) and return it."""
    source = _source(name, params)
    target = Path(cache_dir or default_cache_dir()) / cache_key(name, source.params)
    if target.exists() and not force:
        try:
            return open_cache(target, verify=False)
        except DataError:
            pass  # an unreadable old cache is rebuilt
    plan = source.plan(skip_bad=skip_bad)
    return build_cache(name, source.params, plan, target, skip_bad=skip_bad, progress=progress)


def load_dataset(
    name: str,
    *,
    cache_dir: Path | None = None,
    verify: bool = True,
    prepare: bool = True,
    progress: bool = False,
    **params: Any,
) -> Dataset:
    """Open dataset ``name``'s cache (checking checksums), preparing it first if allowed."""
    target = dataset_cache_path(name, cache_dir, **params)
    if not (target / "manifest.json").exists():
        if not prepare:
            raise DataError(
                f"Dataset '{name}' is not prepared (no cache at {target})",
                hint=f"run: harness data prepare {name}",
            )
        return prepare_dataset(name, cache_dir=cache_dir, progress=progress, **params)
    return open_cache(target, verify=verify)


def list_prepared(cache_dir: Path | None = None) -> list[Dataset]:
    """Every readable dataset cache under ``cache_dir``."""
    root = Path(cache_dir or default_cache_dir())
    found = []
    for folder in sorted(root.glob("*/manifest.json")) if root.is_dir() else []:
        try:
            manifest = read_manifest(folder.parent)
        except DataError:
            continue
        found.append(Dataset(manifest["dataset"], folder.parent, manifest))
    return found
