"""The dataset cache: one folder per (dataset, parameters), memory-mapped ``.npy`` files.

Layout of a cache folder::

    manifest.json            dataset, params, class ids/names, image shape,
                             per-split counts, sha256 of every file, skipped files
    <split>_images.npy       uint8 (N, H, W, C)
    <split>_labels.npy       int64 (N,), -1 for unlabelled images

A conversion decodes every image once (with a progress bar) into a temporary
folder that replaces the cache only when complete, so a crash leaves nothing
half-written. Loading checks every file's sha256 against the manifest.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from .. import __version__
from ..atomic import atomic_directory
from ..errors import DataError
from ..progress import progress_bar, stage
from .decode import BadImage, decode_image
from .plan import ArraySplit, DatasetPlan

MANIFEST = "manifest.json"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class ImageSplit:
    """One split of a dataset: uint8 NHWC images (memory-mapped) and int64 labels."""

    name: str
    images: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def labelled(self) -> bool:
        return bool(len(self.labels)) and bool((self.labels >= 0).all())


@dataclass(frozen=True)
class Dataset:
    """A prepared dataset, opened from its cache folder."""

    name: str
    path: Path
    manifest: dict[str, Any]

    @property
    def class_ids(self) -> list[str]:
        return list(self.manifest["class_ids"])

    @property
    def class_names(self) -> list[str]:
        return list(self.manifest["class_names"])

    @property
    def num_classes(self) -> int:
        return len(self.manifest["class_ids"])

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(height, width, channels)."""
        return tuple(self.manifest["image_shape"])  # type: ignore[return-value]

    @property
    def splits(self) -> list[str]:
        return list(self.manifest["splits"])

    def split(self, name: str) -> ImageSplit:
        """Open split ``name`` memory-mapped (read-only)."""
        if name not in self.manifest["splits"]:
            from ..errors import suggest

            raise DataError(
                f"Dataset '{self.name}' has no split '{name}'.{suggest(name, self.splits)} "
                f"Splits: {', '.join(self.splits)}"
            )
        files = self.manifest["splits"][name]["files"]
        images = np.load(self.path / files["images"]["file"], mmap_mode="r")
        labels = np.load(self.path / files["labels"]["file"], mmap_mode="r")
        return ImageSplit(name, images, labels)


