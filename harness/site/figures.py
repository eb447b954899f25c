"""A record's charts from what the scorer stored: training curves (``details["history"]``), robust accuracy vs
eps and the corruption heat map (``details["breakdown"]`` of the partition shown), as :class:`Figure` panels that
:func:`record_chart` puts into one SVG document (one file per page).

Only the partition shown is read, so a public site never draws a private number.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ..scoring.split import parse_tag
from . import svg

#: the most epochs drawn (the report step keeps at most 1,000)
MAX_EPOCHS = 1000


@dataclass
class Figure:
    """One chart: what it shows (caption), its words for the image's alt text, its SVG panels."""

    caption: str
    alt: str
    panels: list[svg.Panel]


def _number(value: Any) -> float | None:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def history_figures(history: Any, name: str) -> list[Figure]:
    """Loss and top-1 per epoch (train and validation) from ``details["history"]``, one chart above the other in
    one figure; [] without usable epochs."""
    if not isinstance(history, list):
        return []
    epochs = [e for e in history[:MAX_EPOCHS] if isinstance(e, dict) and _number(e.get("epoch")) is not None]
    if not epochs:
        return []
    xs = [float(e["epoch"]) for e in epochs]
    panels, words = [], []
    for metric, label, percent in (("loss", "loss", False), ("top1", "top-1 accuracy", True)):
        series = [(f"{part} {label.split()[0]}", xs, [_number(e.get(f"{part}_{metric}")) for e in epochs])
                  for part in ("train", "val")]
        series = [s for s in series if any(y is not None for y in s[2])]
        if not series:
            continue
        last = {s[0]: next((y for y in reversed(s[2]) if y is not None), None) for s in series}
        words += [f"{k} {v * 100:.1f}%" if percent else f"{k} {v:.3g}" for k, v in last.items() if v is not None]
        panels.append({"series": series, "title": f"Training {label}", "x_label": "epoch", "y_label": label,
                       "y_range": (0.0, 1.0) if percent else None, "percent": percent})
    if not panels:
        return []
    return [Figure("training loss and top-1 accuracy per epoch (train and validation)",
                   f"Line charts of {name}'s training loss and top-1 accuracy over {len(epochs)} epochs; last epoch: "
                   f"{', '.join(words)}.", [svg.line_chart(**panel) for panel in panels])]


def _counts(breakdown: Any, partition: str) -> dict[str, tuple[int, int]]:
    part = breakdown.get(partition) if isinstance(breakdown, dict) else None
    found = {}
    for tag, pair in (part or {}).items():
        if isinstance(pair, (list, tuple)) and len(pair) == 2:
            correct, total = _number(pair[0]), _number(pair[1])
            if correct is not None and total and total > 0:
                found[str(tag)] = (int(correct), int(total))
    return found


def eps_figure(breakdown: Any, partition: str, name: str) -> Figure | None:
    """Accuracy vs eps per attack (attack and adaptive tags with an eps), each joined at eps 0 to the clean
    accuracy; None when the partition has no such tag."""
    counts = _counts(breakdown, partition)
    points: dict[str, dict[float, list[int]]] = {}
    for tag, (correct, total) in counts.items():
        parsed = parse_tag(tag)
        if parsed.kind in ("attack", "adaptive") and parsed.eps is not None and math.isfinite(parsed.eps):
            label = parsed.name if parsed.kind == "attack" else f"{parsed.name} (adaptive)"
            _tally(points, label, parsed.eps, correct, total)
    if not points:
        return None
    clean = counts.get("clean")
    series, words = [], []
    for label, by_eps in points.items():
        xs = sorted(by_eps)
        ys = [by_eps[x][0] / by_eps[x][1] for x in xs]
        if clean:
            xs, ys = [0.0] + xs, [clean[0] / clean[1]] + ys
        series.append((label, xs, ys))
        words.append(f"{label}: " + ", ".join(f"{y * 100:.1f}% at eps {x:g}" for x, y in zip(xs, ys)))
    return Figure("robust accuracy vs attack budget (eps, pixel space [0, 1]; eps 0: the clean accuracy)",
                  f"Line chart of {name}'s accuracy against attack budget. " + "; ".join(words) + ".",
                  [svg.line_chart(series, title="Accuracy vs eps", x_label="eps", y_label="top-1 accuracy",
                                  y_range=(0.0, 1.0), percent=True, markers=True)])


def _tally(table: dict, row: str, column: Any, correct: int, total: int) -> None:
    """Add (correct, total) to ``table[row][column]`` (a [correct, total] pair, created at [0, 0])."""
    pair = table.setdefault(row, {}).setdefault(column, [0, 0])
    pair[0] += correct
    pair[1] += total


def corruption_figure(breakdown: Any, partition: str, name: str) -> Figure | None:
    """Accuracy per corruption (and augmentation with a severity) x severity as a heat map; None without such
    tags in the partition."""
    cells: dict[str, dict[int, list[int]]] = {}
    for tag, (correct, total) in _counts(breakdown, partition).items():
        parsed = parse_tag(tag)
        if parsed.severity is None or parsed.kind not in ("corruption", "augmentation"):
            continue
        label = parsed.name if parsed.kind == "corruption" else f"{parsed.name} (augmentation)"
        _tally(cells, label, parsed.severity, correct, total)
    if not cells:
        return None
    severities = sorted({s for row in cells.values() for s in row})
    rows = list(cells)
    values = [[cells[r][s][0] / cells[r][s][1] if s in cells[r] else None for s in severities] for r in rows]
    words = "; ".join(f"{r}: " + ", ".join(f"severity {s} {v * 100:.1f}%" for s, v in zip(severities, vs)
                                           if v is not None) for r, vs in zip(rows, values))
    return Figure("accuracy per corruption and severity (%)",
                  f"Heat map of {name}'s accuracy per corruption and severity. {words}.",
                  [svg.heat_map(rows, [str(s) for s in severities], values, title="Accuracy per corruption",
                                column_label="sev.")])


def record_figures(details: dict[str, Any], partition: str, name: str) -> list[Figure]:
    """Every chart of a record's page, in page order."""
    figures = history_figures(details.get("history"), name)
    for figure in (eps_figure(details.get("breakdown"), partition, name),
                   corruption_figure(details.get("breakdown"), partition, name)):
        if figure is not None:
            figures.append(figure)
    return figures


def record_chart(details: dict[str, Any], partition: str, name: str) -> tuple[str, str, str] | None:
    """(SVG document, caption, alt text) of every chart of a record's page one above the other; None without any."""
    figures = record_figures(details, partition, name)
    if not figures:
        return None
    caption = "From the top: " + "; ".join(f.caption for f in figures) + "."
    return (svg.document([p for f in figures for p in f.panels], f"Charts of {name}"), caption,
            " ".join(f.alt for f in figures))
