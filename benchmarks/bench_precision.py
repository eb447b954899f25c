"""Training speed of the precision / layout / compile knobs: each option vs the float32 default, same step.

Every row times one training epoch through the harness trainers' own step (the hooks
``TrainerBase.fit`` calls: ``_setup``, ``_open_optimizer``, ``_prepare``, ``_train_batches``) on
generated 64x64 RGB images, ours = the option, theirs = float32 with the defaults, alternated,
median of the repeats; ratio = option time / fp32 time (below 1: the option is faster), and
images/s of both sides in the details:

- torch ``small-cnn``: plain step in bf16, fp16 (autocast + GradScaler), channels_last and
  ``compile`` (``torch.compile``, steady state after the first epoch, whose time, compilation
  included, is in the details); model-hardening step (clean + FGSM + BIM-10 views) in bf16;
- torch ``mobilenet_v2`` (no pretrained weights): plain step in bf16 and channels_last;
- TensorFlow ``nsl-cnn``: plain step in bf16 (the mixed_bfloat16 clone) and with XLA (``compile``).

Before timing, each option's first-batch loss (same initial weights, same batch) is checked
against float32: within 5% (bf16 keeps 8 bits of mantissa).
The figures in docs/training.md come from this script on the machine named there; GPU figures
come from benchmarks/gpu_check.py.

    python benchmarks/bench_precision.py [--quick] [--repeats N]
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Any, Callable

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # tf.keras is Keras 2, as harness_tf needs
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402

from common import Comparison, alternate, bench_main  # noqa: E402
from workloads import one_thread, with_paired_ratios  # noqa: E402

#: first-batch losses of an option and of float32 agree this closely (relative)
LOSS_TOLERANCE = 0.05
CLASSES = 200
#: (image size, images per epoch, batch, images per model-hardening epoch, BIM steps) in full / --quick runs
SIZES = {False: (64, 64, 32, 32, 10), True: (16, 8, 8, 8, 1)}


def generated(n: int, size: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` uint8 NHWC RGB images (smooth random blobs plus noise) and labels over CLASSES."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 256, (n, 8, 8, 3)).astype(np.float32)
    images = np.repeat(np.repeat(coarse, max(size // 8, 1), axis=1), max(size // 8, 1), axis=2)
    images += rng.normal(0, 12, images.shape)
    return np.clip(images, 0, 255).astype(np.uint8), rng.integers(0, CLASSES, n).astype(np.int64)


class Epoch:
    """One training epoch of ``trainer`` on ``model`` over ``data``, through the trainer's fit hooks."""

    def __init__(self, trainer: Any, model: Any, data: tuple[np.ndarray, np.ndarray]):
        self.trainer, self.images, self.labels = trainer, *data
        self.run = trainer._setup(model)
        count = len(self.run.stages)
        self.run.optimizer = trainer._open_optimizer(self.run, count, None)
        trainer._open_stages = count
        self.run.trained = trainer._prepare(self.run)
        self.epoch = 0

    def __call__(self) -> list[float]:
        losses = [loss for _, loss, _ in self.trainer._train_batches(self.run, self.images, self.labels,
                                                                     self.epoch, 0.01)]
        self.epoch += 1
        return losses


def compare(name: str, title: str, option: dict[str, Any], make: Callable[[dict[str, Any]], Epoch],
            n: int, size: int, repeats: int) -> Comparison:
    """``option`` vs float32 defaults: first-batch losses checked (that epoch is also the warm-up, torch.compile's
    and XLA's compilation included), then alternated epochs timed."""
    ours, theirs = make(option), make({})
    started = time.perf_counter()
    first_ours = ours()[0]  # the first batch's loss comes before any update: same weights, same batch
    first_seconds = time.perf_counter() - started
    first_theirs = theirs()[0]
    error = abs(first_ours - first_theirs) / abs(first_theirs)
    comparison = Comparison(
        name=name, title=title, ours=", ".join(f"{k}={v}" for k, v in option.items()), theirs="fp32 defaults",
        target="reported (ratio = option / fp32 time)",
        correctness={"first_batch_loss_option": first_ours, "first_batch_loss_fp32": first_theirs,
                     "relative_error": error, "tolerance": LOSS_TOLERANCE},
        correct=error <= LOSS_TOLERANCE)
    if comparison.correct:
        comparison.ours_seconds, comparison.theirs_seconds = alternate(ours, theirs, repeats, warmup=0)
    comparison.details.update(images=n, image_size=size, first_epoch_seconds_option=first_seconds,
                              threads=_threads(), device="cpu")
    if comparison.ours_seconds:
        comparison.details["images_per_s_option"] = n / float(np.median(comparison.ours_seconds))
        comparison.details["images_per_s_fp32"] = n / float(np.median(comparison.theirs_seconds))
    print(f"{title}: ratio {comparison.ratio if comparison.ratio is None else round(comparison.ratio, 3)} "
          f"(first epoch {first_seconds:.1f} s)", file=sys.stderr, flush=True)  # one line per row as it ends
    return comparison


