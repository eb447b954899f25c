"""Datasets: plugins enumerate, the cache decodes once and memory-maps forever after.

>>> ds = load_dataset("digits")            # prepares the cache on first use
>>> train = ds.split("train")              # ImageSplit: uint8 NHWC images, int64 labels
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..errors import DataError
from ..paths import cache_dir as default_cache_dir
from .cache import MANIFEST, Dataset, ImageSplit, build_cache, cache_key, open_cache, read_manifest
from .index import record_prepared, recorded_default
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
    "default_cache",
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


def _needs_source(name: str) -> bool:
    from ..registry import get_dataset

    return get_dataset(name).needs_source


def default_cache(name: str, cache_dir: Path | None = None) -> Path | None:
    """The cache folder that ``name`` without parameters opens (None: not prepared).

    A dataset that reads a user-given source (``needs_source``, e.g. tiny-imagenet) opens the variant of
    the most recent ``harness data prepare NAME`` on this machine (see :mod:`harness.data.index`);
    any other opens its default parameters' cache.
    """
    root = Path(cache_dir or default_cache_dir())
    if _needs_source(name):
        return recorded_default(root, name)
    target = dataset_cache_path(name, root)
    return target if (target / MANIFEST).is_file() else None


def prepare_dataset(
    name: str,
    *,
    cache_dir: Path | None = None,
    skip_bad: bool = False,
    force: bool = False,
    progress: bool = False,
    record: bool = False,
    **params: Any,
) -> Dataset:
    """Convert dataset ``name`` to its cache (once; ``force`` rebuilds) and return it.

    ``record``: note it in the cache's index as the variant ``name`` alone now means (what
    ``harness data prepare`` does), so that submissions find it without a machine path."""
    source = _source(name, params)
    root = Path(cache_dir or default_cache_dir())
    target = root / cache_key(name, source.params)
    dataset = None
    if target.exists() and not force:
        try:
            dataset = open_cache(target, verify=False)
        except DataError:
            pass  # an unreadable old cache is rebuilt
    if dataset is None:
        plan = source.plan(skip_bad=skip_bad)
        dataset = build_cache(name, source.params, plan, target, skip_bad=skip_bad, progress=progress)
    if record:
        record_prepared(root, name, target, dict(source.params))
    return dataset


def load_dataset(
    name: str,
    *,
    cache_dir: Path | None = None,
    verify: bool = True,
    prepare: bool = True,
    progress: bool = False,
    **params: Any,
) -> Dataset:
    """Open dataset ``name``'s cache (checking checksums), preparing it first if allowed.

    Without ``params``, a dataset that reads a user-given source opens its recorded preparation
    (:func:`default_cache`): submissions and recipes name it and never carry a machine path."""
    if not params and _needs_source(name):
        recorded = recorded_default(Path(cache_dir or default_cache_dir()), name)
        if recorded is not None:
            return open_cache(recorded, verify=verify)
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
