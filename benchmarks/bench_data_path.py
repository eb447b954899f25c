"""Data path: one training epoch with the model replaced by an identity vs with the real model.

Is the data path (gather from the memory-mapped uint8 cache, transfer, conversion to float32
N,C,H,W, augmentation on the device) the bottleneck of training? Both sides are one epoch of
the torch trainer (``Trainer.fit``, ``standard`` defense, random crop + horizontal flip, the
same cache, batch size, order and device); ours ("data only") trains a stand-in model whose
logits are a scaled slice of its input pixels (one parameter: the step is a trivial loss),
theirs trains the real model (``small-cnn`` on the CPU; ``mobilenet_v2`` on CUDA, or
``--model``). The ratio data-only / full is the share of an epoch the data path would take
if nothing overlapped: well below 1 means the data path is not the bottleneck.

The cache is generated: random uint8 64x64x3 images (5,000; ``--quick`` 512; ``--full``
100,000, Tiny ImageNet's training-set size) and 200 classes, saved as ``.npy`` and opened
memory-mapped, as ``harness.data`` opens a prepared dataset.

Checked before timing: the trainer's batch iterator (``harness_torch.train.train_batches``)
visits every image once per epoch, and its batches equal ``images_to_tensor`` of the same rows
bit for bit (on the device the epoch runs on); the stand-in's epoch trains (finite loss,
its parameter moved).

    python benchmarks/bench_data_path.py [--quick] [--full] [--model NAME] [--device cpu|cuda] [--repeats N]
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for path in (HERE, ROOT, ROOT / "plugins"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

import numpy as np  # noqa: E402

from common import QUICK_REPEATS, Comparison, alternate, bench_main  # noqa: E402

CLASSES = 200
SHAPE = (64, 64, 3)
#: images in the generated cache: default, --quick, --full
IMAGES = {"default": 5000, "quick": 512, "full": 100_000}
#: the seed's training augmentations (Tiny ImageNet: 4-pixel random crop, horizontal flip)
AUGMENTATIONS = ({"name": "random-crop", "padding": 4}, {"name": "hflip", "p": 0.5})


def make_cache(folder: Path, count: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(images, labels): a generated uint8 N,64,64,3 cache written in chunks and opened memory-mapped."""
    rng = np.random.default_rng(seed)
    images = np.lib.format.open_memmap(folder / "images.npy", mode="w+", dtype=np.uint8, shape=(count, *SHAPE))
    for start in range(0, count, 4096):
        images[start : start + 4096] = rng.integers(0, 256, (min(4096, count - start), *SHAPE), dtype=np.uint8)
    images.flush()
    del images
    np.save(folder / "labels.npy", rng.integers(0, CLASSES, count).astype(np.int64))
    return np.load(folder / "images.npy", mmap_mode="r"), np.load(folder / "labels.npy", mmap_mode="r")


def data_only_model(num_classes: int = CLASSES) -> Any:
    """The model replaced by an identity: logits are the first ``num_classes`` input values times one weight."""
    import torch
    from torch import nn

    class DataOnly(nn.Module):
        arch = "data-only"

        def __init__(self) -> None:
            super().__init__()
            self.num_classes = num_classes
            self.scale = nn.Parameter(torch.ones(()))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.flatten(1)[:, : self.num_classes] * self.scale

    return DataOnly()


def real_model(name: str) -> Any:
    from harness.registry import create_backbone

    return create_backbone(name, framework="torch", num_classes=CLASSES, input_shape=SHAPE)


def trainer(device: str, batch_size: int, **precision: Any) -> Any:
    """The ``standard`` torch trainer for one epoch (no validation, no files, no progress bar)."""
    from harness.registry import create_defense

    return create_defense("standard", framework="torch", epochs=1, batch_size=batch_size, lr=0.01,
                          weight_decay=0.0, augmentations=AUGMENTATIONS, device=device, progress=False,
                          **precision)


def check_batches(images: np.ndarray, labels: np.ndarray, batch_size: int, device: str) -> dict[str, Any]:
    """One epoch of the trainer's batch iterator: every image once, batches equal to images_to_tensor's."""
    import torch
    from harness_torch.train import images_to_tensor, train_batches

    order = np.random.default_rng(1).permutation(len(labels))
    seen = np.zeros(len(labels), dtype=np.int64)
    worst, compared = 0.0, 0
    for number, (index, x, y) in enumerate(train_batches(images, labels, order, batch_size, device)):
        seen[index] += 1
        ok_labels = torch.equal(y.cpu(), torch.from_numpy(np.asarray(labels[index])))
        if number < 3 or not ok_labels:
            worst = max(worst, float((x.cpu() - images_to_tensor(np.asarray(images[index]))).abs().max()))
            compared += 1
        if not ok_labels:
            return {"ok": False, "labels_match": False, "batch": number}
    every_once = bool((seen == 1).all())
    return {"ok": every_once and worst == 0.0, "every_image_once": every_once, "labels_match": True,
            "batches_compared": compared, "max_abs_diff_vs_images_to_tensor": worst}


