"""Data: one training epoch from our memory-mapped cache vs torchvision ImageFolder + DataLoader.

A Tiny-ImageNet-layout folder of real JPEGs (200 classes x 100 64x64 images; quick:
16 x 20) is generated in a temporary folder with the tests' generator
(``tests/helpers.make_tiny_imagenet``: random-pixel JPEGs, one grayscale and one
CMYK among them). Ours converts it once with ``harness.data.prepare_dataset``
("tiny-imagenet", the ``harness data prepare`` path; timed separately and reported
in ``details``), then one epoch is our trainer's own batch iterator
(``harness_torch.train.train_batches``: shuffled order, batches of 256 read from the
memory-mapped uint8 cache, float32 N,C,H,W in [0, 1]). Theirs is
``torchvision.datasets.ImageFolder(train/, transform=ToTensor())`` in a
``DataLoader(batch_size=256, shuffle=True, num_workers=<cores>, persistent_workers=True)``:
the same images, batch size, shuffling and tensor format; its workers start in the
untimed warm-up, which favours theirs.

Checked before timing: same image count, class list and per-file labels; pixel-identical
tensors for a sample of files (both decode with Pillow); one checked epoch on each
side sees every image once (label histogram and the sum of all pixels agree).
Peak memory: a fresh process opens the cache and runs one epoch, sampling its
anonymous (private) RSS after every batch; the growth must stay within 4 batches'
worth, whatever the dataset's size (the cache is memory-mapped: its pages are the
OS's file cache, not the process's copy).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for path in (HERE, ROOT, ROOT / "plugins", ROOT / "tests"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from common import QUICK_REPEATS, Comparison, alternate, bench_main  # noqa: E402

BATCH_SIZE = 256
WORKERS = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
SEED = 0


def wnid_list(classes: int) -> list[str]:
    return [f"n{10000000 + i:08d}" for i in range(classes)]  # sorted: ImageFolder's class order too


def generate(root: Path, classes: int, per_class: int) -> Path:
    """A tiny-imagenet-200 folder under ``root`` (the tests' generator), 1 val image per class, no test split."""
    from helpers import make_tiny_imagenet

    return make_tiny_imagenet(root, wnids=tuple(wnid_list(classes)), train_per_class=per_class,
                              val_per_class=1, test=0)


def our_epoch(images: np.ndarray, labels: np.ndarray, epoch: int, visit=None) -> int:
    """One epoch through the trainer's batch iterator; ``visit(x, y)`` sees each batch."""
    import torch
    from harness_torch.train import train_batches

    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(SEED + epoch)).numpy()
    seen = 0
    for _, x, y in train_batches(images, labels, order, BATCH_SIZE, "cpu"):
        seen += len(y)
        if visit is not None:
            visit(x, y)
    return seen


def their_epoch(loader, visit=None) -> int:
    seen = 0
    for x, y in loader:
        seen += len(y)
        if visit is not None:
            visit(x, y)
    return seen


def epoch_totals(run_epoch, num_classes: int) -> tuple[int, np.ndarray, float]:
    """(images seen, label histogram, sum of all pixel values) of one epoch."""
    histogram = np.zeros(num_classes, dtype=np.int64)
    total = [0, 0.0]

    def visit(x, y):
        assert x.dtype.is_floating_point and x.ndim == 4 and x.shape[1] == 3, (x.dtype, x.shape)
        histogram[:] += np.bincount(y.numpy(), minlength=num_classes)
        total[1] += float(x.double().sum())

    total[0] = run_epoch(visit)
    return total[0], histogram, total[1]


def check(train, dataset, plan_paths: list[Path], folder) -> dict:
    """Same files, labels and classes; identical pixels on a sample; one epoch each sees every image once."""
    import torch

    checks: dict = {"images": [len(train), len(folder)], "classes": [dataset.num_classes, len(folder.classes)]}
    ok = len(train) == len(folder) and list(dataset.class_ids) == list(folder.classes)
    their_paths = [Path(p).resolve() for p, _ in folder.samples]
    their_targets = np.array([t for _, t in folder.samples])
    ok &= their_paths == plan_paths and bool((their_targets == np.asarray(train.labels)).all())
    checks["same_files_and_labels"] = bool(ok)
    sample = np.random.default_rng(SEED).choice(len(train), size=min(64, len(train)), replace=False)
    worst = 0.0
    for i in sample:
        theirs = folder[int(i)][0]  # ToTensor(): float C,H,W in [0, 1]
        ours = torch.from_numpy(np.array(train.images[i])).permute(2, 0, 1).float() / 255.0
        worst = max(worst, float((ours - theirs).abs().max()))
    checks["pixel_sample"] = {"files": len(sample), "max_abs_diff": worst}
    ok &= worst == 0.0
    return {"ok": bool(ok), **checks}


MEMORY_PROBE = """
import sys; sys.path[:0] = {paths!r}
import numpy as np
from harness.data import open_cache
import bench_data
def anon():
    for line in open('/proc/self/status'):
        if line.startswith('RssAnon:'):
            return int(line.split()[1]) * 1024
train = open_cache(bench_data.Path({cache!r}), verify=False).split('train')
images, labels = train.images, np.asarray(train.labels)
bench_data.our_epoch(images, labels, 0)  # torch and its allocator warmed up
base, peak = anon(), 0
def visit(x, y):
    global peak
    peak = max(peak, anon())
bench_data.our_epoch(images, labels, 1, visit)
print(base, peak, images.nbytes, type(images).__name__)
"""


