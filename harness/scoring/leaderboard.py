"""Leaderboards: the CSV (written atomically) and the rich terminal table.

One row per submission and partition: its latest result for the split (the store
keeps the history: ``harness leaderboard DB --history``). Scored submissions are
ranked by score; those the paired test does not tell apart share a rank, shown ``=k``
(:mod:`harness.scoring.stats`); invalid and failed ones follow, unranked, with their
reason. Each category and the score carry 95% intervals; sanity flags and unscored
categories get a mark, listed below the table (:func:`flag_lines`). The terminal table
fits its width: headers that would not are abbreviated (:func:`short_headers`) and
explained in a legend below it.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any, Iterable

from ..atomic import write_text
from ..errors import UsageError
from .stats import ALPHA, paired_test, seed_from, shared_ranks, unpack_bits
from .store import ScoreRecord, latest

FIXED_FRONT = ["rank", "submission", "team", "framework", "clean_top1", "clean_top5"]
FIXED_BACK = ["score", "score_ci_low", "score_ci_high", "partition", "train_seconds", "predict_seconds", "status",
              "reason", "flags", "isolation", "split_hash", "harness_version"]
PARTITIONS = ("public", "private")
CI_SUFFIXES = ("_ci_low", "_ci_high")


def category_columns(records: Iterable[ScoreRecord]) -> list[str]:
    """``top1_<category>`` columns in first-seen order."""
    columns: dict[str, None] = {}
    for record in records:
        for values in record.metrics.values():
            columns.update((k, None) for k in values if k.startswith("top1_"))
    return list(columns)


def leaderboard_columns(records: Iterable[ScoreRecord]) -> list[str]:
    """The CSV's columns: each ``top1_<category>`` followed by ``<category>_ci_low`` and ``_ci_high``."""
    columns = list(FIXED_FRONT)
    for column in category_columns(records):
        category = column.removeprefix("top1_")
        columns += [column, f"{category}_ci_low", f"{category}_ci_high"]
    return columns + FIXED_BACK


def _correct(record: ScoreRecord, partition: str) -> dict | None:
    """The record's per-image correctness in ``partition`` ({category: bools}); None when not stored."""
    try:
        packed = record.correct.get(partition) or {}
        return {category: unpack_bits(bits) for category, bits in packed.items()} or None
    except (AttributeError, ValueError):
        return None


def ranks(scored: list[ScoreRecord], partition: str) -> list[str]:
    """Shared ranks of ``scored`` (sorted best first): :func:`stats.shared_ranks` with the paired test at level
    ``ALPHA`` on the stored per-image correctness; a pair lacking it (older stores) differs when the scores do."""
    correct = [_correct(record, partition) for record in scored]

    def differ(i: int, j: int) -> bool:
        a, b = correct[i], correct[j]
        if a is not None and b is not None and list(a) == list(b) and all(len(a[c]) == len(b[c]) for c in a):
            return paired_test(a, b, seed=seed_from(f"{scored[i].split_hash}:{partition}")) < ALPHA
        return scored[i].metrics[partition]["score"] != scored[j].metrics[partition]["score"]

    return shared_ranks(len(scored), differ)


def leaderboard_rows(records: list[ScoreRecord], partition: str) -> list[dict[str, object]]:
    """Rows of one partition, each submission's latest record, ranked (shared ranks: 1, =2, =2, 4). An unscored
    category's ``top1_<category>`` cell holds its reason; ``flags`` is ``;``-joined."""
    records = latest(records)
    scored = sorted((r for r in records if r.status == "scored"),
                    key=lambda r: (-r.metrics[partition]["score"], r.submission))
    failed = sorted((r for r in records if r.status != "scored"), key=lambda r: r.submission)
    rows = []
    for record, rank in zip(scored + failed, ranks(scored, partition) + [""] * len(failed)):
        values = dict(record.metrics.get(partition, {}))
        unscored = values.pop("unscored", None) or {}
        cells = {k: _fmt(v) for k, v in values.items()}
        cells.update({f"top1_{category}": reason for category, reason in unscored.items()})
        rows.append({
            "rank": rank, "submission": record.submission, "team": record.team, "framework": record.framework,
            **cells,
            "partition": partition,
            "train_seconds": _fmt(record.train_seconds, 2), "predict_seconds": _fmt(record.predict_seconds, 2),
            "status": record.status, "reason": record.reason, "flags": ";".join(record.flags),
            "isolation": record.isolation, "split_hash": record.split_hash[:16],
            "harness_version": record.harness_version,
        })
    return rows


