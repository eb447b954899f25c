"""The robustness ensemble vs torchattacks' AutoAttack (standard version), PyTorch, L-inf eps 8/255.

Model (set-up, untimed): a small CNN (a stride-4 4x4 stem, a stride-2 3x3 conv, pooled to 2x2,
a 64-unit head) trained on scikit-learn's digits enlarged to 64x64 RGB (:func:`workloads.digits`):
EPOCHS epochs with Adam, PGD-2 adversarial training at eps 4/255 from epoch ADV_FROM on, so its
clean and robust accuracies are both well above zero (a model every attack breaks makes every
ensemble look equal). The weights are cached in the temp dir (``harness-bench-autoattack/``).

Both sides attack the same IMAGES held-out images (QUICK_IMAGES with ``--quick``) at eps 8/255:

- ours: :func:`harness.robustness.evaluate_robustness` as ``harness evaluate --robust`` runs it,
  with eps (8/255,) only: the default members (pgd 50 steps x 2 restarts, then the native apgd-ce,
  apgd-t with 9 targets and square with 5000 queries, each on the images still robust), the PGD
  step ladder (1 and 10 steps) and every sanity check;
- theirs: ``torchattacks.AutoAttack(model, norm='Linf', eps=8/255, version='standard',
  n_classes=10, seed=0)`` (APGD-CE, APGD-T, FAB-T, Square 5000, each on the images still robust),
  then its robust accuracy.

Correctness first: our robust accuracy must be at most theirs + 0.5 points (``TARGET_ROBUST``),
both below clean accuracy, every adversarial image of theirs in the eps ball and [0, 1] (ours: the
report's budget check). Each side's run takes minutes, so the checked runs are the first timed
repeat (no warm-up; the model is built and its weights loaded before). Reported apart: the seconds
of our members alone (``report.attack_seconds``, without the step ladder and the checks).

    python benchmarks/bench_autoattack.py [--quick] [--repeats N]
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import numpy as np  # noqa: E402

from common import Comparison, alternate, bench_main  # noqa: E402
from workloads import digits, linf_checks, one_thread  # noqa: E402

EPS = 8 / 255
IMAGES, QUICK_IMAGES = 240, 24
EPOCHS, QUICK_EPOCHS, ADV_FROM = 6, 2, 2
TRAIN_EPS = 4 / 255
TARGET_RATIO = 1.0
TARGET_ROBUST = 0.005  # 0.5 points
CACHE = Path(tempfile.gettempdir()) / "harness-bench-autoattack"


def build_model():
    import torch.nn as nn

    return nn.Sequential(nn.Conv2d(3, 16, 4, stride=4), nn.ReLU(), nn.Conv2d(16, 32, 3, stride=2, padding=1),
                         nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten(), nn.Linear(128, 64), nn.ReLU(),
                         nn.Linear(64, 10))


def trained_model(x_train: np.ndarray, y_train: np.ndarray, epochs: int):
    """The small CNN trained as the module doc says, from the cache when there (eval mode, CPU)."""
    import torch
    import torch.nn.functional as F

    from harness_torch.attacks import pgd

    path = CACHE / f"small-cnn-64-e{epochs}-adv{ADV_FROM}.pt"
    model = build_model()
    if path.exists():
        model.load_state_dict(torch.load(path, weights_only=True))
        return model.eval()
    torch.manual_seed(0)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    x = torch.from_numpy(x_train).permute(0, 3, 1, 2).contiguous()
    y = torch.from_numpy(y_train)
    generator = torch.Generator().manual_seed(0)
    for epoch in range(epochs):
        order = torch.randperm(len(y), generator=generator)
        for start in range(0, len(y), 64):
            index = order[start:start + 64]
            batch = x[index]
            if epoch >= ADV_FROM:
                batch = pgd(model, batch, y[index], eps=TRAIN_EPS, steps=2, step_size=TRAIN_EPS, keep_best=False)
            model.train()
            loss = F.cross_entropy(model(batch), y[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    CACHE.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(model.state_dict(), tmp)
    tmp.replace(path)
    return model.eval()


def run(quick: bool = False, repeats: int = 3) -> list[Comparison]:
    import torch
    import torchattacks

    from harness.frameworks import get_runtime
    from harness.robustness import evaluate_robustness

    torch.set_num_threads(1)  # a shared machine; both sides get the same single thread
    if quick:
        one_thread()
        repeats = 1
    count, epochs = (QUICK_IMAGES, QUICK_EPOCHS) if quick else (IMAGES, EPOCHS)
    x_train, y_train, x_test, y_test = digits(64, 3)
    started = time.perf_counter()
    model = trained_model(x_train, y_train, epochs)
    setup_seconds = time.perf_counter() - started
    images = np.round(x_test[:count] * 255).astype(np.uint8)  # the digits are multiples of 1/16: exact in uint8
    labels = y_test[:count]
    x = torch.from_numpy(images.astype(np.float32) / 255).permute(0, 3, 1, 2).contiguous()
    y = torch.from_numpy(labels)
    runtime = get_runtime("torch")
    runtime.configure(threads=1)

    def ours(attacks=None):
        return evaluate_robustness(runtime, model, images, labels, eps=(EPS,), attacks=attacks, seed=0,
                                   progress=False, batch_size=256)

    def theirs():
        attack = torchattacks.AutoAttack(model, norm="Linf", eps=EPS, version="standard", n_classes=10, seed=0)
        return attack(x, y).detach()

    def accuracy(x_adv) -> float:
        with torch.no_grad():
            return float((model(x_adv).argmax(1) == y).float().mean())

    # ---- correctness (these runs are the warm-ups)
    t0, c0 = time.perf_counter(), time.process_time()
    report = ours()
    ours_first, ours_cpu = time.perf_counter() - t0, time.process_time() - c0
    t0, c0 = time.perf_counter(), time.process_time()
    x_theirs = theirs()
    theirs_first, theirs_cpu = time.perf_counter() - t0, time.process_time() - c0
    print(f"checked runs: ours {ours_first:.1f}s, theirs {theirs_first:.1f}s", flush=True)
    clean = accuracy(x)
    robust_ours, robust_theirs = report.robust_accuracy[EPS], accuracy(x_theirs)
    budget = linf_checks(x.permute(0, 2, 3, 1).numpy(), x_theirs.permute(0, 2, 3, 1).numpy(), EPS)
    members_seconds = sum(s for by_eps in report.attack_seconds.values() for s in by_eps.values())
    figures = {
        "images": count, "eps": EPS, "clean_accuracy": clean, "clean_accuracy_ours": report.clean_accuracy,
        "robust_accuracy_ours": robust_ours, "robust_accuracy_theirs": robust_theirs,
        "robust_accuracy_difference": robust_ours - robust_theirs, "tolerance": TARGET_ROBUST,
        "ours_per_member_after": {name: by_eps[EPS] for name, by_eps in report.attack_accuracy.items()},
        "ours_attacked_per_member": {name: by_eps[EPS] for name, by_eps in report.attacked.items()},
        "ours_flags": report.flags, "budget_theirs": budget,
    }
    ok = (robust_ours <= robust_theirs + TARGET_ROBUST + 1e-6 and robust_ours < clean and robust_theirs < clean
          and round(report.clean_accuracy * count) == round(clean * count) and budget["ok"]
          and "adversarial-out-of-budget" not in report.flags and "attack-failed" not in report.flags)
    details: dict[str, Any] = {
        "model": f"small CNN (stride-4 stem), {epochs} epochs on digits 64x64 RGB, PGD-2 training at 4/255 from "
                 f"epoch {ADV_FROM}", "torch": torch.__version__, "torchattacks": torchattacks.__version__,
        "torch_threads": torch.get_num_threads(), "repeats": repeats, "setup_seconds": setup_seconds,
        "ours": "evaluate_robustness(eps=(8/255,)): pgd 50x2, apgd-ce, apgd-t (9 targets), square 5000, "
                "cascade, step ladder 1/10, every sanity check",
        "theirs": "AutoAttack standard: APGD-CE, APGD-T (9 targets), FAB-T (9 targets), Square 5000, cascade",
        "checked_run_seconds": {"ours": ours_first, "theirs": theirs_first},
        # one thread per side: on a shared machine the CPU seconds are the steadier figure
        "checked_run_cpu_seconds": {"ours": ours_cpu, "theirs": theirs_cpu},
        "cpu_ratio": ours_cpu / theirs_cpu,
        "ours_members_seconds": members_seconds,
        "ours_seconds_per_member": {name: by_eps[EPS] for name, by_eps in report.attack_seconds.items()},
        "ours_members_only_ratio": members_seconds / theirs_first,
        "members_share_of_our_run": members_seconds / ours_first,
        "timing": "the checked runs are the first timed repeat (minutes long: no warm-up); further repeats "
                  "alternate ours and theirs",
    }
    comparison = Comparison(
        name="autoattack_ensemble_vs_torchattacks", title="White-box ensemble, L-inf 8/255, 64x64: ours vs AutoAttack",
        ours="harness evaluate_robustness (default ensemble + checks)",
        theirs=f"torchattacks {torchattacks.__version__} AutoAttack standard",
        target=f"ratio <= {TARGET_RATIO}, robust accuracy <= theirs + 0.5 points", target_ratio=TARGET_RATIO,
        correctness=figures, correct=bool(ok), details=details)
    if ok:
        ours_times, theirs_times = alternate(ours, theirs, repeats - 1, warmup=0) if repeats > 1 else ([], [])
        comparison.ours_seconds, comparison.theirs_seconds = [ours_first, *ours_times], [theirs_first, *theirs_times]
    return [comparison]


if __name__ == "__main__":
    sys.exit(bench_main(run))
