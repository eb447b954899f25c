"""Split building streams its images a chunk at a time and builds the split it built before streaming."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from harness.scoring import split as split_module
from harness.scoring.split import build_split, load_recipe, open_split

RECIPE = """[split]
dataset = "digits"
source = "train"
seed = 1905
public_fraction = 0.3
limit = 700

[[perturbations]]
category = "clean"
kind = "clean"
weight = 0.2

[[perturbations]]
category = "snow"
kind = "augmentation"
name = "corruption/snow"
severity = 3
weight = 2

[[perturbations]]
category = "geometry"
kind = "augmentation"
name = "affine"
severity = 3
weight = 2

[attack_track]
count = 300
eps = 0.1
access = "white-box"
"""
#: the split hash of RECIPE built by the code before streaming (commit cd21d40, whole groups in memory)
BEFORE_STREAMING = "b8d098f7206011103b5d8574db0bee29bf5fc1f59d111f8dad4e448f46afeaca"


def test_chunked_build_gives_the_split_of_the_whole_group_build(tmp_path: Path, monkeypatch):
    monkeypatch.setattr(split_module, "SPLIT_CHUNK", 256)  # each group (~311 images) and the track in 2 chunks
    chunks: list[tuple[str, int]] = []
    make = split_module._augmenter

    def spying(perturbation, seed):
        stream = make(perturbation, seed)
        return lambda images: chunks.append((perturbation.name, len(images))) or stream(images)

    monkeypatch.setattr(split_module, "_augmenter", spying)
    recipe = tmp_path / "recipe.toml"
    recipe.write_text(RECIPE)
    summary = build_split(load_recipe(recipe), tmp_path / "split", progress=False)
    assert {name for name, _ in chunks} == {"corruption/snow", "affine"}
    assert max(size for _, size in chunks) == 256 and len(chunks) == 4  # chunk by chunk, never a whole group
    assert summary["split_hash"] == BEFORE_STREAMING  # byte-identical to the build before streaming
    split = open_split(tmp_path / "split")
    assert isinstance(np.load(split.images_path, mmap_mode="r"), np.memmap)
    assert len(split.ids) == 700 and split.summary["attack_track"]["count"] == 300