def memory_probe(cache: Path) -> dict:
    """Anonymous-RSS growth of a fresh process during one of our epochs (after a warm-up epoch; Linux)."""
    if not Path("/proc/self/status").is_file():
        return {"ok": True, "note": "not measured: needs Linux's /proc/self/status (RssAnon)"}
    code = MEMORY_PROBE.format(paths=[str(HERE), str(ROOT), str(ROOT / "plugins")], cache=str(cache))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    base, peak, dataset_bytes, kind = out.stdout.split()[-4:]
    growth = max(0, int(peak) - int(base))
    batch_bytes = BATCH_SIZE * 64 * 64 * 3 * (1 + 4)  # one uint8 batch and its float32 tensor
    return {"dataset_mib": round(int(dataset_bytes) / 2**20, 1), "peak_anon_growth_mib": round(growth / 2**20, 1),
            "growth_fraction_of_dataset": round(growth / int(dataset_bytes), 4), "array_type": kind,
            "bound": "4 batches (uint8 + float32), whatever the dataset size",
            "bound_mib": round(4 * batch_bytes / 2**20, 1), "ok": kind == "memmap" and growth <= 4 * batch_bytes}


def run(quick: bool = False, repeats: int = 5) -> list[Comparison]:
    import torch
    import torchvision
    from torch.utils.data import DataLoader
    from torchvision import datasets, transforms

    from harness.data import prepare_dataset
    from harness.data.tiny_imagenet import tiny_imagenet

    classes, per_class = (16, 20) if quick else (200, 100)
    repeats = QUICK_REPEATS if quick else repeats
    comparison = Comparison(
        name="data_epoch_vs_imagefolder",
        title=f"Data: one epoch of {classes * per_class} 64x64 JPEGs (Tiny-ImageNet layout), batch {BATCH_SIZE}",
        ours="harness cache (memory-mapped .npy) + trainer batches",
        theirs=f"torchvision {torchvision.__version__} ImageFolder + DataLoader ({WORKERS} workers)",
        target="ratio <= 0.1 (10x faster) after the one-time conversion", target_ratio=0.1)
    with tempfile.TemporaryDirectory(prefix="bench-data-") as tmp:
        tmp = Path(tmp)
        started = time.perf_counter()
        source = generate(tmp / "source", classes, per_class)
        generated = time.perf_counter() - started

        started = time.perf_counter()
        dataset = prepare_dataset("tiny-imagenet", cache_dir=tmp / "cache", source=str(source))
        conversion = time.perf_counter() - started
        train = dataset.split("train")
        images, labels = train.images, np.asarray(train.labels)
        plan_paths = [r.path.resolve() for r in tiny_imagenet(str(source)).plan().splits["train"]]

        folder = datasets.ImageFolder(str(source / "train"), transform=transforms.ToTensor())
        loader = DataLoader(folder, batch_size=BATCH_SIZE, shuffle=True, num_workers=WORKERS,
                            persistent_workers=WORKERS > 0, generator=torch.Generator().manual_seed(SEED))

        correctness = check(train, dataset, plan_paths, folder)
        ours_totals = epoch_totals(lambda visit: our_epoch(images, labels, 0, visit), dataset.num_classes)
        theirs_totals = epoch_totals(lambda visit: their_epoch(loader, visit), dataset.num_classes)
        same_epoch = (ours_totals[0] == theirs_totals[0] == len(labels)
                      and bool((ours_totals[1] == theirs_totals[1]).all())
                      and abs(ours_totals[2] - theirs_totals[2]) <= 1e-9 * max(1.0, abs(theirs_totals[2])))
        correctness["epoch"] = {"images_seen": [ours_totals[0], theirs_totals[0]],
                                "same_label_histogram": bool((ours_totals[1] == theirs_totals[1]).all()),
                                "pixel_sum": [ours_totals[2], theirs_totals[2]], "ok": bool(same_epoch)}
        memory = memory_probe(dataset.path)
        correctness["memory"] = memory
        comparison.correctness = correctness
        comparison.correct = bool(correctness["ok"] and same_epoch and memory["ok"])
        if comparison.correct:
            epoch = [0]

            def ours():
                epoch[0] += 1
                our_epoch(images, labels, epoch[0])

            comparison.ours_seconds, comparison.theirs_seconds = alternate(ours, lambda: their_epoch(loader), repeats)
        their_median = float(np.median(comparison.theirs_seconds)) if comparison.theirs_seconds else None
        comparison.details = {
            "images": len(labels), "classes": classes, "per_class": per_class, "image_shape": [64, 64, 3],
            "batch_size": BATCH_SIZE, "shuffle": True, "workers": WORKERS, "persistent_workers": True,
            "theirs_transform": "ToTensor()", "ours_output": "float32 N,C,H,W in [0, 1] (images_to_tensor)",
            "torch_threads": torch.get_num_threads(), "repeats": len(comparison.ours_seconds),
            "generate_seconds": round(generated, 2),
            "conversion_seconds": round(conversion, 2),
            "conversion_includes": f"train + {len(dataset.split('val'))} val images, sha256 of the cache files",
            "conversion_vs_their_epoch": round(conversion / their_median, 2) if their_median else None,
            "jpeg_mib": round(sum(p.stat().st_size for p in plan_paths) / 2**20, 1),
            "peak_memory": memory,
        }
        del loader  # stops the persistent workers before the folder goes
    return [comparison]


if __name__ == "__main__":
    sys.exit(bench_main(run))
