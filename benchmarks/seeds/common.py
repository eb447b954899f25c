"""Shared plumbing of the seed reproductions (PyTorch and NSL scripts): command line, data, seeds, result JSON,
tables, one-line errors.

Three scales, one code path:

- default (CPU, minutes on 2 cores): the harness's embedded 8x8 digits (``load_dataset("digits")``);
- ``--quick`` (seconds): the same on the first images of each split for one epoch; checks the plumbing;
- ``--full`` (the seed's scale, GPU): real Tiny ImageNet (``--data DIR``: a local ``tiny-imagenet-200``
  folder or zip; without it the dataset plugin's recorded preparation, else its download).

The PyTorch scripts (``framework="torch"``) also take ``--weights`` / ``--eps`` / ``--device`` and, with
``--full``, train torchvision's ImageNet-pretrained Wide ResNet-50-2 with the 512-unit head
(``create_backbone("wide_resnet50_2", pretrained=True, head_hidden=512)``), SGD; their ``--out`` is a file,
by default ``benchmarks/results/seeds/<name>[-quick|-full][-eps<EPS>].json``. The NSL scripts
(``framework="tf"``; evaluation in :mod:`nsl_eval`) take ``--data`` at any scale and write
``<name>[_quick|_full].json`` into the ``--out`` folder.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "benchmarks" / "results" / "seeds"
#: the seed's budget for FGSM and BIM, "eps = 0.2", in the units of the tensors its torchvision pipeline
#: attacked: ImageNet-normalised inputs (x - mean) / std. One normalised unit is std pixel units, so in
#: our [0, 1] pixel space it is 0.2 x the mean ImageNet std (0.229, 0.224, 0.225) = 0.0452 (11.5 / 255).
SEED_EPS_NORMALISED = 0.2
IMAGENET_STD = (0.229, 0.224, 0.225)  # torchvision's; harness_torch.backbones holds the same (imports torch)
SEED_EPS = SEED_EPS_NORMALISED * sum(IMAGENET_STD) / len(IMAGENET_STD)
SEED_BIM_STEPS = 5
PRECISIONS = ("fp32", "bf16", "fp16")  # harness.training.config's (that module is not imported here)
FRAMEWORKS = ("torch", "tf")


# -- command line ---------------------------------------------------------------------------------------------

def parser(description: str, *, cpu_epochs: int | None = None, full_epochs: int | None = None,
           quick_epochs: int = 1, framework: str = "torch") -> argparse.ArgumentParser:
    """The options every seed script takes (plus the PyTorch scripts' ``--weights``, ``--eps``, ``--device``);
    a script adds its own. ``None`` epochs: the script's own default (``args.epochs`` stays None)."""
    if framework not in FRAMEWORKS:
        raise ValueError(f"framework must be one of {FRAMEWORKS}, got {framework!r}")
    torch = framework == "torch"

    def default(epochs: int | None) -> str:
        return "the script's" if epochs is None else str(epochs)

    p = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--full", action="store_true",
                   help="the seed's scale: real Tiny ImageNet (--data DIR, else the prepared or downloaded "
                        "tiny-imagenet)" + (", Wide ResNet-50-2 (512 head)" if torch else "") + "; meant for a GPU")
    p.add_argument("--quick", action="store_true",
                   help="the first images of each split, one epoch per model: checks the plumbing in seconds")
    p.add_argument("--data", type=Path, default=None,
                   help="a tiny-imagenet-200 folder or its .zip (default: digits; with --full the prepared or "
                        "downloaded tiny-imagenet)" + (" -- with --full only" if torch else ""))
    if torch:
        p.add_argument("--weights", type=Path, default=None,
                       help="--full: local torchvision Wide ResNet-50-2 state dict instead of downloading it")
    p.add_argument("--epochs", type=int, default=None,
                   help=f"training epochs per model (default: {default(cpu_epochs)} on CPU, "
                        f"{default(full_epochs)} with --full, {quick_epochs} with --quick)")
    if torch:
        p.add_argument("--eps", type=float, default=SEED_EPS,
                       help=f"FGSM/BIM L-inf budget in [0, 1] pixel space (default {SEED_EPS:.4f} = the seed's 0.2 "
                            "on ImageNet-normalised inputs; 0.2 reads it as pixel space)")
    p.add_argument("--precision", choices=PRECISIONS, default=None,
                   help="training precision, passed to the defenses (default: the trainer's own, fp32)")
    p.add_argument("--seed", type=int, default=0)
    if torch:
        p.add_argument("--device", default="auto")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (default: 1 on the CPU scales, where the tiny model runs fastest on one; "
                        "torch's own with --full)" if torch else "TensorFlow CPU threads (default: all)")
    p.add_argument("--out", type=Path, default=None if torch else RESULTS,
                   help="result JSON (default: benchmarks/results/seeds/...)" if torch
                   else f"folder for the result JSON (default {RESULTS})")
    p.set_defaults(_epochs=(cpu_epochs, full_epochs, quick_epochs), _framework=framework)
    return p