def _threads() -> int | None:
    torch = sys.modules.get("torch")
    return torch.get_num_threads() if torch is not None else None


def torch_rows(quick: bool, repeats: int) -> list[Comparison]:
    import torch

    from harness.registry import create_backbone, create_defense

    size, n, batch, hardening_n, bim_steps = SIZES[quick]
    cases = [
        ("standard", "small-cnn", {"precision": "bf16"}, {}),
        ("model-hardening", "small-cnn", {"precision": "bf16"}, {"bim_steps": bim_steps}),
    ]
    if not quick:
        cases += [
            ("standard", "small-cnn", {"precision": "fp16"}, {}),
            ("standard", "small-cnn", {"memory_format": "channels_last"}, {}),
            ("standard", "small-cnn", {"compile": True}, {}),
            ("standard", "mobilenet_v2", {"precision": "bf16"}, {}),
            ("standard", "mobilenet_v2", {"memory_format": "channels_last"}, {}),
        ]
    rows = []
    for defense, arch, option, params in cases:
        count = hardening_n if defense == "model-hardening" else n
        data = generated(count, size)

        def make(knobs, defense=defense, arch=arch, params=params, data=data):
            torch.manual_seed(0)
            model = create_backbone(arch, framework="torch", num_classes=CLASSES, input_shape=(size, size, 3))
            trainer = create_defense(defense, framework="torch", batch_size=batch, progress=False, device="cpu",
                                     weight_decay=0.0, **params, **knobs)
            return Epoch(trainer, model, data)

        key = "_".join(f"{v}" if k == "precision" else k for k, v in option.items())
        rows.append(compare(f"precision_torch_{arch.replace('-', '_')}_{defense.replace('-', '_')}_{key}",
                            f"torch {arch} {defense} epoch: {key} vs fp32", option, make, count, size, repeats))
    return rows


def tf_rows(quick: bool, repeats: int) -> list[Comparison]:
    from harness.registry import create_backbone, create_defense

    size, n, batch, _, _ = SIZES[quick]
    data = generated(n, size)
    options = [{"precision": "bf16"}] + ([] if quick else [{"compile": True}])
    rows = []
    for option in options:
        def make(knobs):
            import tf_keras as keras

            keras.utils.set_random_seed(0)
            model = create_backbone("nsl-cnn", framework="tf", num_classes=CLASSES, input_shape=(size, size, 3))
            trainer = create_defense("standard", framework="tf", batch_size=batch, progress=False, device="cpu",
                                     weight_decay=0.0, **knobs)
            return Epoch(trainer, model, data)

        key = "_".join(f"{v}" if k == "precision" else k for k, v in option.items())
        rows.append(compare(f"precision_tf_nsl_cnn_standard_{key}", f"tf nsl-cnn standard epoch: {key} vs fp32",
                            option, make, n, size, repeats))
    return rows


def run(quick: bool = False, repeats: int = 2) -> list[Comparison]:
    if quick:
        import torch  # noqa: F401 - one_thread sets the threads of what is imported

        one_thread()
        repeats = 1
    rows = torch_rows(quick, repeats)
    try:
        import tensorflow  # noqa: F401
    except ImportError:
        return with_paired_ratios(rows)
    return with_paired_ratios(rows + tf_rows(quick, repeats))


if __name__ == "__main__":
    sys.exit(bench_main(run))