def sha256_file(path: Path, chunk_size: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def cache_key(dataset: str, params: Mapping[str, Any]) -> str:
    """Folder name of a dataset's cache: name plus a hash of its identifying parameters."""
    canonical = json.dumps({"dataset": dataset, "params": dict(params)}, sort_keys=True, default=str)
    return f"{dataset}-{hashlib.sha256(canonical.encode()).hexdigest()[:10]}"


def read_manifest(path: Path) -> dict[str, Any]:
    """The manifest of the cache folder ``path`` (DataError naming the file if unreadable)."""
    manifest_path = path / MANIFEST
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{manifest_path}: cache manifest is missing") from None
    except (OSError, ValueError) as exc:
        raise DataError(f"{manifest_path}: unreadable cache manifest ({exc})") from None
    for key in ("dataset", "splits", "class_ids", "class_names", "image_shape"):
        if key not in manifest:
            raise DataError(f"{manifest_path}: cache manifest has no '{key}' field")
    return manifest


def verify_cache(path: Path, manifest: Mapping[str, Any]) -> None:
    """Check every cached file's sha256 against the manifest; DataError names the first bad file."""
    for split in manifest["splits"].values():
        for entry in split["files"].values():
            file = path / entry["file"]
            if not file.is_file():
                raise DataError(
                    f"{file}: cache file is missing",
                    hint=f"rebuild it: harness data prepare {manifest['dataset']} --force",
                )
            actual = sha256_file(file)
            if actual != entry["sha256"]:
                raise DataError(
                    f"{file}: checksum mismatch (manifest sha256 {entry['sha256'][:12]}..., "
                    f"file {actual[:12]}...): the cache is corrupt",
                    hint=f"rebuild it: harness data prepare {manifest['dataset']} --force",
                )


def open_cache(path: Path, verify: bool = True) -> Dataset:
    """Open the cache folder ``path``, checking checksums unless ``verify`` is False."""
    manifest = read_manifest(path)
    if verify:
        verify_cache(path, manifest)
    return Dataset(manifest["dataset"], path, manifest)


def _write_array_split(folder: Path, name: str, split: ArraySplit) -> tuple[int, list]:
    np.save(folder / f"{name}_images.npy", np.ascontiguousarray(split.images))
    np.save(folder / f"{name}_labels.npy", np.asarray(split.labels, dtype=np.int64))
    return len(split.labels), []


def _write_file_split(
    folder: Path, name: str, plan: DatasetPlan, records: list, skip_bad: bool, progress: bool
) -> tuple[int, list]:
    """Decode ``records`` into a memory-mapped .npy; return (count, skipped [{path, reason}])."""
    height, width = plan.image_size
    shape = (len(records), height, width, plan.channels)
    images_file = folder / f"{name}_images.npy"
    images = np.lib.format.open_memmap(images_file, mode="w+", dtype=np.uint8, shape=shape)
    labels = np.empty(len(records), dtype=np.int64)
    skipped: list[dict[str, str]] = []
    count = 0
    with progress_bar(len(records), f"decoding {name}", enabled=progress) as advance:
        for record in records:
            try:
                images[count] = decode_image(record.path, plan.image_size, plan.channels, plan.resize)
            except BadImage as bad:
                if not skip_bad:
                    raise DataError(f"{bad.path}: {bad.reason}",
                                    hint="use --skip-bad to skip and count bad images") from None
                skipped.append({"path": str(bad.path), "reason": bad.reason})
                advance(status=f"{len(skipped)} skipped")
                continue
            labels[count] = record.label
            count += 1
            advance()
    images.flush()
    del images
    if count < len(records):  # compact: keep only the decoded rows, copied a chunk at a time
        from ..chunks import open_npy, spans

        full = np.load(images_file, mmap_mode="r")
        compact_file = folder / f"{name}_images.compact.npy"
        compact = open_npy(compact_file, (count, *shape[1:]), np.uint8)
        for part in spans(count):
            compact[part] = full[part]
        compact.flush()
        del full, compact
        compact_file.replace(images_file)
    np.save(folder / f"{name}_labels.npy", labels[:count])
    return count, skipped


def build_cache(
    dataset: str,
    params: Mapping[str, Any],
    plan: DatasetPlan,
    target: Path,
    *,
    skip_bad: bool = False,
    progress: bool = False,
) -> Dataset:
    """Materialize ``plan`` into the cache folder ``target`` atomically and return it opened."""
    if len(plan.class_names) != len(plan.class_ids):
        raise DataError(f"dataset '{dataset}': {len(plan.class_ids)} class ids but {len(plan.class_names)} names")
    started = time.time()
    with stage(f"data prepare {dataset}", len(plan.splits), enabled=progress) as report, \
            atomic_directory(target) as folder:
        splits: dict[str, Any] = {}
        for name, content in plan.splits.items():
            if isinstance(content, ArraySplit):
                count, skipped = _write_array_split(folder, name, content)
            else:
                count, skipped = _write_file_split(folder, name, plan, content, skip_bad, progress)
            if count == 0:
                raise DataError(f"dataset '{dataset}': split '{name}' has no usable images")
            files = {
                kind: {"file": f"{name}_{kind}.npy", "sha256": sha256_file(folder / f"{name}_{kind}.npy")}
                for kind in ("images", "labels")
            }
            splits[name] = {"count": count, "files": files, "skipped": skipped}
            report.done(f"split {name}: {count} images" + (f", {len(skipped)} skipped" if skipped else ""))
        manifest = {
            "format": FORMAT_VERSION,
            "dataset": dataset,
            "params": dict(params),
            "harness_version": __version__,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "seconds": round(time.time() - started, 2),
            "image_shape": [*plan.image_size, plan.channels],
            "resized": plan.resize,
            "class_ids": list(plan.class_ids),
            "class_names": list(plan.class_names),
            "splits": splits,
            "info": plan.info,
        }
        (folder / MANIFEST).write_text(json.dumps(manifest, indent=2, default=str) + "\n", encoding="utf-8")
    return open_cache(target, verify=False)
