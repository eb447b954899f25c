"""Leaderboards: the CSV (written atomically) and the rich terminal table.

One row per submission and partition. Scored submissions are ranked by score
(ties share a rank); failed ones follow, unranked, with their reason.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Iterable

from ..atomic import write_text
from ..errors import UsageError
from .store import ScoreRecord

FIXED_FRONT = ["rank", "submission", "team", "framework", "clean_top1", "clean_top5"]
FIXED_BACK = ["score", "partition", "train_seconds", "predict_seconds", "status", "reason", "isolation",
              "split_hash", "harness_version"]
PARTITIONS = ("public", "private")


def category_columns(records: Iterable[ScoreRecord]) -> list[str]:
    """``top1_<category>`` columns in first-seen order."""
    columns: dict[str, None] = {}
    for record in records:
        for values in record.metrics.values():
            columns.update((k, None) for k in values if k.startswith("top1_"))
    return list(columns)


def leaderboard_rows(records: list[ScoreRecord], partition: str) -> list[dict[str, object]]:
    """Rows of one partition, ranked (competition ranking: 1, 2, 2, 4)."""
    scored = sorted((r for r in records if r.status == "scored"),
                    key=lambda r: (-r.metrics[partition]["score"], r.submission))
    failed = sorted((r for r in records if r.status != "scored"), key=lambda r: r.submission)
    rows, previous, rank = [], None, 0
    for position, record in enumerate(scored + failed, start=1):
        values = record.metrics.get(partition, {})
        if record.status == "scored" and values.get("score") != previous:
            rank, previous = position, values.get("score")
        rows.append({
            "rank": rank if record.status == "scored" else "",
            "submission": record.submission, "team": record.team, "framework": record.framework,
            **{k: _fmt(v) for k, v in values.items()},
            "partition": partition,
            "train_seconds": _fmt(record.train_seconds, 2), "predict_seconds": _fmt(record.predict_seconds, 2),
            "status": record.status, "reason": record.reason, "isolation": record.isolation,
            "split_hash": record.split_hash[:16], "harness_version": record.harness_version,
        })
    return rows


def _fmt(value, digits: int = 4):
    return "" if value is None else round(float(value), digits)


def write_leaderboard(records: list[ScoreRecord], path: str | Path) -> Path:
    """Both partitions' rows as one CSV, replaced atomically (readers never see half a file)."""
    columns = FIXED_FRONT + category_columns(records) + FIXED_BACK
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for partition in PARTITIONS:
        writer.writerows(leaderboard_rows(records, partition))
    write_text(path, buffer.getvalue())
    return Path(path)


def read_leaderboard(path: str | Path, partition: str = "public") -> tuple[list[str], list[dict[str, str]]]:
    """(columns, rows of ``partition``) from a leaderboard CSV."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"{path}: no such leaderboard file", hint="run: harness score ... --leaderboard FILE")
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        if not reader.fieldnames or "partition" not in reader.fieldnames:
            raise UsageError(f"{path}: not a harness leaderboard (no 'partition' column)")
        rows = [row for row in reader if row["partition"] == partition]
    return list(reader.fieldnames), rows


#: columns the terminal table leaves to the CSV (it must fit an 80-column terminal)
TERMINAL_HIDDEN = ("team", "clean_top5", "top1_clean", "partition", "split_hash", "harness_version", "reason",
                   "train_seconds", "predict_seconds", "status", "isolation")


def render_leaderboard(columns: list[str], rows: list[dict[str, object]], title: str):
    """A rich Table of leaderboard rows: top-1 in percent; failed rows in red (every column is in the CSV)."""
    from rich import box
    from rich.table import Table

    shown = [c for c in columns if c not in TERMINAL_HIDDEN]
    isolations = sorted({str(row.get("isolation") or "?") for row in rows if row.get("status") == "scored"})
    caption = "top-1 accuracy (%) per perturbation category; score = their mean"
    if isolations:
        caption += f"; isolation: {', '.join(isolations)}"
    table = Table(title=title, caption=caption,
                  box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True, padding=(0, 1))
    for column in shown:
        text = column in ("submission", "framework")
        table.add_column({"clean_top1": "clean"}.get(column, column.removeprefix("top1_")),
                         justify="left" if text else "right", no_wrap=column == "submission",
                         min_width=None if text else 5)  # narrow terminals wrap headers, never numbers
    for row in rows:
        cells = []
        for column in shown:
            value = row.get(column, "")
            if value not in ("", None) and (column.startswith(("top1_", "clean_")) or column == "score"):
                value = f"{float(value) * 100:.1f}"
            elif column == "rank" and row.get("status") != "scored":
                value = "-"
            cells.append(str(value))
        table.add_row(*cells, style=None if row.get("status") == "scored" else "red")
    return table


def failure_lines(rows: list[dict[str, object]]) -> list[str]:
    return [f"{row['submission']}: {row['reason']}" for row in rows if row.get("status") != "scored"]
