"""Plumbing of the NSL seed reproductions: command line, data, evaluation on reference perturbations, output.

- :func:`parse_args`: ``--full`` / ``--quick`` / ``--data`` / ``--out`` / ``--seed`` / ``--precision``;
- :func:`load_data`: digits (CPU scale), a Tiny-ImageNet-layout folder (``--data DIR``) or, with
  ``--full`` and no ``--data``, the prepared (else downloaded) ``tiny-imagenet``;
- :func:`evaluate_models`: the seeds' validation -- clean top-1/top-5, then images perturbed on a
  reference model (NSL's ``perturb_on_batch``, as the seeds did, and PGD made on it with
  :func:`harness.robustness.transfer_examples`) given to every model;
- :func:`write_result` (JSON in ``benchmarks/results/seeds/``) and :func:`markdown_table`;
- :func:`run`: a script's ``main`` with harness errors as one line plus a hint (exit 2 for bad input).
"""

from __future__ import annotations

import argparse
import platform
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "benchmarks" / "results" / "seeds"
#: images kept per split with ``--quick`` (it checks the plumbing in seconds, not the figures)
QUICK_IMAGES = 96


def parse_args(description: str, argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The options every NSL seed script takes."""
    parser = argparse.ArgumentParser(description=description)
    scale = parser.add_mutually_exclusive_group()
    scale.add_argument("--full", action="store_true",
                       help="the seed's scale: real Tiny ImageNet (--data DIR, else the prepared or downloaded "
                            "tiny-imagenet), the seed's epochs; meant for a GPU")
    scale.add_argument("--quick", action="store_true",
                       help=f"{QUICK_IMAGES} images per split, one epoch per stage: checks the plumbing in seconds")
    parser.add_argument("--data", type=Path, default=None,
                        help="a tiny-imagenet-200 folder (or its zip); default: digits, or tiny-imagenet with --full")
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"folder for the result JSON (default {RESULTS})")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=None,
                        help="training epochs of each model (default: the scale's; e.g. 1 for a smoke run with --full)")
    parser.add_argument("--precision", default=None,
                        help="passed to the defenses as TrainingConfig's precision (e.g. bf16); omitted: their default")
    parser.add_argument("--threads", type=int, default=None, help="TensorFlow CPU threads (default: all)")
    return parser.parse_args(argv)


@dataclass
class Data:
    """The splits a seed script trains and evaluates on (uint8 NHWC images, int64 labels)."""

    name: str
    train: Any
    val: Any  # validation during training
    test: Any  # the final evaluation (Tiny ImageNet's test split is unlabelled: its val split again)
    num_classes: int
    image_shape: tuple[int, int, int]

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train.labels), "val": len(self.val.labels), "test": len(self.test.labels)}


def _head(split: Any, count: int) -> tuple[np.ndarray, np.ndarray]:
    return np.asarray(split.images[:count]), np.asarray(split.labels[:count])


def load_data(args: argparse.Namespace) -> Data:
    """Digits by default; ``--data DIR`` a tiny-imagenet-200 folder; ``--full`` alone the prepared tiny-imagenet
    (downloaded when none is prepared). ``--quick`` keeps the first :data:`QUICK_IMAGES` images of each split."""
    from harness.data import default_cache, load_dataset

    if args.data is not None:
        ds = load_dataset("tiny-imagenet", source=str(args.data))
    elif args.full:
        ds = load_dataset("tiny-imagenet") if default_cache("tiny-imagenet") else load_dataset(
            "tiny-imagenet", download=True, progress=True)
    else:
        ds = load_dataset("digits")
    train, val = ds.split("train"), ds.split("val")
    test = ds.split("test") if ds.name == "digits" else val
    if args.quick:
        train, val, test = (_head(s, QUICK_IMAGES) for s in (train, val, test))
        train, val, test = (_Split(*s) for s in (train, val, test))
    return Data(ds.name, train, val, test, ds.num_classes, tuple(int(v) for v in ds.image_shape))


@dataclass
class _Split:
    images: np.ndarray
    labels: np.ndarray


def configure_tensorflow(threads: int | None) -> None:
    """Keras 2 before TensorFlow starts, quiet logs, ``threads`` CPU threads (None: TensorFlow's choice)."""
    import harness_tf  # noqa: F401 - selects Keras 2 (TF_USE_LEGACY_KERAS) before TensorFlow is imported
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")
    if threads:
        try:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(threads)
        except RuntimeError:  # TensorFlow already started (e.g. in a test session): it keeps its pools
            pass


def set_seeds(seed: int) -> None:
    """Python's, numpy's and TensorFlow's seeds (Keras's unseeded initialisers draw from Python's ``random``)."""
    import tf_keras as keras

    keras.utils.set_random_seed(seed)


def training_params(args: argparse.Namespace, **params: Any) -> dict[str, Any]:
    """``params`` plus ``precision`` when ``--precision`` was given, and progress lines."""
    if args.precision is not None:
        params["precision"] = args.precision
    return {"seed": args.seed, "progress": True, **params}


def _accuracies(runtime: Any, models: Mapping[str, Any], x: np.ndarray, labels: np.ndarray) -> dict[str, dict]:
    from harness.metrics import topk_accuracy

    out = {}
    for name, model in models.items():
        top = topk_accuracy(runtime.predict_logits_float(model, x), labels, (1, 5))
        out[name] = {"top1": top[1], "top5": top[5]}
    return out


def evaluate_models(models: Mapping[str, Any], reference: Any, images: np.ndarray, labels: np.ndarray, *,
                    adv_step_size: float, adv_grad_norm: str, transfer_eps: Sequence[float] = (),
                    transfer_steps: int = 20, whitebox: bool = True, seed: int = 0) -> dict[str, Any]:
    """Accuracy of every model (Keras, logits) on uint8 ``images``: clean, on NSL neighbours made on
    ``reference`` (the seeds' protocol: ``perturb_on_batch`` of the reference wrapped with the same step and
    norm, clipped to [0, 1]), on each model's own NSL neighbours (white-box), and on L-inf PGD examples made on
    ``reference`` at each ``transfer_eps`` (``whitebox=False``: no white-box rows).
    Returns {perturbation: {model: {"top1", "top5"}}} plus "settings"."""
    from harness.frameworks import get_runtime
    from harness.progress import stage
    from harness.registry import create_attack
    from harness.robustness import transfer_examples

    runtime = get_runtime("tf")
    x = images.astype(np.float32) / 255.0
    results: dict[str, Any] = {"clean": _accuracies(runtime, models, x, labels)}
    knobs = {"adv_step_size": adv_step_size, "adv_grad_norm": adv_grad_norm}
    with stage(f"NSL neighbours on the reference model (step {adv_step_size}, {adv_grad_norm})"):
        attack = create_attack("nsl-perturb", framework="tf", reference_model=reference, **knobs)
        perturbed = runtime.adversarial_images(reference, images, labels, attack)
    results["nsl_reference"] = _accuracies(runtime, models, perturbed, labels)
    for name, model in models.items() if whitebox else ():
        results.setdefault("nsl_whitebox", {})
        with stage(f"NSL neighbours on {name} itself (white-box)"):
            own = runtime.adversarial_images(model, images, labels, create_attack("nsl-perturb", framework="tf",
                                                                                  **knobs))
        results["nsl_whitebox"][name] = _accuracies(runtime, {name: model}, own, labels)[name]
    if transfer_eps:
        with stage(f"PGD-{transfer_steps} on the reference model at eps {list(transfer_eps)}"):
            transferred = transfer_examples(runtime, reference, images, labels, transfer_eps,
                                            steps=transfer_steps, seed=seed)
        for eps, adversarial in transferred.items():
            results[f"pgd{transfer_steps}_reference@{eps:g}"] = _accuracies(runtime, models, adversarial, labels)
    results["settings"] = {"count": int(len(labels)), **knobs, "transfer_eps": [float(e) for e in transfer_eps],
                           "transfer_steps": int(transfer_steps)}
    return results


def machine() -> dict[str, Any]:
    import os

    return {"python": sys.version.split()[0], "platform": platform.platform(), "cpus": os.cpu_count()}


def write_result(name: str, result: Mapping[str, Any], out: Path = RESULTS) -> Path:
    """``out/<name>.json``, written atomically, with the machine it ran on."""
    from harness.atomic import write_json

    out.mkdir(parents=True, exist_ok=True)
    path = out / f"{name}.json"
    write_json(path, {**result, "machine": machine()})
    return path


def markdown_table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    """A markdown table of ``rows`` (dicts) in ``columns`` order; floats in [0, 1] print as percentages."""
    def cell(value: Any) -> str:
        if value is None:
            return "-"
        if isinstance(value, float):
            return f"{value:.1%}" if 0.0 <= value <= 1.0 else f"{value:.4g}"
        return str(value)

    lines = ["| " + " | ".join(columns) + " |", "| " + " | ".join("---" for _ in columns) + " |"]
    lines += ["| " + " | ".join(cell(row.get(c)) for c in columns) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def run(main: Callable[[Sequence[str] | None], int], argv: Sequence[str] | None = None) -> int:
    """``main(argv)``; a :class:`harness.errors.HarnessError` prints one line (and its hint) on stderr and
    returns its exit code (2: bad input, 1: failure), as the ``harness`` command does."""
    from harness.errors import HarnessError

    try:
        return main(argv)
    except HarnessError as exc:
        print(f"Error: {exc.message}" + (f"\nHint: {exc.hint}" if exc.hint else ""), file=sys.stderr)
        return exc.exit_code