def parse(p: argparse.ArgumentParser, argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Parsed options with ``epochs`` resolved for the scale; one-line errors for bad combinations.
    (A missing ``--data`` of an NSL script is :func:`load_data`'s one-line error.)"""
    args = p.parse_args(argv)
    if args.full and args.quick:
        p.error("--full and --quick exclude each other")
    if args._framework == "torch":
        if (args.data or args.weights) and not args.full:
            p.error("--data and --weights go with --full (the CPU scale uses the embedded digits)")
        if args.data is not None and not args.data.exists():
            p.error(f"--data {args.data}: no such file or folder")
        if args.weights is not None and not args.weights.is_file():
            p.error(f"--weights {args.weights}: no such file")
        if not 0 < args.eps <= 1:
            p.error(f"--eps must be in (0, 1] (pixel space), got {args.eps}")
    cpu, full, quick = args._epochs
    if args.epochs is None:
        args.epochs = {"cpu": cpu, "full": full, "quick": quick}[scale(args)]
    if args.epochs is not None and args.epochs < 1:
        p.error(f"--epochs must be at least 1, got {args.epochs}")
    return args


def parse_args(description: str, argv: Sequence[str] | None = None, **options: Any) -> argparse.Namespace:
    """:func:`parser` and :func:`parse` for an NSL script that adds no option of its own."""
    return parse(parser(description, **{"framework": "tf", **options}), argv)


def scale(args: argparse.Namespace) -> str:
    return "full" if args.full else "quick" if args.quick else "cpu"


def run(main: Callable[[Sequence[str] | None], int], argv: Sequence[str] | None = None) -> int:
    """``main(argv)``; a :class:`harness.errors.HarnessError` prints one line (and its hint) on stderr and
    returns its exit code (2: bad input, 1: failure), as the ``harness`` command does."""
    from harness.errors import HarnessError

    try:
        return main(argv)
    except HarnessError as exc:
        print(f"Error: {exc.message}" + (f"\nHint: {exc.hint}" if exc.hint else ""), file=sys.stderr)
        return exc.exit_code


# -- data -----------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Split:
    images: np.ndarray  # uint8 N,H,W,C
    labels: np.ndarray  # int64


@dataclass(frozen=True)
class Data:
    """Train, validation and test splits and what they are. ``test`` is the final evaluation's split: Tiny
    ImageNet's test split is unlabelled, so there it is the val split again."""

    name: str
    train: Split
    val: Split
    test: Split
    num_classes: int
    image_shape: tuple[int, int, int]

    train_images = property(lambda self: self.train.images)
    train_labels = property(lambda self: self.train.labels)
    val_images = property(lambda self: self.val.images)
    val_labels = property(lambda self: self.val.labels)

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train.labels), "val": len(self.val.labels), "test": len(self.test.labels)}

    def describe(self) -> str:
        h, w, c = self.image_shape
        return (f"{self.name}: {len(self.train.labels)} train / {len(self.val.labels)} val images, "
                f"{h}x{w}x{c}, {self.num_classes} classes")


def load_data(args: argparse.Namespace, quick: tuple[int, int] = (96, 96)) -> Data:
    """Digits by default; ``--data DIR`` a tiny-imagenet-200 folder or zip; ``--full`` alone the prepared
    tiny-imagenet (downloaded when none is prepared). ``--quick`` keeps the first ``quick`` = (train, val and
    test) images of each split."""
    from harness.data import default_cache, load_dataset

    if args.data is not None:
        ds = load_dataset("tiny-imagenet", source=str(args.data), progress=True)
    elif args.full:
        ds = load_dataset("tiny-imagenet", progress=True) if default_cache("tiny-imagenet") else load_dataset(
            "tiny-imagenet", download=True, progress=True)
    else:
        ds = load_dataset("digits")
    train, val = ds.split("train"), ds.split("val")
    test = ds.split("test") if ds.name == "digits" else val
    counts = (quick[0], quick[1], quick[1]) if args.quick else (None, None, None)
    train, val, test = (Split(np.asarray(s.images[:n]), np.asarray(s.labels[:n], dtype=np.int64))
                        for s, n in zip((train, val, test), counts))
    return Data(ds.name, train, val, test, ds.num_classes, tuple(int(v) for v in ds.image_shape))


# -- seeds ----------------------------------------------------------------------------------------------------

def set_seeds(seed: int, framework: str) -> None:
    """The global seeds a script's training draws from: torch's (``harness_torch.runtime.configure``), or for
    TensorFlow Python's, numpy's and TensorFlow's (Keras's unseeded initialisers draw from Python's ``random``;
    not ``harness_tf.runtime.configure``, which also turns on op determinism)."""
    if framework == "torch":
        from harness_torch.runtime import configure

        configure(seed=seed)
    else:
        import harness_tf  # noqa: F401 - selects Keras 2 (TF_USE_LEGACY_KERAS) before TensorFlow is imported
        import tf_keras as keras

        keras.utils.set_random_seed(seed)


def training_params(args: argparse.Namespace, **params: Any) -> dict[str, Any]:
    """A defense's training knobs: ``params`` with the run's ``--seed``, progress lines (unless ``params`` says),
    and ``precision`` only when ``--precision`` was given (the trainer's own default otherwise)."""
    if args.precision is not None:
        params["precision"] = args.precision
    return {"seed": args.seed, "progress": True, **params}


