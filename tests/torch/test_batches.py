"""The device-side data path: gathered batches, prefetched one ahead, values of images_to_tensor."""

from __future__ import annotations

import threading

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from harness_torch.batches import device_batches, gather, images_to_tensor, prefetched  # noqa: E402


@pytest.fixture
def cache(tmp_path):
    """A read-only memory-mapped uint8 N,H,W,C array (what the dataset cache hands out) and labels."""
    rng = np.random.default_rng(0)
    np.save(tmp_path / "images.npy", rng.integers(0, 256, (23, 5, 4, 3), dtype=np.uint8))
    return np.load(tmp_path / "images.npy", mmap_mode="r"), rng.integers(0, 10, 23)


def test_gather_reads_rows_in_one_index_into_a_buffer(cache):
    images, _ = cache
    index = np.array([1, 4, 5, 19])
    out = np.empty((4, 5, 4, 3), np.uint8)
    assert gather(images, index, out=out) is out and np.array_equal(out, images[index])
    assert np.array_equal(gather(images, slice(20, 30), out=np.empty((3, 5, 4, 3), np.uint8)), images[20:])
    assert gather(images, index).flags.c_contiguous


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not torch.cuda.is_available(), reason="needs CUDA"))])
def test_device_batches_match_images_to_tensor_bit_for_bit(cache, device):
    images, labels = cache
    chunks = [np.array([0, 3, 7]), slice(8, 20), np.array([21, 22])]
    batches = list(device_batches(images, chunks, device, labels))
    assert len(batches) == 3
    for index, (x, y) in zip(chunks, batches):
        expected = images_to_tensor(np.asarray(images[index]))
        assert x.device.type == device and x.dtype == torch.float32 and x.shape == expected.shape
        assert torch.equal(x.cpu(), expected) and torch.equal(y.cpu(), torch.from_numpy(labels[index]))
    assert [x for x, _ in device_batches(images, [slice(0, 2)], device)][0].shape == (2, 3, 5, 4)
    assert [y for _, y in device_batches(images, [slice(0, 2)], device)] == [None]


def test_prefetched_loads_the_next_item_in_the_background_while_the_caller_works():
    loaded = {item: threading.Event() for item in range(3)}
    threads: set[str] = set()

    def load(item):
        threads.add(threading.current_thread().name)
        loaded[item].set()
        return item * 10

    out = []
    for value in prefetched(load, range(3)):
        item = value // 10
        if item + 1 < 3:  # the next item loads while the caller still holds this one
            assert loaded[item + 1].wait(timeout=30), f"item {item + 1} was not loaded ahead"
        out.append(value)
    assert out == [0, 10, 20]
    assert threading.current_thread().name not in threads
    assert list(prefetched(load, [])) == []


def test_prefetched_raises_a_load_error_in_order_and_stops():
    def load(item):
        if item == 2:
            raise ValueError("bad item 2")
        return item

    seen = []
    with pytest.raises(ValueError, match="bad item 2"):
        for value in prefetched(load, range(5)):
            seen.append(value)
    assert seen == [0, 1]
