"""Bounded memory: image arrays walked a chunk at a time, outputs written chunk by chunk into ``.npy`` maps.

Every path that touches a whole split (``harness evaluate``, split building, corruption suites,
scoring) reads its images from memory maps (:mod:`harness.data.cache`, the split's ``images.npy``)
and holds at most one chunk of them in memory, so peak memory does not grow with the image count
(``benchmarks/bench_memory.py`` measures it)::

    for part in spans(len(images)):          # slices of at most chunk_size() images
        logits[part] = predict(images[part])  # logits: an open_npy(...) map

The chunk size is ``HARNESS_CHUNK_IMAGES`` (default 1024 images), a positive multiple of
:data:`BATCH`: the runtimes predict, attack and augment in batches of 256 and the corruptions
draw their random numbers per 256 images, so chunks of whole batches give every result of one
call on the whole array, bit for bit.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from .errors import UsageError

#: the environment variable of the chunk size (images)
ENV = "HARNESS_CHUNK_IMAGES"
#: images per chunk unless ``HARNESS_CHUNK_IMAGES`` says otherwise
DEFAULT_CHUNK = 1024
#: the runtimes' batch and the corruptions' block: a chunk holds whole ones
BATCH = 256


def check_chunk_size(value: object, name: str = ENV) -> int:
    """``value`` as a chunk size: a positive multiple of :data:`BATCH`; UsageError naming ``name`` otherwise."""
    try:
        size = int(str(value).strip())
    except ValueError:
        size = 0
    if size <= 0 or size % BATCH:
        raise UsageError(f"{name}: the chunk size must be a positive multiple of {BATCH} images "
                         f"(whole batches keep every result unchanged), got {value!r}")
    return size


def chunk_size() -> int:
    """Images per chunk: ``HARNESS_CHUNK_IMAGES`` (checked) or :data:`DEFAULT_CHUNK`."""
    value = os.environ.get(ENV)
    return DEFAULT_CHUNK if value in (None, "") else check_chunk_size(value)


def spans(count: int, size: int | None = None) -> Iterator[slice]:
    """Consecutive slices covering ``range(count)``, each of at most ``size`` (default :func:`chunk_size`)."""
    size = size or chunk_size()
    for start in range(0, count, size):
        yield slice(start, min(start + size, count))


def open_npy(path: str | Path, shape: tuple[int, ...], dtype: np.dtype | type) -> np.memmap:
    """A new ``.npy`` file at ``path`` opened as a writable memory map; its bytes equal ``np.save`` of the same
    array once every row is written."""
    return np.lib.format.open_memmap(Path(path), mode="w+", dtype=np.dtype(dtype), shape=tuple(shape))



def map_rows(function: Callable[[np.ndarray], np.ndarray], images: np.ndarray, path: str | Path,
             dtype: np.dtype | type = np.float32) -> int:
    """``function(images[part])`` for each chunk, its rows written as ``dtype`` into a new ``.npy`` at ``path``
    (e.g. logits, one row per image) without holding more than a chunk; returns the row count. A function
    that does not give one row per image (a broken model) gets the file one call would have written: its rows
    as they came, for the reader to reject."""
    path = Path(path)
    count = len(images)
    out, loose = None, None  # loose: the rows so far in memory, once a chunk broke the one-row-per-image rule
    for part in spans(count):
        rows = np.asarray(function(images[part]), dtype=dtype)
        if loose is None and (len(rows) != part.stop - part.start
                              or out is not None and rows.shape[1:] != out.shape[1:]):
            loose = [np.array(out[: part.start])] if out is not None else []
        if loose is not None:
            loose.append(rows)
            continue
        if out is None:
            out = open_npy(path, (count, *rows.shape[1:]), dtype)
        out[part] = rows
    if out is not None:
        out.flush()
        del out
    if loose is not None or count == 0:
        rows = np.concatenate(loose) if loose else np.asarray(function(images[:0]), dtype=dtype)
        np.save(path, rows)
        return len(rows)
    return count
