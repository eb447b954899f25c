"""Datasets and the cache: digits, tiny-imagenet layout, image-folder, real-data quirks, bad input."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pytest

from harness.data import dataset_cache_path, list_prepared, load_dataset, prepare_dataset
from harness.errors import DataError, DownloadError, UsageError
from helpers import make_tiny_imagenet, write_image


def _no_leftovers(cache_dir: Path) -> None:
    """Nothing half-written: no cache folder and no temporary folder remain."""
    assert not cache_dir.exists() or list(cache_dir.iterdir()) == []


# --- digits -----------------------------------------------------------------------------------


def test_digits_is_real_and_split_by_seed(cache_dir):
    ds = load_dataset("digits")
    sizes = {name: len(ds.split(name)) for name in ds.splits}
    assert sum(sizes.values()) == 1797 and sizes["train"] > 1200
    train = ds.split("train")
    assert train.images.dtype == np.uint8 and train.images.shape[1:] == (8, 8, 1)
    assert train.images.max() == 255 and ds.num_classes == 10 and ds.class_names[3] == "3"
    assert set(np.unique(ds.split("test").labels)) == set(range(10))  # stratified
    again = load_dataset("digits")
    assert np.array_equal(again.split("val").labels, ds.split("val").labels)
    other = load_dataset("digits", seed=1)
    assert other.path != ds.path and not np.array_equal(other.split("val").labels, ds.split("val").labels)


def test_cache_is_memory_mapped_and_listed(cache_dir):
    ds = load_dataset("digits")
    assert isinstance(ds.split("train").images, np.memmap)
    assert [d.name for d in list_prepared()] == ["digits"]
    assert ds.manifest["splits"]["train"]["files"]["images"]["sha256"]


def test_unknown_split_suggests(cache_dir):
    with pytest.raises(DataError, match="Dataset 'digits' has no split 'tran'. Did you mean 'train'?"):
        load_dataset("digits").split("tran")


def test_bad_split_fractions(cache_dir):
    with pytest.raises(UsageError, match="val_fraction \\+ test_fraction must be below 1"):
        load_dataset("digits", val_fraction=0.6, test_fraction=0.5)
    _no_leftovers(cache_dir)


def test_checksum_mismatch_names_the_file(cache_dir):
    ds = load_dataset("digits")
    target = ds.path / "train_images.npy"
    data = bytearray(target.read_bytes())
    data[-1] ^= 0xFF
    target.write_bytes(bytes(data))
    with pytest.raises(DataError) as info:
        load_dataset("digits")
    assert f"{target}: checksum mismatch" in info.value.message
    assert "harness data prepare digits --force" in info.value.hint
    assert load_dataset("digits", verify=False)  # opt-out works
    prepare_dataset("digits", force=True)
    load_dataset("digits")  # rebuilt and clean


def test_missing_cache_without_prepare(cache_dir):
    with pytest.raises(DataError, match="Dataset 'digits' is not prepared"):
        load_dataset("digits", prepare=False)


# --- tiny-imagenet ----------------------------------------------------------------------------


@pytest.fixture
def tiny(tmp_path) -> Path:
    return make_tiny_imagenet(tmp_path / "src")


def test_tiny_imagenet_layout(cache_dir, tiny):
    ds = prepare_dataset("tiny-imagenet", source=str(tiny))
    assert ds.class_ids == ["n01443537", "n01629819", "n01641577"]
    assert ds.class_names[0] == "class 0, synonym 0"
    assert ds.image_shape == (64, 64, 3)
    assert (len(ds.split("train")), len(ds.split("val")), len(ds.split("test"))) == (12, 6, 3)
    assert ds.split("train").labelled and not ds.split("test").labelled
    assert list(ds.split("val").labels) == [0, 1, 2, 0, 1, 2]
    gray = ds.split("train").images[0]  # the grayscale JPEG, converted to RGB
    assert gray.shape == (64, 64, 3) and np.array_equal(gray[..., 0], gray[..., 1])


def test_tiny_imagenet_from_parent_folder_and_zip(cache_dir, tiny, tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_DATA_DIR", str(tmp_path / "downloads"))
    assert len(prepare_dataset("tiny-imagenet", source=str(tiny.parent)).split("train")) == 12
    archive = tmp_path / "tiny-imagenet-200.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in tiny.rglob("*"):
            zf.write(path, path.relative_to(tiny.parent))
    assert len(prepare_dataset("tiny-imagenet", source=str(archive)).split("val")) == 6


def test_tiny_imagenet_download_route(cache_dir, tiny, tmp_path, monkeypatch):
    """The real download path, pointed at a local file:// URL (no internet here)."""
    monkeypatch.setenv("HARNESS_DATA_DIR", str(tmp_path / "downloads"))
    archive = tmp_path / "served.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in tiny.rglob("*"):
            zf.write(path, path.relative_to(tiny.parent))
    with pytest.raises(UsageError, match="Tiny ImageNet is not on this machine"):
        prepare_dataset("tiny-imagenet")
    ds = prepare_dataset("tiny-imagenet", download=True, url=archive.as_uri())
    assert len(ds.split("train")) == 12
    assert (tmp_path / "downloads" / "tiny-imagenet-200.zip").is_file()


