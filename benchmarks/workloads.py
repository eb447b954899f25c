"""Workloads the benchmarks share: scikit-learn's digits at a chosen size, small models, a hidden-split recipe.

The 1797 real 8x8 digits are scaled to [0, 1], enlarged by pixel repetition (nearest
neighbour) to ``size`` x ``size`` and repeated over ``channels``, so a model trained
briefly on them has a meaningful robust accuracy, while the input is large enough to
time (32x32 RGB, as CIFAR). Everything is seeded; nothing is downloaded or cached.
"""

from __future__ import annotations

import sys
from typing import Any

import numpy as np

#: 10-step L-inf PGD of every PGD comparison: eps in pixel space [0, 1], step 2.5 * eps / steps
EPS = 0.1
STEPS = 10
STEP_SIZE = 2.5 * EPS / STEPS
#: robust accuracies of two PGD implementations may differ by this much (random starts differ)
ROBUST_TOLERANCE = 0.05
#: largest |x_adv - x| beyond eps accepted as float rounding
EPS_SLACK = 1e-6
#: (image size, timing batch, training epochs) of a full run and of a --quick one
SIZES = {False: (32, 128, 4), True: (16, 32, 2)}


def digits(size: int = 32, channels: int = 3, test: int = 397, seed: int = 0
           ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x_train, y_train, x_test, y_test): float32 N,H,W,C images in [0, 1] and int64 labels."""
    from sklearn.datasets import load_digits

    data = load_digits()
    images = (data.images / 16.0).astype(np.float32)  # N, 8, 8 in [0, 1]
    if size % 8:
        raise ValueError(f"size must be a multiple of 8, got {size}")
    images = images.repeat(size // 8, axis=1).repeat(size // 8, axis=2)
    images = np.repeat(images[..., None], channels, axis=3)
    labels = data.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(labels))
    train, held = order[test:], order[:test]
    return images[train], labels[train], images[held], labels[held]


def linf_checks(x: np.ndarray, x_adv: np.ndarray, eps: float) -> dict[str, Any]:
    """Largest perturbation and range of ``x_adv``: inside the eps ball and [0, 1]?"""
    distance = float(np.abs(x_adv.astype(np.float64) - x).max())
    return {"max_linf": distance, "min": float(x_adv.min()), "max": float(x_adv.max()),
            "ok": bool(distance <= eps + EPS_SLACK and x_adv.min() >= 0.0 and x_adv.max() <= 1.0)}


def one_thread() -> None:
    """One CPU thread for torch and TensorFlow, whichever are imported (``--quick`` only checks the
    plumbing, and on a busy machine two threads per side wait on each other)."""
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)
    if "tensorflow" in sys.modules:
        threading = sys.modules["tensorflow"].config.threading
        try:
            threading.set_intra_op_parallelism_threads(1)
            threading.set_inter_op_parallelism_threads(1)
        except RuntimeError:  # TensorFlow already started: it keeps its pools
            pass


def settings(quick: bool, repeats: int) -> tuple[int, int, int, int]:
    """(image size, timing batch, training epochs, repeats); ``--quick``: QUICK_REPEATS, one thread."""
    if quick:
        from common import QUICK_REPEATS

        one_thread()
        repeats = QUICK_REPEATS
    return (*SIZES[quick], repeats)


def with_paired_ratios(comparisons: list[Any]) -> list[Any]:
    """Adds to each comparison's details every repeat's ours / theirs (the two ran back to back) and
    their median: on a busy machine the load shifts between repeats, and one pair mostly sees one load."""
    for comparison in comparisons:
        ratios = [o / t for o, t in zip(comparison.ours_seconds, comparison.theirs_seconds)]
        comparison.details["paired_ratios"] = ratios
        comparison.details["paired_ratio_median"] = float(np.median(ratios)) if ratios else None
    return comparisons


def digits_split_recipe(seed: int, limit: int | None = None) -> str:
    """A hidden-split recipe on the digits test images: clean + gaussian noise (no reference model needed)."""
    return f"""\
[split]
dataset = "digits"
source = "test"
seed = {seed}
public_fraction = 0.3
{f"limit = {limit}" if limit else ""}

[[perturbations]]
category = "clean"
kind = "clean"

[[perturbations]]
category = "noise"
kind = "augmentation"
name = "gaussian-noise"
severity = 3
framework = "torch"
"""


def small_cnn_submission(name: str) -> str:
    """submission.toml of the small PyTorch model the scoring benchmarks train: ``small-cnn`` width 16, hidden 64,
    one epoch on the embedded digits."""
    return f"""\
name = "{name}"
team = "benchmarks"
framework = "torch"
dataset = "digits"
seed = 0

[backbone]
name = "small-cnn"
params = {{ width = 16, hidden = 64 }}

[defense]
name = "standard"

[training]
epochs = 1
batch_size = 64
lr = 0.1
"""
