"""What a dataset plugin produces: a plan of splits, as image files or as arrays.

Dataset plugins only enumerate; :mod:`harness.data.cache` decodes, checks and
caches, so every dataset (third-party ones too) gets the same cache, error
messages and ``--skip-bad`` behaviour.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Protocol, Union

import numpy as np

UNLABELLED = -1


@dataclass(frozen=True)
class ImageRecord:
    """One image file and its class index (``UNLABELLED`` for test images)."""

    path: Path
    label: int = UNLABELLED


@dataclass(frozen=True)
class ArraySplit:
    """A split that is already decoded: uint8 NHWC images and int labels."""

    images: np.ndarray
    labels: np.ndarray

    def __post_init__(self) -> None:
        if self.images.dtype != np.uint8 or self.images.ndim != 4:
            raise ValueError(f"ArraySplit images must be uint8 NHWC, got {self.images.dtype} {self.images.shape}")
        if len(self.images) != len(self.labels):
            raise ValueError(f"ArraySplit has {len(self.images)} images but {len(self.labels)} labels")


SplitContent = Union[list[ImageRecord], ArraySplit]


@dataclass
class DatasetPlan:
    """Everything the cache builder needs to materialize a dataset."""

    class_ids: list[str]
    class_names: list[str]
    image_size: tuple[int, int]  # (height, width)
    channels: int
    splits: dict[str, SplitContent]
    #: True: images of another size are resized; False: they are reported as bad
    resize: bool = True
    #: provenance recorded in the manifest (source folder, split seed, ...)
    info: dict[str, Any] = field(default_factory=dict)


class DatasetSource(Protocol):
    """What a dataset plugin's factory returns."""

    #: the parameters that identify this dataset's content (they key the cache)
    params: Mapping[str, Any]

    def plan(self, *, skip_bad: bool = False) -> DatasetPlan:
        """Enumerate the dataset's splits (raise :class:`harness.errors.DataError` on bad layout)."""
        ...
