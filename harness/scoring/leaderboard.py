"""Leaderboards: the CSV (written atomically) and the rich terminal table.

One row per submission and partition: its latest result for the split (the store
keeps the history: ``harness leaderboard DB --history``). Scored submissions are
ranked by score (ties share a rank); invalid and failed ones follow, unranked, with
their reason. The terminal table fits its width: headers that would not are
abbreviated (:func:`short_headers`) and explained in a legend below it.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Iterable

from ..atomic import write_text
from ..errors import UsageError
from .store import ScoreRecord, latest

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
    """Rows of one partition, each submission's latest record, ranked (competition ranking: 1, 2, 2, 4)."""
    records = latest(records)
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


#: the numbers' width (e.g. "100.0"): longer headers are abbreviated when the full ones do not fit
CELL_WIDTH = 5
#: short headers of the fixed columns
SHORT_FIXED = {"framework": "fw"}


def short_headers(names: list[str]) -> dict[str, str]:
    """{name: its short header} for names longer than ``CELL_WIDTH``: ``SHORT_FIXED`` for the fixed columns; a
    category of several words their first two letters each ("frame-shift" -> "fr-sh"), of one word its first four
    and a dot ("geometric" -> "geom."); a digit at the end where two would be the same."""
    import re

    short: dict[str, str] = {}
    for name in names:
        if len(name) <= CELL_WIDTH:
            continue
        if name in SHORT_FIXED:
            short[name] = SHORT_FIXED[name]
            continue
        words = [w for w in re.split(r"[^A-Za-z0-9]+", name) if w]
        header = "-".join(w[:2] for w in words[:2]) if len(words) > 1 else f"{name[:CELL_WIDTH - 1]}."
        stem, number = header[:CELL_WIDTH - 1], 1
        while header in short.values() or header in names:
            header, number = f"{stem}{number}", number + 1
        short[name] = header
    return short


def render_leaderboard(columns: list[str], rows: list[dict[str, object]], title: str, width: int = 80):
    """A rich Table of leaderboard rows that fits ``width`` columns: top-1 in percent; invalid and failed rows
    in red (every column is in the CSV). Headers too long to fit are abbreviated, with a legend in the caption."""
    from rich.console import Console

    shown = [c for c in columns if c not in TERMINAL_HIDDEN]
    headers = {c: {"clean_top1": "clean"}.get(c, c.removeprefix("top1_")) for c in shown}
    table = _leaderboard_table(shown, headers, rows, title, "")
    measure = Console(width=10_000, file=io.StringIO(), color_system=None)
    if measure.measure(table).maximum <= width:
        return table
    short = short_headers([headers[c] for c in shown if c != "submission"])
    legend = "; ".join(f"{abbreviation} = {name}" for name, abbreviation in short.items())
    return _leaderboard_table(shown, {c: short.get(h, h) for c, h in headers.items()}, rows, title, legend)


def _leaderboard_table(shown: list[str], headers: dict[str, str], rows: list[dict[str, object]], title: str,
                       legend: str):
    from rich import box
    from rich.table import Table

    isolations = sorted({str(row.get("isolation") or "?") for row in rows if row.get("status") == "scored"})
    caption = "top-1 accuracy (%) per perturbation category; score = their mean"
    if isolations:
        caption += f"; isolation: {', '.join(isolations)}"
    if legend:
        caption += f"; {legend}"
    table = Table(title=title, caption=caption,
                  box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True, padding=(0, 1))
    for column in shown:
        text = column in ("submission", "framework")
        table.add_column(headers[column], justify="left" if text else "right", overflow="fold",
                         min_width=None if text else CELL_WIDTH)  # a cell too narrow folds, never "…"
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
    """"SUBMISSION: STATUS: REASON" for each row not scored."""
    return [f"{row['submission']}: {row['status']}: {row['reason']}" for row in rows if row.get("status") != "scored"]
