"""``tiny-imagenet``: the standard ``tiny-imagenet-200`` layout (200 classes, 64x64 RGB).

::

    tiny-imagenet-200/
      wnids.txt                      one wnid per line (the classes, in label order)
      words.txt                      wnid <TAB> human-readable names
      train/<wnid>/images/*.JPEG     500 per class
      val/images/*.JPEG + val/val_annotations.txt (file <TAB> wnid <TAB> bbox)
      test/images/*.JPEG             unlabelled

``source`` is that folder, a folder containing it, or ``tiny-imagenet-200.zip``
(the local-file route for offline machines). ``download=True`` fetches the
official archive. Images that are not 64x64 are reported, not resized.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import DataError, UsageError
from ..paths import downloads_dir
from .decode import is_image_file
from .download import download as fetch
from .download import extract_zip
from .plan import UNLABELLED, DatasetPlan, ImageRecord

URL = "http://cs231n.stanford.edu/tiny-imagenet-200.zip"
FOLDER = "tiny-imagenet-200"
EXTRACTED = "tiny-imagenet-200-extracted"
IMAGE_SIZE = (64, 64)


def _image_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if is_image_file(p)) if folder.is_dir() else []


def locate_root(source: Path) -> Path:
    """The folder holding wnids.txt, given it, its parent, or a zip archive."""
    if source.is_file() and source.suffix.lower() == ".zip":
        source = extract_zip(source, downloads_dir() / f"{source.stem}-extracted", progress=True)
    if not source.exists():
        raise DataError(f"{source}: Tiny ImageNet source does not exist")
    for candidate in (source, source / FOLDER):
        if (candidate / "wnids.txt").is_file():
            return candidate
    raise DataError(f"{source / 'wnids.txt'}: missing; not a tiny-imagenet-200 folder")


def read_words(path: Path) -> dict[str, str]:
    """wnid -> human-readable names, from words.txt (empty if the file is absent)."""
    if not path.is_file():
        return {}
    words = {}
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        wnid, _, names = line.partition("\t")
        if wnid.strip():
            words[wnid.strip()] = names.strip()
    return words


@dataclass
class TinyImageNetSource:
    source: str | None = None
    download: bool = False
    url: str = URL
    params: dict[str, Any] = field(init=False)

    def __post_init__(self) -> None:
        self.params = {"source": self.resolve_source_path()}

    def resolve_source_path(self) -> str:
        if self.source:
            return str(Path(self.source).expanduser().resolve())
        return str(downloads_dir() / EXTRACTED)

    def _root(self) -> Path:
        source = Path(self.params["source"])
        if not self.source and not source.exists():
            if not self.download:
                raise UsageError(
                    "Tiny ImageNet is not on this machine",
                    hint="prepare it once: harness data prepare tiny-imagenet --source PATH (tiny-imagenet-200 "
                         "folder or .zip) or --download; then the name alone finds it",
                )
            archive = fetch(
                self.url,
                downloads_dir() / "tiny-imagenet-200.zip",
                local_hint="download tiny-imagenet-200.zip elsewhere and pass --source PATH/tiny-imagenet-200.zip",
            )
            extracted = extract_zip(archive, downloads_dir() / EXTRACTED)
            return locate_root(extracted)
        return locate_root(source)

    def plan(self, *, skip_bad: bool = False) -> DatasetPlan:
        root = self._root()
        wnids_path = root / "wnids.txt"
        wnids = [line.strip() for line in wnids_path.read_text(encoding="utf-8").splitlines() if line.strip()]
        if not wnids:
            raise DataError(f"{wnids_path}: lists no classes")
        if len(set(wnids)) != len(wnids):
            raise DataError(f"{wnids_path}: lists a wnid twice")
        index = {wnid: i for i, wnid in enumerate(wnids)}
        words = read_words(root / "words.txt")

        train: list[ImageRecord] = []
        for wnid in wnids:
            folder = root / "train" / wnid / "images"
            files = _image_files(folder)
            if not files:
                raise DataError(f"{folder}: empty or missing class folder for wnid '{wnid}'")
            train.extend(ImageRecord(p, index[wnid]) for p in files)

        splits: dict[str, list[ImageRecord]] = {"train": train}
        annotations = root / "val" / "val_annotations.txt"
        if annotations.is_file():
            val = []
            for number, line in enumerate(annotations.read_text(encoding="utf-8").splitlines(), start=1):
                if not line.strip():
                    continue
                fields = line.split("\t")
                if len(fields) < 2:
                    raise DataError(f"{annotations}: line {number}: expected 'file<TAB>wnid', got {line!r}")
                filename, wnid = fields[0].strip(), fields[1].strip()
                if wnid not in index:
                    if skip_bad:
                        continue
                    raise DataError(f"{annotations}: line {number}: unknown wnid '{wnid}' (not in wnids.txt)")
                val.append(ImageRecord(root / "val" / "images" / filename, index[wnid]))
            splits["val"] = val
        test = _image_files(root / "test" / "images")
        if test:
            splits["test"] = [ImageRecord(p, UNLABELLED) for p in test]
        return DatasetPlan(
            class_ids=wnids,
            class_names=[words.get(w, w) for w in wnids],
            image_size=IMAGE_SIZE,
            channels=3,
            splits=splits,
            resize=False,
            info={"root": str(root)},
        )


def tiny_imagenet(source: str | None = None, download: bool = False, url: str = URL) -> TinyImageNetSource:
    return TinyImageNetSource(source, download, url)
