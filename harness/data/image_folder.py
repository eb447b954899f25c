"""``image-folder``: one sub-folder per class, any image format Pillow reads.

Either ``source/<class>/*`` (split into train/val/test by ``seed``) or
``source/{train,val,test}/<class>/*`` (splits taken as they are). Images of
another size are resized to ``image_size`` (default: the first image's size);
the manifest states the size used.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataError, UsageError
from .decode import BadImage, image_size_of, is_image_file
from .plan import DatasetPlan, ImageRecord
from .splitting import split_indices

SPLIT_FOLDERS = ("train", "val", "test")


def _class_folders(root: Path) -> list[Path]:
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        raise DataError(f"{root}: no class folders (expected one sub-folder per class)")
    return folders


def _records(root: Path, classes: list[str]) -> list[ImageRecord]:
    records = []
    for label, name in enumerate(classes):
        folder = root / name
        files = sorted(p for p in folder.rglob("*") if is_image_file(p)) if folder.is_dir() else []
        if not files and folder.is_dir():
            raise DataError(f"{folder}: empty class folder (no image files)")
        records.extend(ImageRecord(p, label) for p in files)
    return records


@dataclass
class ImageFolderSource:
    source: str | None = None
    image_size: int | list[int] | None = None
    channels: int = 3
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    seed: int = 0
    params: dict[str, Any] = field(init=False)

    def __post_init__(self) -> None:
        if not self.source:
            raise UsageError("image-folder needs a source folder", hint="pass --source PATH")
        if self.channels not in (1, 3):
            raise UsageError(f"image-folder: channels must be 1 or 3, got {self.channels}")
        self.params = {
            "source": str(Path(self.source).expanduser().resolve()),
            "image_size": self.image_size,
            "channels": self.channels,
            "val_fraction": self.val_fraction,
            "test_fraction": self.test_fraction,
            "seed": self.seed,
        }

    def _size(self, first: Path) -> tuple[int, int]:
        size = self.image_size
        if size is None:
            try:
                return image_size_of(first)
            except BadImage as bad:
                raise DataError(f"{bad.path}: {bad.reason} (needed to pick the dataset's image size)") from None
        if isinstance(size, int):
            return (size, size)
        if isinstance(size, (list, tuple)) and len(size) == 2:
            return (int(size[0]), int(size[1]))
        raise UsageError(f"image-folder: image_size must be N or [height, width], got {size!r}")

    def plan(self, *, skip_bad: bool = False) -> DatasetPlan:
        root = Path(self.params["source"])
        if not root.is_dir():
            raise DataError(f"{root}: image folder does not exist")
        presplit = (root / "train").is_dir()
        if presplit:
            classes = [p.name for p in _class_folders(root / "train")]
            splits = {s: _records(root / s, classes) for s in SPLIT_FOLDERS if (root / s).is_dir()}
        else:
            classes = [p.name for p in _class_folders(root)]
            records = _records(root, classes)
            labels = np.array([r.label for r in records])
            indices = split_indices(labels, self.val_fraction, self.test_fraction, self.seed)
            splits = {name: [records[i] for i in idx] for name, idx in indices.items()}
        first = splits["train"][0].path
        return DatasetPlan(
            class_ids=classes,
            class_names=classes,
            image_size=self._size(first),
            channels=self.channels,
            splits=splits,
            resize=True,
            info={"root": str(root), "presplit": presplit},
        )


def image_folder(
    source: str | None = None,
    image_size: int | list[int] | None = None,
    channels: int = 3,
    val_fraction: float = 0.15,
    test_fraction: float = 0.15,
    seed: int = 0,
) -> ImageFolderSource:
    return ImageFolderSource(source, image_size, channels, val_fraction, test_fraction, seed)