# -- results --------------------------------------------------------------------------------------------------

def write_result(path: Path, result: Mapping[str, Any]) -> Path:
    """``result`` with the machine it ran on, written atomically to ``path`` (folders made); the path."""
    from harness.atomic import write_json

    path.parent.mkdir(parents=True, exist_ok=True)
    write_json(path, {**result, "machine": machine()})
    return path


def machine() -> dict[str, Any]:
    """Python, platform, CPU count; torch's version and GPU when torch is loaded."""
    facts: dict[str, Any] = {"python": sys.version.split()[0], "platform": platform.platform(),
                             "cpus": os.cpu_count()}
    if "torch" in sys.modules:
        import torch

        facts.update(torch=torch.__version__,
                     gpu=torch.cuda.get_device_name(0) if torch.cuda.is_available() else None)
    return facts


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[Any] | Mapping[str, Any]]) -> str:
    """A markdown table, first column left-aligned, the others right-aligned; a row is a list of cells or a
    dict keyed by ``header``. Floats in [0, 1] print as percentages with one decimal, None as "-"."""
    def cell(value: Any) -> str:
        if value is None:
            return "-"
        if isinstance(value, float):
            return f"{value:.1%}" if 0.0 <= value <= 1.0 else f"{value:.4g}"
        return str(value)

    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " if i == 0 else " ---: " for i in
                                                              range(len(header))) + "|"]
    for row in rows:
        values = [row.get(c) for c in header] if isinstance(row, Mapping) else row
        lines.append("| " + " | ".join(cell(v) for v in values) + " |")
    return "\n".join(lines) + "\n"


# -- the PyTorch scripts' scale-dependent choices -------------------------------------------------------------

def setup(args: argparse.Namespace) -> None:
    """Threads (1 on the CPU scales) and the global seed (torch imported here, never at module import)."""
    from harness_torch.runtime import configure

    configure(threads=args.threads or (None if args.full else 1))
    set_seeds(args.seed, "torch")


def run_dir(args: argparse.Namespace, script: str, model: str) -> Path | None:
    """--full: runs/seeds/<script>/<model> (checkpoint every epoch; a rerun resumes); else None (nothing written)."""
    return Path("runs") / "seeds" / script / model if args.full else None


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
    if args.full:
        knobs = dict(optimizer="sgd", lr=0.01, momentum=0.9, weight_decay=5e-4, schedule="step", batch_size=128)
    else:
        knobs = dict(optimizer="adam", lr=1e-3, weight_decay=0.0, schedule="none", batch_size=64)
    return training_params(args, epochs=args.epochs, device=args.device, progress=sys.stderr.isatty(), **knobs)


def result_path(args: argparse.Namespace, name: str) -> Path:
    """--out, else benchmarks/results/seeds/<name>[-quick|-full][-eps<EPS>].json."""
    if args.out is not None:
        return args.out
    suffix = {"cpu": "", "quick": "-quick", "full": "-full"}[scale(args)]
    if abs(args.eps - SEED_EPS) > 1e-9:
        suffix += f"-eps{args.eps:g}"
    return RESULTS / f"{name}{suffix}.json"


def torch_result(args: argparse.Namespace, name: str, payload: dict[str, Any], started: float) -> Path:
    """A PyTorch script's result: ``payload`` with its name, scale, settings and seconds, at :func:`result_path`."""
    settings = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if not k.startswith("_")}
    return write_result(result_path(args, name), {"name": name, "scale": scale(args), "settings": settings,
                                                  **payload, "seconds": round(time.perf_counter() - started, 1)})


def seed_vs_ours(results: Mapping[str, Mapping[str, Any]], models: Sequence[str],
                 seed: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per (evaluation, metric): the seed's figure (top-1 only: the seeds give no top-5) beside ours,
    per model; keys of ``results`` ending in ``settings`` are skipped."""
    table = []
    for key, by_model in results.items():
        if key.endswith("settings"):
            continue
        for metric in ("top1", "top5"):
            row: dict[str, Any] = {"evaluation": key, "metric": metric}
            for name in models:
                row[f"{name} (seed)"] = seed.get(key, {}).get(name) if metric == "top1" else None
                row[f"{name} (ours)"] = by_model[name][metric]
            table.append(row)
    return table


def torch_main(argv: Sequence[str] | None, description: str, name: str, run_script: Callable[..., dict[str, Any]],
               tables: Callable[[dict[str, Any]], str], *, cpu_epochs: int, full_epochs: int) -> int:
    """A PyTorch seed script's main: parse, run, write its result (:func:`torch_result`), print its tables."""
    started = time.perf_counter()
    args = parse(parser(description, cpu_epochs=cpu_epochs, full_epochs=full_epochs, quick_epochs=1), argv)
    payload = run_script(args)
    path = torch_result(args, name, payload, started)
    print(tables(payload), flush=True)
    print(f"wrote {path}", flush=True)
    return 0
