"""Datasets located by name: ``harness data prepare`` records the variant a name alone opens."""

from __future__ import annotations

import shutil

import pytest
from typer.testing import CliRunner

from harness.cli.main import app
from harness.data import default_cache, load_dataset, prepare_dataset
from harness.data.index import INDEX, read_index
from harness.errors import DataError
from harness.sandbox.view import cache_binds
from helpers import make_tiny_imagenet


@pytest.fixture
def two_sources(tmp_path):
    """Two tiny-imagenet-200 folders of different sizes (two variants of one dataset)."""
    first = make_tiny_imagenet(tmp_path / "a", train_per_class=2, val_per_class=1, test=1)
    second = tmp_path / "b" / "tiny-imagenet-200"
    shutil.copytree(first, second)
    shutil.rmtree(second / "test")
    return first, second


def _prepare(source, *extra):
    result = CliRunner().invoke(app, ["data", "prepare", "tiny-imagenet", "--source", str(source), "--no-progress",
                                      *extra])
    assert result.exit_code == 0, result.output
    return result.output


def test_prepared_dataset_is_found_by_name(cache_dir, two_sources):
    source, _ = two_sources
    output = _prepare(source)
    assert "default: 'tiny-imagenet' without parameters opens this cache" in output
    dataset = load_dataset("tiny-imagenet")  # no machine path
    assert dataset.manifest["params"]["source"] == str(source) and len(dataset.split("train")) == 6
    entry = next(iter(read_index(cache_dir)["tiny-imagenet"].values()))
    assert entry["source"] == str(source) and entry["prepared"].endswith("Z")
    info = CliRunner().invoke(app, ["data", "info", "tiny-imagenet"])
    assert info.exit_code == 0 and "checksums: verified" in info.output, info.output
    listing = CliRunner().invoke(app, ["data", "info"], env={"COLUMNS": "200"})
    assert "tiny-imagenet (default)" in listing.output, listing.output


def test_most_recent_preparation_is_the_default(cache_dir, two_sources):
    first, second = two_sources
    _prepare(first)
    _prepare(second)
    assert "test" not in load_dataset("tiny-imagenet").splits  # the second folder has no test images
    _prepare(first)  # preparing again (cache kept) makes it the default again
    assert "test" in load_dataset("tiny-imagenet").splits
    assert load_dataset("tiny-imagenet", source=str(second)).path != default_cache("tiny-imagenet")
    listing = CliRunner().invoke(app, ["data", "info"], env={"COLUMNS": "200"})
    assert listing.output.count("(default)") == 1, listing.output


def test_unrecorded_variants_are_ambiguous(cache_dir, two_sources):
    first, second = two_sources
    prepare_dataset("tiny-imagenet", source=str(first))  # the API without record=True: not in the index
    assert load_dataset("tiny-imagenet").manifest["params"]["source"] == str(first)  # the only cache
    prepare_dataset("tiny-imagenet", source=str(second))
    with pytest.raises(DataError) as error:
        load_dataset("tiny-imagenet")
    assert "dataset 'tiny-imagenet' has 2 prepared variants and none is the default" in error.value.message
    assert str(first) in error.value.message and str(second) in error.value.message
    assert "harness data prepare tiny-imagenet --source PATH" in error.value.hint


def test_unreadable_index_names_the_file(cache_dir, two_sources):
    _prepare(two_sources[0])
    (cache_dir / INDEX).write_text("{not json")
    with pytest.raises(DataError, match=rf"{cache_dir / INDEX}: unreadable dataset index"):
        load_dataset("tiny-imagenet")


def test_index_travels_to_the_scoring_child_without_the_held_out_split(cache_dir, two_sources, tmp_path):
    _prepare(two_sources[0])
    binds, aliases = cache_binds(cache_dir, ("tiny-imagenet", "val"), tmp_path / "view", tmp_path / "inside")
    shown = tmp_path / "view" / "cache"  # the child's cache (symlink view of the same binds)
    assert aliases == {str(tmp_path / "inside"): str(shown)} and (shown / INDEX).is_file()
    seen = load_dataset("tiny-imagenet", cache_dir=shown, prepare=False)
    assert "val" not in seen.splits and len(seen.split("train")) == 6
    assert not any(bind.source.endswith("val_images.npy") for bind in binds)