def _fmt(value, digits: int = 4):
    return "" if value is None else round(float(value), digits)


def write_leaderboard(records: list[ScoreRecord], path: str | Path) -> Path:
    """Both partitions' rows as one CSV, replaced atomically (readers never see half a file)."""
    columns = leaderboard_columns(records)
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


def _percent(value) -> str | None:
    """A fraction cell as a percentage ("93.1"); None when it is not a number (an unscored category's reason)."""
    try:
        return f"{float(value) * 100:.1f}"
    except (TypeError, ValueError):
        return None


def flag_marks(rows: list[dict[str, object]]) -> dict[str, str]:
    """{submission: "!1", ...}: a numbered mark for each scored row with flags or an unscored category."""
    marked = [row["submission"] for row in rows if row.get("status") == "scored" and (row.get("flags") or any(
        str(k).startswith("top1_") and v not in ("", None) and _percent(v) is None for k, v in row.items()))]
    return {str(name): f"!{i}" for i, name in enumerate(marked, start=1)}


def flag_lines(rows: list[dict[str, object]]) -> list[str]:
    """What each mark of :func:`flag_marks` stands for: "!1 SUBMISSION: flags: a, b" (sanity checks that fired,
    docs/robustness.md) and "!1 SUBMISSION: CATEGORY not scored (counts 0): REASON"."""
    lines = []
    marks = flag_marks(rows)
    for row in rows:
        mark = marks.get(str(row["submission"]))
        if mark is None:
            continue
        flags = [f for f in str(row.get("flags") or "").split(";") if f]
        if flags:
            lines.append(f"{mark} {row['submission']}: flags: {', '.join(flags)}")
        for column, value in row.items():
            if str(column).startswith("top1_") and value not in ("", None) and _percent(value) is None:
                lines.append(f"{mark} {row['submission']}: {str(column).removeprefix('top1_')} not scored "
                             f"(counts 0): {value}")
    return lines


#: the terminal's column for the score's interval (built from score_ci_low and score_ci_high)
SCORE_CI = "score_ci"


def render_leaderboard(columns: list[str], rows: list[dict[str, object]], title: str, width: int = 80):
    """A rich Table of leaderboard rows that fits ``width`` columns: top-1 in percent; ranks as in the CSV
    (``=k`` shared); invalid and failed rows in red (every column is in the CSV). A ``flags`` column holds each
    flagged row's mark (:func:`flag_lines` explains them) when any row has one. The score's 95% interval
    ("low-high") follows the score when the table still fits, else it is left to the CSV. Headers too long to
    fit are abbreviated, with a legend in the caption; when even that does not fit, the framework column is left
    to the CSV too, and last the columns are set one space apart instead of two."""
    marks = flag_marks(rows)
    shown = [c for c in columns if c not in TERMINAL_HIDDEN and not c.endswith(CI_SUFFIXES)
             and (c != "flags" or marks)]
    if "score" in shown and "score_ci_low" in columns:
        with_ci = shown[:shown.index("score") + 1] + [SCORE_CI] + shown[shown.index("score") + 1:]
    else:
        with_ci = shown
    headers = {c: {"clean_top1": "clean", SCORE_CI: "95% CI"}.get(c, c.removeprefix("top1_")) for c in with_ci}
    short = short_headers([headers[c] for c in with_ci if c not in ("submission", SCORE_CI)])
    legend = "; ".join(f"{abbreviation} = {name}" for name, abbreviation in short.items())
    abbreviated = {c: short.get(h, h) for c, h in headers.items()}
    narrow = [c for c in shown if c != "framework"]  # last resort: the framework left to the CSV
    narrow_legend = "; ".join(f"{a} = {n}" for n, a in short.items() if n != "framework") + "; framework in the CSV"
    narrow_note = narrow_legend.removeprefix("; ")
    return first_fitting((_leaderboard_table(chosen, names, rows, title, note, marks, gap)
                          for chosen, names, note, gap in ((with_ci, headers, "", 1), (with_ci, abbreviated, legend, 1),
                                                           (shown, abbreviated, legend, 1),
                                                           (narrow, abbreviated, narrow_note, 1),
                                                           (narrow, abbreviated, narrow_note, 0))), width)


