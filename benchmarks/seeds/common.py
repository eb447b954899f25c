"""Shared plumbing of the PyTorch seed reproductions: command line, data and model choice, result JSON, tables.

Three scales, one code path:

- default (CPU, minutes on 2 cores): the harness's embedded 8x8 digits (``load_dataset("digits")``,
  train / val splits) and the 2-conv ``small-cnn``, Adam;
- ``--quick`` (seconds): the same on a few hundred images for one or two epochs; checks the plumbing;
- ``--full`` (the seed's scale, GPU): real Tiny ImageNet (``--data DIR``: a local ``tiny-imagenet-200``
  folder or zip; without it the dataset plugin's recorded preparation, else its download) and
  torchvision's ImageNet-pretrained Wide ResNet-50-2 with the 512-unit head
  (``create_backbone("wide_resnet50_2", pretrained=True, head_hidden=512)``; ``--weights PATH`` for a
  local torchvision state dict on an offline machine), SGD.

Results go to ``benchmarks/results/seeds/<name>[-quick|-full][-eps<EPS>].json`` (the eps tag when ``--eps``
is not the seed's default; ``--out`` to change it).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

RESULTS = Path(__file__).resolve().parents[1] / "results" / "seeds"
#: the seed's budget for FGSM and BIM, "eps = 0.2", in the units of the tensors its torchvision pipeline
#: attacked: ImageNet-normalised inputs (x - mean) / std. One normalised unit is std pixel units, so in
#: our [0, 1] pixel space it is 0.2 x the mean ImageNet std (0.229, 0.224, 0.225) = 0.0452 (11.5 / 255).
SEED_EPS_NORMALISED = 0.2
IMAGENET_STD = (0.229, 0.224, 0.225)  # torchvision's; harness_torch.backbones holds the same (imports torch)
SEED_EPS = SEED_EPS_NORMALISED * sum(IMAGENET_STD) / len(IMAGENET_STD)
SEED_BIM_STEPS = 5
PRECISIONS = ("fp32", "bf16", "fp16")


@dataclass(frozen=True)
class Data:
    """Train and validation splits (uint8 N,H,W,C images, int64 labels) and what they are."""

    name: str
    train_images: np.ndarray
    train_labels: np.ndarray
    val_images: np.ndarray
    val_labels: np.ndarray
    num_classes: int
    image_shape: tuple[int, int, int]

    def describe(self) -> str:
        h, w, c = self.image_shape
        return (f"{self.name}: {len(self.train_labels)} train / {len(self.val_labels)} val images, "
                f"{h}x{w}x{c}, {self.num_classes} classes")


def parser(description: str, *, cpu_epochs: int, full_epochs: int, quick_epochs: int = 1) -> argparse.ArgumentParser:
    """The options every seed script takes; a script adds its own."""
    p = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--full", action="store_true",
                   help="the seed's scale: real Tiny ImageNet, Wide ResNet-50-2 (512 head), GPU")
    p.add_argument("--quick", action="store_true", help="a few hundred digits, tiny epochs: checks that it runs")
    p.add_argument("--data", type=Path, default=None,
                   help="--full: local tiny-imagenet-200 folder or .zip (default: the prepared or downloaded one)")
    p.add_argument("--weights", type=Path, default=None,
                   help="--full: local torchvision Wide ResNet-50-2 state dict instead of downloading it")
    p.add_argument("--epochs", type=int, default=None,
                   help=f"training epochs per model (default: {cpu_epochs} on CPU, {full_epochs} with --full, "
                        f"{quick_epochs} with --quick)")
    p.add_argument("--eps", type=float, default=SEED_EPS,
                   help=f"FGSM/BIM L-inf budget in [0, 1] pixel space (default {SEED_EPS:.4f} = the seed's 0.2 "
                        "on ImageNet-normalised inputs; 0.2 reads it as pixel space)")
    p.add_argument("--precision", choices=PRECISIONS, default=None,
                   help="training precision, passed to the defense (default: the trainer's own, fp32)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (default: 1 on the CPU scales, where the tiny model runs fastest on one; "
                        "torch's own with --full)")
    p.add_argument("--out", type=Path, default=None, help="result JSON (default: benchmarks/results/seeds/...)")
    p.set_defaults(_epochs=(cpu_epochs, full_epochs, quick_epochs))
    return p


def parse(p: argparse.ArgumentParser, argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parsed options with ``epochs`` resolved for the scale; one-line errors for bad combinations."""
    args = p.parse_args(argv)
    if args.full and args.quick:
        p.error("--full and --quick exclude each other")
    if (args.data or args.weights) and not args.full:
        p.error("--data and --weights go with --full (the CPU scale uses the embedded digits)")
    if args.data is not None and not args.data.exists():
        p.error(f"--data {args.data}: no such file or folder")
    if args.weights is not None and not args.weights.is_file():
        p.error(f"--weights {args.weights}: no such file")
    if not 0 < args.eps <= 1:
        p.error(f"--eps must be in (0, 1] (pixel space), got {args.eps}")
    cpu, full, quick = args._epochs
    args.epochs = args.epochs or (full if args.full else quick if args.quick else cpu)
    if args.epochs < 1:
        p.error(f"--epochs must be at least 1, got {args.epochs}")
    return args


