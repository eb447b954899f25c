"""Built-in PyTorch defenses on digits, side by side with a reference table.

Trains the 2-conv ``small-cnn`` on scikit-learn's 8x8 digits (about 1400 train /
397 test images, stratified by the harness's ``digits`` dataset) for 40 epochs
with Adam, once per defense, then measures clean accuracy and PGD-20 accuracy
(L-inf, random start, step 2.5 * eps / 20) at eps 0.1 and 0.2 in pixel space.
Prints a rich table of ours vs the reference and writes it as CSV.

    python benchmarks/defenses_digits.py                 # about 3-5 minutes on 2 CPU cores
    python benchmarks/defenses_digits.py --epochs 5 --defenses standard trades

This is a script, not a test: numbers move a little with the platform.
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
import time
from pathlib import Path


#: The reference table (same data sizes, 2-conv CNN, 40 epochs Adam); None: not reported.
REFERENCE = {
    "standard": {"clean": 0.987, "pgd20@0.1": 0.62, "pgd20@0.2": 0.01},
    "trades": {"clean": 0.990, "pgd20@0.1": 0.89, "pgd20@0.2": 0.45},
    "pgd-adversarial-training": {"clean": None, "pgd20@0.1": 0.88, "pgd20@0.2": None},
    "model-hardening": {"clean": None, "pgd20@0.1": None, "pgd20@0.2": None},
}
#: defense knobs: the reference's TRADES (beta 6) and PGD-AT at eps 0.1; model hardening at the same budget
DEFENSE_KNOBS = {
    "standard": {},
    "trades": {"beta": 6.0, "eps": 0.1},
    "pgd-adversarial-training": {"eps": 0.1},
    "model-hardening": {"eps": 0.1},
}
METRICS = ("clean", "pgd20@0.1", "pgd20@0.2")
TEST_IMAGES = 397


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--defenses", nargs="+", default=list(DEFENSE_KNOBS), choices=list(DEFENSE_KNOBS))
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (tiny models run fastest on one)")
    parser.add_argument("--out-dir", type=Path, default=Path("runs/benchmarks/defenses_digits"),
                        help="per-defense metrics.json, training_curves.png, checkpoint.pt")
    parser.add_argument("--csv", type=Path, default=None, help="default: OUT_DIR/results.csv")
    return parser.parse_args(argv)


def evaluate(model, split, seed: int) -> dict[str, float]:
    """Clean and PGD-20 top-1 accuracy on a uint8 NHWC split."""
    from harness.registry import create_attack
    from harness_torch.evaluate import accuracy

    results = {"clean": accuracy(model, split.images, split.labels)["top1"]}
    for eps in (0.1, 0.2):
        attack = create_attack("pgd", eps=eps, steps=20, norm="linf", random_start=True, seed=seed)
        results[f"pgd20@{eps}"] = accuracy(model, split.images, split.labels, attack=attack)["top1"]
    return results


def run(args: argparse.Namespace) -> list[dict]:
    import torch

    from harness.data import load_dataset
    from harness.registry import create_backbone, create_defense

    torch.set_num_threads(args.threads)
    ds = load_dataset("digits", val_fraction=0.0, test_fraction=TEST_IMAGES / 1797)
    train, test = ds.split("train"), ds.split("test")
    print(f"digits: {len(train.labels)} train / {len(test.labels)} test, small-cnn, {args.epochs} epochs Adam")
    rows = []
    for name in args.defenses:
        torch.manual_seed(args.seed)
        model = create_backbone("small-cnn", num_classes=ds.num_classes, input_shape=ds.image_shape)
        trainer = create_defense(name, epochs=args.epochs, optimizer="adam", lr=args.lr, weight_decay=0.0,
                                 schedule="none", batch_size=args.batch_size, seed=args.seed, device=args.device,
                                 progress=sys.stdout.isatty(),
                                 **DEFENSE_KNOBS[name])
        started = time.perf_counter()
        trainer.fit(model, train, test, out_dir=args.out_dir / name)
        seconds = time.perf_counter() - started
        ours = evaluate(model, test, args.seed)
        rows.append({"defense": name, "train_seconds": round(seconds, 1), **ours})
        print(f"{name}: " + ", ".join(f"{m} {ours[m]:.1%}" for m in METRICS) + f" ({seconds:.0f} s)", flush=True)
    return rows


def write_csv(rows: list[dict], path: Path) -> None:
    from harness.atomic import write_text

    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(["defense", "metric", "ours", "reference", "difference", "train_seconds"])
    for row in rows:
        for metric in METRICS:
            ref = REFERENCE[row["defense"]][metric]
            writer.writerow([row["defense"], metric, f"{row[metric]:.4f}", "" if ref is None else f"{ref:.4f}",
                             "" if ref is None else f"{row[metric] - ref:+.4f}", row["train_seconds"]])
    write_text(path, buffer.getvalue())


def print_table(rows: list[dict]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="Defenses on digits: ours vs reference (top-1 accuracy)")
    table.add_column("defense", no_wrap=True)
    for metric in METRICS:
        table.add_column(f"{metric} ours", justify="right")
        table.add_column("ref", justify="right", style="dim")
    table.add_column("train s", justify="right")
    for row in rows:
        cells = []
        for metric in METRICS:
            ref = REFERENCE[row["defense"]][metric]
            cells += [f"{row[metric]:.1%}", "—" if ref is None else f"{ref:.1%}"]
        table.add_row(row["defense"], *cells, f"{row['train_seconds']:.0f}")
    Console(width=None if sys.stdout.isatty() else 120).print(table)


def main(argv=None) -> int:
    args = parse_args(argv)
    rows = run(args)
    csv_path = args.csv or args.out_dir / "results.csv"
    write_csv(rows, csv_path)
    print_table(rows)
    print(f"CSV: {csv_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