def first_fitting(tables: Iterable[Any], width: int) -> Any:
    """The first of ``tables`` (rich Tables, most complete first, built lazily) that fits ``width`` columns;
    the last one when none does."""
    from rich.console import Console

    measure = Console(width=10_000, file=io.StringIO(), color_system=None)
    table = None
    for table in tables:
        if measure.measure(table).maximum <= width:
            return table
    return table


def board_table(title: str, caption: str, shown: list[str], headers: dict[str, str], text_columns: tuple[str, ...],
                gap: int = 1) -> Any:
    """An empty leaderboard table (both boards): ``shown`` columns under ``headers``, ``text_columns`` left-aligned,
    numbers right-aligned at least ``CELL_WIDTH`` wide (a cell too narrow folds, never "…"); ``gap`` 0 sets the
    columns one space apart instead of two (the last resort for 80 columns)."""
    from rich import box
    from rich.table import Table

    table = Table(title=title, caption=caption, box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True,
                  padding=(0, gap))
    for column in shown:
        text = column in text_columns
        table.add_column(headers[column], justify="left" if text else "right", overflow="fold",
                         min_width=None if text else CELL_WIDTH)
    return table


def interval_cell(row: dict[str, object]) -> str:
    """The score's 95% interval as the terminal shows it ("low-high" in percent; "" without one)."""
    low, high = _percent(row.get("score_ci_low")), _percent(row.get("score_ci_high"))
    return f"{low}-{high}" if low and high else ""


def _leaderboard_table(shown: list[str], headers: dict[str, str], rows: list[dict[str, object]], title: str,
                       legend: str, marks: dict[str, str], gap: int = 1):
    isolations = sorted({str(row.get("isolation") or "?") for row in rows if row.get("status") == "scored"})
    caption = "top-1 accuracy (%) per perturbation category; score = their mean"
    caption += "; 95% CI: the score's interval" if SCORE_CI in shown else "; 95% intervals in the CSV"
    if any(str(row.get("rank", "")).startswith("=") for row in rows):
        caption += "; =k: rank shared (no significant difference)"
    if isolations:
        caption += f"; isolation: {', '.join(isolations)}"
    if legend:
        caption += f"; {legend}"
    table = board_table(title, caption, shown, headers, ("submission", "framework", "flags"), gap)
    for row in rows:
        cells = []
        for column in shown:
            value = row.get(column, "")
            if column == SCORE_CI:
                value = interval_cell(row)
            elif column == "flags":
                value = marks.get(str(row.get("submission")), "")
            elif value not in ("", None) and (column.startswith(("top1_", "clean_")) or column == "score"):
                value = _percent(value) or "n/a"
            elif column == "rank" and row.get("status") != "scored":
                value = "-"
            cells.append(str(value))
        table.add_row(*cells, style=None if row.get("status") == "scored" else "red")
    return table


def failure_lines(rows: list[dict[str, object]]) -> list[str]:
    """"SUBMISSION: STATUS: REASON" for each row not scored."""
    return [f"{row['submission']}: {row['status']}: {row['reason']}" for row in rows if row.get("status") != "scored"]
