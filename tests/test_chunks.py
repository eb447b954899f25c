"""Bounded memory (harness.chunks): the chunk size knob, spans, rows written into a .npy map chunk by chunk."""

from __future__ import annotations

import numpy as np
import pytest

from harness.chunks import BATCH, DEFAULT_CHUNK, ENV, check_chunk_size, chunk_size, map_rows, spans
from harness.errors import UsageError


def test_chunk_size_default_env_and_validation(monkeypatch):
    monkeypatch.delenv(ENV, raising=False)
    assert chunk_size() == DEFAULT_CHUNK
    monkeypatch.setenv(ENV, "512")
    assert chunk_size() == 512
    for bad in ("0", "-256", "300", "lots", "1.5"):
        monkeypatch.setenv(ENV, bad)
        with pytest.raises(UsageError, match=rf"^{ENV}: the chunk size must be a positive multiple of {BATCH} "
                                             rf"images .*got '{bad}'$"):
            chunk_size()
    assert check_chunk_size(2048) == 2048


def test_spans_cover_every_index_once():
    parts = list(spans(1000, 256))
    assert [(p.start, p.stop) for p in parts] == [(0, 256), (256, 512), (512, 768), (768, 1000)]
    assert list(spans(0, 256)) == []


def test_map_rows_writes_the_bytes_of_one_call_a_chunk_at_a_time(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV, "256")
    images = np.lib.format.open_memmap(tmp_path / "images.npy", mode="w+", dtype=np.uint8, shape=(600, 4, 4, 1))
    images[:] = np.random.default_rng(0).integers(0, 256, images.shape, dtype=np.uint8)
    seen = []

    def logits(x):
        seen.append(len(x))
        return x.reshape(len(x), 16)[:, :3].astype(np.float64) / 7.0

    assert map_rows(logits, images, tmp_path / "logits.npy") == 600
    assert seen == [256, 256, 88]
    np.save(tmp_path / "whole.npy", (np.asarray(images).reshape(600, -1)[:, :3] / 7.0).astype(np.float32))
    assert (tmp_path / "logits.npy").read_bytes() == (tmp_path / "whole.npy").read_bytes()
    assert map_rows(logits, images[:0], tmp_path / "empty.npy") == 0
    assert np.load(tmp_path / "empty.npy").shape == (0, 3)


def test_dataset_splits_stay_memory_maps():
    from harness.data import load_dataset

    test = load_dataset("digits").split("test")
    assert isinstance(test.images, np.memmap) and isinstance(test.labels, np.memmap)
    assert isinstance(test.images[:100], np.memmap)  # what harness evaluate --limit passes on


def test_map_rows_keeps_a_broken_models_rows_as_they_came(tmp_path, monkeypatch):
    monkeypatch.setenv(ENV, "256")
    images = np.zeros((600, 2), dtype=np.uint8)
    assert map_rows(lambda x: np.ones((len(x) - 1, 3)), images, tmp_path / "short.npy") == 597  # a row short each
    assert np.load(tmp_path / "short.npy").shape == (597, 3)  # what the organiser rejects as the wrong shape
