"""The prepared-dataset index: which cache folder a dataset name alone means on this machine.

``<cache>/index.json`` (written atomically by ``harness data prepare``)::

    {"format": 1, "datasets": {"tiny-imagenet": {"tiny-imagenet-3f2a...": {
        "params": {...}, "source": "/data/tiny-imagenet-200", "prepared": "2026-11-30T02:00:00Z",
        "stamp": 1795831200.0}}}}      # stamp: time.time() of the preparation, which orders variants

It holds cache folder names, never data, so it travels with the cache (a scoring child reads it
at ``/sandbox/cache``). The rule: the variant prepared most recently (whose folder still exists) is
the name's default; preparing a variant again makes it the default.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from ..atomic import write_json
from ..errors import DataError
from .cache import MANIFEST

INDEX = "index.json"
FORMAT_VERSION = 1


def read_index(root: Path) -> dict[str, dict[str, dict[str, Any]]]:
    """name -> {cache folder name -> {params, source, prepared}} (empty without an index)."""
    path = root / INDEX
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: unreadable dataset index ({exc})",
                        hint="delete it and prepare the datasets again (the caches are kept)") from None
    datasets = data.get("datasets") if isinstance(data, dict) else None
    if not isinstance(datasets, dict) or not all(isinstance(v, dict) for v in datasets.values()):
        raise DataError(f"{path}: dataset index has no 'datasets' table",
                        hint="delete it and prepare the datasets again (the caches are kept)")
    return datasets


def record_prepared(root: Path, name: str, folder: Path, params: dict[str, Any]) -> None:
    """Record ``folder`` (a cache under ``root``) as ``name``'s most recent preparation."""
    datasets = read_index(root)
    datasets.setdefault(name, {})[folder.name] = {
        "params": params,
        "source": params.get("source"),
        "prepared": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "stamp": time.time(),
    }
    write_json(root / INDEX, {"format": FORMAT_VERSION, "datasets": datasets})


def variants(root: Path, name: str) -> list[tuple[str, dict[str, Any]]]:
    """``name``'s recorded variants whose cache still exists, most recently prepared first."""
    recorded = read_index(root).get(name, {})
    found = [(key, entry) for key, entry in recorded.items() if (root / key / MANIFEST).is_file()]
    return sorted(found, key=lambda item: item[1].get("stamp", 0), reverse=True)


def _unrecorded(root: Path, name: str) -> list[Path]:
    """Cache folders of ``name`` under ``root`` (from their manifests), recorded or not."""
    found = []
    for manifest in sorted(root.glob("*/manifest.json")) if root.is_dir() else []:
        try:
            if json.loads(manifest.read_text(encoding="utf-8")).get("dataset") == name:
                found.append(manifest.parent)
        except (OSError, ValueError, AttributeError):
            continue
    return found


def recorded_default(root: Path, name: str) -> Path | None:
    """The cache folder that ``name`` alone means: its most recent recorded preparation, else its only
    cache; None when there is none. DataError when several unrecorded caches leave it ambiguous."""
    recorded = variants(root, name)
    if recorded:
        return root / recorded[0][0]
    folders = _unrecorded(root, name)
    if len(folders) > 1:
        sources = ", ".join(f"{f.name} ({_source_of(f)})" for f in folders)
        raise DataError(
            f"dataset '{name}' has {len(folders)} prepared variants and none is the default: {sources}",
            hint=f"choose one: harness data prepare {name} --source PATH (the most recent preparation is the "
                 "default), or give dataset_params",
        )
    return folders[0] if folders else None


def _source_of(folder: Path) -> str:
    try:
        params = json.loads((folder / MANIFEST).read_text(encoding="utf-8")).get("params", {})
    except (OSError, ValueError):
        return "unreadable manifest"
    return str(params.get("source") or params)