def test_download_failure_says_how_to_use_a_local_file(cache_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_DATA_DIR", str(tmp_path / "downloads"))
    with pytest.raises(DownloadError) as info:
        prepare_dataset("tiny-imagenet", download=True, url=(tmp_path / "absent.zip").as_uri())
    assert info.value.message.startswith("Cannot download file://")
    assert "--source PATH/tiny-imagenet-200.zip" in info.value.hint
    assert not list((tmp_path / "downloads").glob("*.zip"))  # no partial archive left
    _no_leftovers(cache_dir)


def test_missing_wnids(cache_dir, tiny):
    (tiny / "wnids.txt").unlink()
    with pytest.raises(DataError, match=r"wnids.txt: missing; not a tiny-imagenet-200 folder"):
        prepare_dataset("tiny-imagenet", source=str(tiny))
    _no_leftovers(cache_dir)


def test_unknown_wnid_in_annotations(cache_dir, tiny):
    annotations = tiny / "val" / "val_annotations.txt"
    annotations.write_text(annotations.read_text() + "val_0.JPEG\tn00000000\t0\t0\t1\t1\n")
    with pytest.raises(DataError, match=r"val_annotations.txt: line 7: unknown wnid 'n00000000'"):
        prepare_dataset("tiny-imagenet", source=str(tiny))
    _no_leftovers(cache_dir)
    ds = prepare_dataset("tiny-imagenet", source=str(tiny), skip_bad=True)
    assert len(ds.split("val")) == 6


def test_empty_class_folder(cache_dir, tiny):
    for image in (tiny / "train" / "n01629819" / "images").iterdir():
        image.unlink()
    with pytest.raises(DataError, match=r"n01629819/images: empty or missing class folder"):
        prepare_dataset("tiny-imagenet", source=str(tiny))
    _no_leftovers(cache_dir)


def test_truncated_jpeg_names_the_file_and_skip_bad_counts(cache_dir, tiny):
    bad = tiny / "train" / "n01641577" / "images" / "n01641577_2.JPEG"
    bad.write_bytes(bad.read_bytes()[:300])
    with pytest.raises(DataError) as info:
        prepare_dataset("tiny-imagenet", source=str(tiny))
    assert info.value.message.startswith(f"{bad}:")
    assert "--skip-bad" in info.value.hint
    _no_leftovers(cache_dir)
    ds = prepare_dataset("tiny-imagenet", source=str(tiny), skip_bad=True)
    assert len(ds.split("train")) == 11
    skipped = ds.manifest["splits"]["train"]["skipped"]
    assert [s["path"] for s in skipped] == [str(bad)]
    load_dataset("tiny-imagenet", source=str(tiny))  # the compacted cache verifies


def test_not_an_image(cache_dir, tiny):
    bad = tiny / "val" / "images" / "val_3.JPEG"
    bad.write_text("this is not a JPEG")
    with pytest.raises(DataError, match=r"val_3.JPEG: not a readable image"):
        prepare_dataset("tiny-imagenet", source=str(tiny))


def test_wrong_size_is_reported_not_resized(cache_dir, tiny):
    odd = tiny / "train" / "n01443537" / "images" / "n01443537_1.JPEG"
    write_image(odd, size=(32, 48))
    with pytest.raises(DataError, match=r"n01443537_1.JPEG: image is 32x48, expected 64x64"):
        prepare_dataset("tiny-imagenet", source=str(tiny))


# --- image-folder -----------------------------------------------------------------------------


def _folder(root: Path, classes=("cat", "dog"), per_class=10) -> Path:
    for c, name in enumerate(classes):
        for i in range(per_class):
            suffix = ".png" if i % 2 else ".jpg"
            write_image(root / name / f"{i}{suffix}", size=(24, 24) if i else (20, 30), seed=c * 100 + i)
    return root


def test_image_folder_resizes_and_splits(cache_dir, tmp_path):
    root = _folder(tmp_path / "pets")
    write_image(root / "cat" / "rgba.png", size=(24, 24), mode="RGBA", seed=7)
    ds = prepare_dataset("image-folder", source=str(root), image_size=16)
    assert ds.image_shape == (16, 16, 3) and ds.manifest["image_shape"] == [16, 16, 3]
    assert ds.class_names == ["cat", "dog"]
    assert sum(len(ds.split(s)) for s in ds.splits) == 21
    grey = prepare_dataset("image-folder", source=str(root), image_size=[8, 12], channels=1)
    assert grey.image_shape == (8, 12, 1)


def test_image_folder_default_size_is_first_image(cache_dir, tmp_path):
    root = _folder(tmp_path / "pets")
    ds = prepare_dataset("image-folder", source=str(root), val_fraction=0.0, test_fraction=0.0)
    assert ds.image_shape == (30, 20, 3) and ds.splits == ["train"]


def test_image_folder_presplit(cache_dir, tmp_path):
    _folder(tmp_path / "d" / "train")
    _folder(tmp_path / "d" / "val", per_class=2)
    ds = prepare_dataset("image-folder", source=str(tmp_path / "d"), image_size=8)
    assert ds.splits == ["train", "val"] and len(ds.split("val")) == 4


def test_image_folder_empty_class(cache_dir, tmp_path):
    root = _folder(tmp_path / "pets")
    (root / "empty").mkdir()
    with pytest.raises(DataError, match=r"pets/empty: empty class folder"):
        prepare_dataset("image-folder", source=str(root))
    _no_leftovers(cache_dir)


def test_image_folder_needs_source(cache_dir, tmp_path):
    with pytest.raises(UsageError, match="image-folder needs a source folder"):
        prepare_dataset("image-folder")
    with pytest.raises(DataError, match="image folder does not exist"):
        prepare_dataset("image-folder", source=str(tmp_path / "nope"))


def test_crash_midway_leaves_old_cache_intact(cache_dir, tmp_path, monkeypatch):
    root = _folder(tmp_path / "pets")
    first = prepare_dataset("image-folder", source=str(root), image_size=8)
    before = (first.path / "manifest.json").read_text()
    import harness.data.cache as cache

    def explode(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cache, "decode_image", explode)
    with pytest.raises(KeyboardInterrupt):
        prepare_dataset("image-folder", source=str(root), image_size=8, force=True)
    assert (first.path / "manifest.json").read_text() == before
    assert [p.name for p in cache_dir.iterdir()] == [first.path.name]
    load_dataset("image-folder", source=str(root), image_size=8)


def test_cache_path_depends_on_params(cache_dir, tmp_path):
    root = _folder(tmp_path / "pets")
    a = dataset_cache_path("image-folder", source=str(root), image_size=8)
    b = dataset_cache_path("image-folder", source=str(root), image_size=16)
    assert a != b and a.name.startswith("image-folder-")
