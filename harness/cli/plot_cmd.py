"""``harness plot ...``: charts (PNG) from the files the harness wrote (docs/pictures.md).

Reads ``metrics.json`` (training), ``robustness.json`` and ``corruptions.csv`` (``harness evaluate --robust``),
``evaluation.csv`` (``harness evaluate``), a leaderboard CSV or the results store (``harness score``); a file
that is missing or of the wrong kind is a one-line UsageError naming it. :mod:`harness.plots` draws.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, List, Optional, Sequence

import typer

from ..errors import UsageError
from .common import console

if TYPE_CHECKING:
    import numpy as np

app = typer.Typer(help="Charts (PNG) from saved metrics and results.", no_args_is_help=True)
OUT_OPTION = typer.Option(None, "--out", help="PNG file (default: beside the first input).")


@app.command("curves")
def curves(
    metrics: List[Path] = typer.Argument(..., help="metrics.json files written by training."),
    out: Optional[Path] = OUT_OPTION,
) -> None:
    """Train/val loss and top-1 per epoch, dashed lines where layers were unfrozen."""
    from ..plots import plot_curves
    from ..training import TrainingHistory

    histories = {run_label(path): TrainingHistory.from_dict(read_json(path, ("epochs",), "metrics.json"))
                 for path in metrics}
    _done(plot_curves(histories, out or metrics[0].parent / "curves.png"))


@app.command("robustness")
def robustness(
    reports: List[Path] = typer.Argument(..., help="robustness.json files (harness evaluate --robust)."),
    out: Optional[Path] = OUT_OPTION,
) -> None:
    """Robust (worst-case) accuracy vs eps, several models on one chart."""
    from ..plots import plot_robustness

    results = {run_label(path): read_json(path, ("robust_accuracy", "clean_accuracy"), "robustness.json")
               for path in reports}
    _done(plot_robustness(results, out or reports[0].parent / "robustness_vs_eps.png"))


@app.command("corruptions")
def corruptions(
    table: Path = typer.Argument(..., help="corruptions.csv (harness evaluate --robust --corruptions ...)."),
    out: Optional[Path] = OUT_OPTION,
) -> None:
    """Accuracy per corruption x severity as a heat map."""
    import numpy as np

    from ..plots import plot_corruptions

    rows = read_csv(table, ("corruption", "severity", "accuracy"))
    if not rows:
        raise UsageError(f"{table}: no rows")
    names = list(dict.fromkeys(r["corruption"] for r in rows))
    severities = sorted({int(r["severity"]) for r in rows})
    grid = np.full((len(names), len(severities)), np.nan)
    for r in rows:
        grid[names.index(r["corruption"]), severities.index(int(r["severity"]))] = float(r["accuracy"])
    _done(plot_corruptions(names, severities, grid, run_label(table), out or table.with_suffix(".png")))


@app.command("compare")
def compare(
    table: Path = typer.Argument(..., help="evaluation.csv (harness evaluate) or a leaderboard CSV."),
    partition: str = typer.Option("public", "--partition", help="Leaderboard partition: public or private."),
    out: Optional[Path] = OUT_OPTION,
) -> None:
    """Grouped bars: top-1 of each submission on each evaluation set (or leaderboard category)."""
    from ..plots import plot_compare

    submissions, sets, values = comparison_table(table, partition)
    if not submissions or not sets:
        raise UsageError(f"{table}: no scored submissions to compare")
    _done(plot_compare(submissions, sets, values, table.name, out or table.with_name(f"{table.stem}_compare.png")))


@app.command("matrix")
def matrix(
    db: Path = typer.Argument(..., help="SQLite results store of harness score (a split with an attack track)."),
    out: Optional[Path] = typer.Option(None, "--out", help="PNG file (default: matrix_public.png, or "
                                       "matrix_private.png with --private, beside the store)."),
    private: bool = typer.Option(False, "--private", help="The private partition (organisers)."),
    split_hash: Optional[str] = typer.Option(None, "--split-hash", help="This split (default: the latest scored "
                                                                        "attack track)."),
) -> None:
    """The attack track as a heat map: success (%) of every attack (rows) against every defense (columns)."""
    from ..plots import attack_matrix_chart
    from ..scoring.store import ResultStore

    if not db.is_file():
        raise UsageError(f"{db}: no such results store", hint="run: harness score ... --db FILE")
    with ResultStore(db) as store:
        rows = store.matrix_records()
    if split_hash:
        rows = [m for m in rows if m.split_hash.startswith(split_hash)]
    if not rows:
        raise UsageError(f"{db}: no attack-track results" + (f" for split {split_hash}" if split_hash else ""),
                         hint="a split built from a recipe with [attack_track], scored by harness score")
    rows = [m for m in rows if m.split_hash == rows[-1].split_hash]  # the latest split's
    partition = "private" if private else "public"
    _done(attack_matrix_chart(rows, out or db.with_name(f"matrix_{partition}.png"), partition))


def run_label(path: Path) -> str:
    """A short name for a saved file: ``runs/tiny/cpu/robustness/robustness.json`` -> ``tiny/cpu``."""
    folder = path.resolve().parent
    if folder.name == "robustness":
        folder = folder.parent
    return f"{folder.parent.name}/{folder.name}" if folder.parent.name else folder.name


def read_json(path: Path, needs: Sequence[str] = (), kind: str = "JSON file") -> dict[str, Any]:
    """A JSON object from ``path`` with (at least) the fields ``needs``; missing, unreadable, not an object or
    without a needed field (then it is not a ``kind``): a UsageError naming the file."""
    if not path.is_file():
        raise UsageError(f"{path}: no such file")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise UsageError(f"{path}: unreadable JSON: {exc}") from None
    if not isinstance(data, dict):
        raise UsageError(f"{path}: expected a JSON object")
    missing = [field for field in needs if field not in data]
    if missing:
        raise UsageError(f"{path}: not a {kind} (no '{missing[0]}' field)")
    return data


def read_csv(path: Path, needs: Sequence[str]) -> list[dict[str, str]]:
    """The rows of a CSV with (at least) the columns ``needs``; else a UsageError naming the file and column."""
    if not path.is_file():
        raise UsageError(f"{path}: no such file")
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in needs if c not in (reader.fieldnames or [])]
        if missing:
            raise UsageError(f"{path}: no '{missing[0]}' column")
        return list(reader)


def comparison_table(path: Path, partition: str = "public") -> tuple[list[str], list[str], np.ndarray]:
    """(submissions, sets, top-1 matrix) from ``evaluation.csv`` or a leaderboard CSV (its ``top1_*`` columns)."""
    import numpy as np

    rows = read_csv(path, ("submission",))
    columns = list(rows[0]) if rows else []
    if "set" in columns and "top1" in columns:  # harness evaluate: one row per submission and set
        submissions = list(dict.fromkeys(r["submission"] for r in rows))
        sets = list(dict.fromkeys(r["set"] for r in rows))
        values = np.full((len(submissions), len(sets)), np.nan)
        for r in rows:
            values[submissions.index(r["submission"]), sets.index(r["set"])] = float(r["top1"])
        return submissions, sets, values
    if "partition" in columns:  # harness score: one row per submission and partition
        rows = [r for r in rows if r["partition"] == partition and r.get("status", "scored") == "scored"]
        sets = [c for c in columns if c.startswith("top1_")]
        submissions = [r["submission"] for r in rows]
        values = np.array([[float(r[c]) if r[c] else np.nan for c in sets] for r in rows]).reshape(len(rows), -1)
        return submissions, [c.removeprefix("top1_") for c in sets], values
    raise UsageError(f"{path}: neither an evaluation CSV (set, top1 columns) nor a leaderboard (partition column)")


def _done(path: Path) -> None:
    console.print(f"[green]wrote[/] {path}")