def run(quick: bool = False, repeats: int = 3, full: bool = False, model: str | None = None,
        device: str | None = None, batch_size: int | None = None, precision: dict[str, Any] | None = None,
        images: int | None = None) -> list[Comparison]:
    import torch

    from harness_torch.device import resolve_device

    device = str(resolve_device(device or os.environ.get("HARNESS_DEVICE") or "auto"))
    cuda = device.startswith("cuda")
    model = model or ("mobilenet_v2" if cuda else "small-cnn")
    batch_size = batch_size or (256 if cuda else 128)
    count = images or IMAGES["quick" if quick else "full" if full else "default"]
    repeats = QUICK_REPEATS if quick else repeats
    precision = precision or {}
    comparison = Comparison(
        name="data_path_vs_training_step",
        title=f"Data path: one epoch of {count} 64x64 images, model replaced by an identity vs {model} ({device})",
        ours="trainer epoch, data only (gather, transfer, convert, crop + flip, trivial loss)",
        theirs=f"trainer epoch with {model}", target="ratio <= 0.25 (the data path is not the bottleneck)",
        target_ratio=0.25)
    with tempfile.TemporaryDirectory(prefix="bench-data-path-") as tmp:
        cache, labels = make_cache(Path(tmp), count)
        stand_in, real = data_only_model().to(device), real_model(model).to(device)
        data_trainer, full_trainer = trainer(device, batch_size, **precision), trainer(device, batch_size, **precision)
        correctness = {"batches": check_batches(cache, labels, batch_size, device)}
        before = float(stand_in.scale.detach())
        history = data_trainer.fit(stand_in, (cache, labels))
        loss = history.epochs[-1].train_loss
        correctness["data_only_epoch"] = {"train_loss": loss, "scale_before": before,
                                          "scale_after": float(stand_in.scale.detach()),
                                          "ok": math.isfinite(loss) and float(stand_in.scale.detach()) != before}
        comparison.correctness = correctness
        comparison.correct = all(part["ok"] for part in correctness.values())

        def epoch(which: Any, net: Any):
            def one() -> None:
                which.fit(net, (cache, labels))
                if cuda:
                    torch.cuda.synchronize()
            return one

        if comparison.correct:
            comparison.ours_seconds, comparison.theirs_seconds = alternate(
                epoch(data_trainer, stand_in), epoch(full_trainer, real), repeats)
    comparison.details = {
        "images": count, "image_shape": list(SHAPE), "classes": CLASSES, "batch_size": batch_size,
        "device": device, "model": model, "augmentations": list(AUGMENTATIONS), "precision": precision or "fp32",
        "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
        "repeats": len(comparison.ours_seconds), "cache": "generated uint8 .npy, opened memory-mapped",
        "prefetch": "next batch gathered (CUDA: pinned + copied on a side stream) while the step runs",
    }
    if comparison.ours_seconds:
        median = sorted(comparison.ours_seconds)[len(comparison.ours_seconds) // 2]
        comparison.details["data_only_images_per_second"] = round(count / median, 1)
    if comparison.theirs_seconds:
        median = sorted(comparison.theirs_seconds)[len(comparison.theirs_seconds) // 2]
        comparison.details["full_images_per_second"] = round(count / median, 1)
    return [comparison]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--full", action="store_true", help=f"{IMAGES['full']} images (Tiny ImageNet's train size)")
    parser.add_argument("--model", default=None, 
                        help="backbone of the full step (small-cnn on CPU, mobilenet_v2 on CUDA)")
    parser.add_argument("--device", default=None, help="cpu, cuda, ... (default: HARNESS_DEVICE or auto)")
    args, rest = parser.parse_known_args(sys.argv[1:] if argv is None else argv)

    def configured(**kwargs: Any) -> list[Comparison]:
        return run(full=args.full, model=args.model, device=args.device, **kwargs)

    return bench_main(configured, rest)


if __name__ == "__main__":
    sys.exit(main())
