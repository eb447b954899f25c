"""evaluate_robustness runs the ensemble as AutoAttack does (each member on the images still robust, white-box
members first), or each member alone with cascade=False; it reads memory-mapped uint8 images chunk by chunk."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from harness.frameworks import get_runtime  # noqa: E402
from harness.robustness import evaluate_robustness  # noqa: E402
from harness.robustness import checks as C  # noqa: E402

torch.set_num_threads(1)
#: square listed first: the cascade still runs the white-box members before it
MEMBERS = {"square": {"max_iter": 30}, "fgsm": {}, "pgd": {"steps": 3, "restarts": 1}}


@pytest.fixture(scope="module")
def linear():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10)).eval()
    images = np.random.default_rng(0).integers(0, 256, size=(40, 8, 8, 1), dtype=np.uint8)
    labels = get_runtime("torch").predict_logits(model, images).argmax(axis=1)
    labels[:4] = (labels[:4] + 1) % 10  # four examples start wrong
    return model, images, labels


def test_cascade_attacks_only_what_is_still_robust(linear):
    model, images, labels = linear
    report = evaluate_robustness("torch", model, images, labels, eps=(0.02, 0.05), attacks=MEMBERS, progress=False,
                                 batch_size=16)
    assert report.cascade and list(report.attack_accuracy) == ["fgsm", "pgd", "square"]
    for e in report.eps:
        after = [report.attack_accuracy[name][e] for name in report.attack_accuracy]
        attacked = [report.attacked[name][e] for name in report.attack_accuracy]
        assert attacked[0] == 36  # the correct ones
        assert attacked[1:] == [round(a * 40) for a in after[:-1]]  # the next member gets the survivors
        assert after == sorted(after, reverse=True) and after[-1] == report.robust_accuracy[e]
        assert report.whitebox_accuracy[e] == report.attack_accuracy["pgd"][e]
        assert np.array_equal(report.survival["ensemble"][e], report.survival["square"][e])
    assert report.robust_accuracy[0.05] < report.clean_accuracy
    data = report.to_dict()
    assert data["cascade"] is True and data["attacks"]["pgd"]["attacked"] == [report.attacked["pgd"][e]
                                                                              for e in report.eps]


def test_alone_mode_attacks_every_correct_image(linear):
    model, images, labels = linear
    report = evaluate_robustness("torch", model, images, labels, eps=(0.05,), attacks=MEMBERS, progress=False,
                                 cascade=False)
    assert not report.cascade and list(report.attack_accuracy) == list(MEMBERS)
    assert all(report.attacked[name][0.05] == 36 for name in MEMBERS)
    worst = np.logical_and.reduce([report.survival[name][0.05] for name in MEMBERS])
    assert report.robust_accuracy[0.05] == worst.mean()
    assert report.robust_accuracy[0.05] <= min(a[0.05] for a in report.attack_accuracy.values())


def test_blackbox_check_in_the_cascade_compares_before_and_after_square():
    whitebox, after_square = {0.1: 0.5}, {0.1: 0.4}
    assert C.check_blackbox(whitebox, after_square).flagged
    assert not C.check_blackbox(whitebox, {0.1: 0.499}).flagged


def _peak_bytes(model, path, count):
    images = np.load(path, mmap_mode="r")[:count]
    labels = get_runtime("torch").predict_logits(model, images).argmax(axis=1)
    tracemalloc.start()
    try:
        report = evaluate_robustness("torch", model, images, labels, eps=(0.05,), attacks=["fgsm"], progress=False,
                                     batch_size=64)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert report.count == count and report.robust_accuracy[0.05] < 1
    return peak


def test_memory_mapped_images_are_read_chunk_by_chunk(tmp_path):
    """Peak numpy memory grows with the images by logits and flags only, not by float copies of them."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3072, 10)).eval()
    path = tmp_path / "images.npy"
    mapped = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(3000, 32, 32, 3))
    mapped[:] = np.random.default_rng(1).integers(0, 256, size=mapped.shape, dtype=np.uint8)
    mapped.flush()
    del mapped
    growth = _peak_bytes(model, path, 3000) - _peak_bytes(model, path, 1000)
    float_copy = 2000 * 3072 * 4  # one float32 copy of the 2000 extra images
    assert growth < float_copy / 4, growth