def scale(args: argparse.Namespace) -> str:
    return "full" if args.full else "quick" if args.quick else "cpu"


def setup(args: argparse.Namespace) -> None:
    """Threads and the global seed (torch imported here, never at module import)."""
    from harness_torch.runtime import configure

    configure(threads=args.threads or (None if args.full else 1), seed=args.seed)


def run_dir(args: argparse.Namespace, script: str, model: str) -> Path | None:
    """--full: runs/seeds/<script>/<model> (checkpoint every epoch; a rerun resumes); else None (nothing written)."""
    return Path("runs") / "seeds" / script / model if args.full else None


def load_data(args: argparse.Namespace, quick_train: int = 300, quick_val: int = 150) -> Data:
    """Digits (default, --quick: the first images of each split) or Tiny ImageNet's train / val (--full)."""
    from harness.data import load_dataset
    from harness.errors import UsageError

    if args.full:
        params = {"source": str(args.data)} if args.data else {}
        try:
            ds = load_dataset("tiny-imagenet", progress=True, **params)
        except UsageError:  # not prepared here and no --data: the dataset plugin's download route
            if args.data:
                raise
            ds = load_dataset("tiny-imagenet", progress=True, download=True)
        name = "tiny-imagenet"
    else:
        ds, name = load_dataset("digits"), "digits"
    train, val = ds.split("train"), ds.split("val")
    n_train, n_val = (quick_train, quick_val) if args.quick else (len(train.labels), len(val.labels))
    return Data(name, np.asarray(train.images[:n_train]), np.asarray(train.labels[:n_train], dtype=np.int64),
                np.asarray(val.images[:n_val]), np.asarray(val.labels[:n_val], dtype=np.int64),
                ds.num_classes, tuple(ds.image_shape))


def backbone(args: argparse.Namespace, num_classes: int, image_shape: tuple[int, int, int],
             pretrained: bool = True) -> Any:
    """small-cnn (CPU scales) or the seed's Wide ResNet-50-2 with a 512 head, ImageNet-pretrained (--full;
    ``pretrained=False`` when its weights are replaced anyway)."""
    from harness.registry import create_backbone

    if args.full:
        weights = {"weights": str(args.weights)} if args.weights else {"pretrained": True}
        return create_backbone("wide_resnet50_2", framework="torch", num_classes=num_classes,
                               input_shape=image_shape, head_hidden=512, **(weights if pretrained else {}))
    return create_backbone("small-cnn", framework="torch", num_classes=num_classes, input_shape=image_shape)


def training_knobs(args: argparse.Namespace) -> dict[str, Any]:
    """TrainingConfig knobs for the scale: Adam 1e-3 on CPU; SGD 0.01 with momentum and step-downs on --full
    (the seed gives no optimizer or epochs). ``precision`` only when given (older trainers lack the knob)."""
    knobs: dict[str, Any] = {"epochs": args.epochs, "seed": args.seed, "device": args.device,
                             "progress": sys.stderr.isatty()}
    if args.full:
        knobs.update(optimizer="sgd", lr=0.01, momentum=0.9, weight_decay=5e-4, schedule="step", batch_size=128)
    else:
        knobs.update(optimizer="adam", lr=1e-3, weight_decay=0.0, schedule="none", batch_size=64)
    if args.precision is not None:
        knobs["precision"] = args.precision
    return knobs


def result_path(args: argparse.Namespace, name: str) -> Path:
    if args.out is not None:
        return args.out
    suffix = {"cpu": "", "quick": "-quick", "full": "-full"}[scale(args)]
    if abs(args.eps - SEED_EPS) > 1e-9:
        suffix += f"-eps{args.eps:g}"
    return RESULTS / f"{name}{suffix}.json"


def write_result(args: argparse.Namespace, name: str, payload: dict[str, Any], started: float) -> Path:
    """Write ``payload`` with the run's settings and machine to the result JSON (atomically); its path."""
    from harness.atomic import write_json

    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if not k.startswith("_")}
    path = result_path(args, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, {"name": name, "scale": scale(args), "settings": settings, **payload,
                      "seconds": round(time.perf_counter() - started, 1), "machine": machine()})
    return path


def machine() -> dict[str, Any]:
    import torch

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {"python": sys.version.split()[0], "platform": platform.platform(), "cpus": os.cpu_count(),
            "torch": torch.__version__, "gpu": gpu}


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A markdown table; floats in [0, 1] print as percentages with one decimal, other cells as they are."""
    def cell(value: Any) -> str:
        if isinstance(value, float):
            return f"{value:.1%}" if 0.0 <= value <= 1.0 else f"{value:.4g}"
        return str(value)

    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " if i == 0 else " ---: " for i in
                                                              range(len(header))) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"
