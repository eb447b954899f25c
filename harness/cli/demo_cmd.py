"""``harness demo``: the README's main job on the embedded digits dataset.

Until the competition workflow lands, the demo prepares the data, lists the
plugins, trains the small CNN with two defenses and reports clean and
adversarial accuracy (table, CSV and PNG).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import typer
from rich.table import Table

from .common import console, handle_errors

DEFENSES = ("standard", "pgd-adversarial-training")


@handle_errors
def demo(
    out: Path = typer.Option(Path("runs/demo"), "--out", help="Folder for models, metrics, curves and results."),
    epochs: int = typer.Option(8, "--epochs", min=1, help="Training epochs per defense."),
    eps: float = typer.Option(0.1, "--eps", help="L-inf attack budget in pixel space [0, 1]."),
    seed: int = typer.Option(0, "--seed", help="Seed for data split, training and attacks."),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="Show progress bars."),
) -> None:
    """Run the main job on the embedded digits dataset: data, plugins, training, robustness table."""
    from ..atomic import write_text
    from ..data import prepare_dataset
    from ..registry import create_attack, create_backbone, create_defense, get_defense
    from .plugins_cmd import plugins

    if not get_defense("standard").available:
        from ..errors import UsageError

        raise UsageError("the demo trains with PyTorch, which is not installed", hint="pip install 'harness[torch]'")

    console.rule("[bold]1/4 data: digits (scikit-learn's bundled handwritten digits)")
    dataset = prepare_dataset("digits", seed=seed, progress=progress)
    train, val, test = (dataset.split(s) for s in ("train", "val", "test"))
    console.print(f"{len(train)} train / {len(val)} val / {len(test)} test images, 8x8 grey, cache {dataset.path}")

    console.rule("[bold]2/4 plugins")
    plugins(kind=None, pattern="*", framework=None)

    from harness_torch.evaluate import accuracy

    attacks = {
        "clean": None,
        f"FGSM eps {eps:g}": create_attack("fgsm", eps=eps, seed=seed),
        f"PGD-20 eps {eps:g}": create_attack("pgd", eps=eps, steps=20, step_size=eps / 8, seed=seed),
    }
    rows = []
    for defense in DEFENSES:
        console.rule(f"[bold]3/4 training small-cnn with defense '{defense}' ({epochs} epochs)")
        model = create_backbone("small-cnn", num_classes=dataset.num_classes, input_shape=dataset.image_shape)
        params = {"epochs": epochs, "optimizer": "adam", "lr": 3e-3, "weight_decay": 0.0, "batch_size": 64,
                  "seed": seed, "progress": progress}
        if defense != "standard":
            params.update(eps=eps, steps=7)
        create_defense(defense, **params).fit(model, train, val, out_dir=out / defense)
        result = {"defense": defense}
        for name, attack in attacks.items():
            result[name] = accuracy(model, test.images, test.labels, attack)["top1"]
        rows.append(result)

    console.rule("[bold]4/4 robustness on the digits test split")
    table = Table(title=f"top-1 accuracy on {len(test)} test digits (attacks in pixel space, L-inf)")
    table.add_column("defense")
    for name in attacks:
        table.add_column(name, justify="right")
    for row in rows:
        table.add_row(row["defense"], *(f"{row[name]:.1%}" for name in attacks))
    console.print(table)

    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=["defense", *attacks])
    writer.writeheader()
    writer.writerows({k: (f"{v:.4f}" if isinstance(v, float) else v) for k, v in row.items()} for row in rows)
    write_text(out / "results.csv", buffer.getvalue())
    _plot(rows, list(attacks), out / "results.png")
    console.print(f"results: {out / 'results.csv'}, {out / 'results.png'}; training curves: {out}/<defense>/training_curves.png")


def _plot(rows: list[dict], columns: list[str], path: Path) -> None:
    """Grouped bar chart: accuracy per evaluation set for each defense."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..atomic import atomic_path

    figure, axes = plt.subplots(figsize=(7, 4))
    width = 0.8 / len(rows)
    for i, row in enumerate(rows):
        positions = [c + i * width for c in range(len(columns))]
        axes.bar(positions, [row[c] for c in columns], width, label=row["defense"])
    axes.set_xticks([c + width * (len(rows) - 1) / 2 for c in range(len(columns))], columns)
    axes.set_ylim(0, 1)
    axes.set_ylabel("top-1 accuracy")
    axes.set_title("digits: clean vs adversarial accuracy")
    axes.legend()
    figure.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        figure.savefig(tmp, format="png", dpi=120)
    plt.close(figure)
