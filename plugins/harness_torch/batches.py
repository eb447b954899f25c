"""The device-side data path: uint8 N,H,W,C rows of a (memory-mapped) array -> float32 batches on a device.

One batch is gathered with one vectorised index (no per-image Python) and converted to float32
N,C,H,W in [0, 1]; :func:`device_batches` does this one batch ahead in a background thread, so
the next batch's read from the memory map (and its transfer) overlaps the current step:

- CPU: the thread gathers and converts (numpy: one pass, one thread; see :func:`images_to_tensor`);
- CUDA: the thread gathers into pinned host memory and copies it, ``non_blocking``, on a side
  stream; the step's stream waits for that copy only, and the uint8 batch is converted on the GPU
  (4x fewer bytes cross the bus than float32).

The values are those of :func:`images_to_tensor` on the same rows, whichever the device.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable, Iterable, Iterator, TypeVar

import numpy as np
import torch

T = TypeVar("T")
Index = np.ndarray | slice


def images_to_tensor(images: np.ndarray, device: torch.device | str | None = None) -> torch.Tensor:
    """uint8 N,H,W,C numpy -> float32 N,C,H,W in [0, 1] on ``device`` (converted there).

    On the CPU numpy converts (one pass, one thread): torch's intra-op threads gain nothing on this
    memory-bound step and, where the cores are shared, spin at its barriers (epochs 7x slower).
    """
    array = np.ascontiguousarray(images)
    if device is None or torch.device(device).type == "cpu":
        return torch.from_numpy(np.divide(array, np.float32(255.0), dtype=np.float32)).permute(0, 3, 1, 2)
    if not array.flags.writeable:  # read-only memory-mapped cache: torch wants its own copy
        array = array.copy()
    return uint8_to_float(torch.from_numpy(array).to(device, non_blocking=True))


def uint8_to_float(x: torch.Tensor) -> torch.Tensor:
    """uint8 N,H,W,C tensor -> float32 N,C,H,W in [0, 1] on its device (a view's strides: channels-last memory)."""
    return x.permute(0, 3, 1, 2).float().div_(255.0)


def gather(images: np.ndarray, index: Index, out: np.ndarray | None = None) -> np.ndarray:
    """Rows ``index`` (int array or slice) of ``images`` in one vectorised read, into ``out`` when given."""
    if out is None:
        return np.ascontiguousarray(images[index])
    if isinstance(index, slice):
        out[...] = images[index]
    else:
        np.take(images, index, axis=0, out=out)
    return out


def _rows(images: np.ndarray, index: Index) -> int:
    return len(range(*index.indices(len(images)))) if isinstance(index, slice) else len(index)


def prefetched(load: Callable[[Any], T], items: Iterable[Any]) -> Iterator[T]:
    """``load(item)`` for each item, in order, each computed in a background thread while the
    caller works on the previous result (a one-item prefetch; exceptions surface in order)."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="harness-batches") as pool:
        pending = None
        for item in items:
            following = pool.submit(load, item)
            if pending is not None:
                yield pending.result()
            pending = following
        if pending is not None:
            yield pending.result()


class DevicePath:
    """Stages batches of uint8 images (and int labels) for ``device``: :meth:`stage` in the background,
    :meth:`finish` where the step runs."""

    def __init__(self, device: torch.device | str | None):
        self.device = torch.device("cpu" if device is None else device)
        self.cuda = self.device.type == "cuda"
        self.stream = torch.cuda.Stream(self.device) if self.cuda else None

    def stage(self, images: np.ndarray, index: Index, labels: np.ndarray | None = None) -> tuple[Any, ...]:
        """Gather rows ``index`` (and their labels); on CUDA start their copy. Safe in a background thread."""
        y = None if labels is None else torch.from_numpy(np.array(labels[index]))  # a copy: caches are read-only
        if not self.cuda:
            x = images_to_tensor(gather(images, index), self.device)
            return x, None if y is None else y.to(self.device), None
        host = torch.empty((_rows(images, index), *np.shape(images)[1:]), dtype=torch.uint8, pin_memory=True)
        gather(images, index, out=host.numpy())
        with torch.cuda.device(self.device), torch.cuda.stream(self.stream):
            # pinned buffers are only reused once these copies are done (torch's caching host allocator)
            x = host.to(self.device, non_blocking=True)
            if y is not None:
                y = y.pin_memory().to(self.device, non_blocking=True)
            copied = torch.cuda.Event()
            copied.record(self.stream)
        return x, y, copied

    def finish(self, staged: tuple[Any, ...]) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(float32 N,C,H,W in [0, 1], labels) of a staged batch, usable on the current stream."""
        x, y, copied = staged
        if copied is None:
            return x, y
        current = torch.cuda.current_stream(self.device)
        current.wait_event(copied)
        for tensor in (x, y):
            if tensor is not None:
                tensor.record_stream(current)  # allocated on the side stream, freed after the step's use
        return uint8_to_float(x), y


def device_batches(images: np.ndarray, indices: Iterable[Index], device: torch.device | str | None,
                   labels: np.ndarray | None = None) -> Iterator[tuple[torch.Tensor, torch.Tensor | None]]:
    """(x, y) for each index (int array or slice) in ``indices``: rows of ``images`` as float32 N,C,H,W in
    [0, 1] on ``device`` and their ``labels`` as a tensor there (None without labels), prefetched one ahead."""
    path = DevicePath(device)
    for staged in prefetched(lambda index: path.stage(images, index, labels), indices):
        yield path.finish(staged)
