"""The site's charts as small SVG documents: line charts (training curves, robust accuracy vs eps) and heat maps
(corruption x severity), as :class:`Panel` s that :func:`document` stacks into one file.

Hand-written on purpose: matplotlib costs about 0.1 s a figure, so a contest of 1,000 results with three charts
each would spend minutes drawing on every rebuild; these take well under a millisecond each (benchmarks/
bench_site.py measures both) and stay crisp at any width. Every text is XML-escaped (names come from
submitters and recipes); the documents reference nothing outside themselves (no fonts, no links).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence
from xml.sax.saxutils import escape

#: line colours (colour-blind safe: Okabe-Ito), cycled
COLORS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442")
WIDTH, HEIGHT = 480, 280
#: plot margins: left, right, top, bottom
MARGIN = (52, 12, 30, 64)
FONT = 'font-family="sans-serif" font-size="12"'


@dataclass
class Panel:
    """One chart's SVG elements in a ``width`` x ``height`` box at the origin."""

    width: int
    height: int
    body: list[str]


def document(panels: Sequence[Panel], title: str) -> str:
    """One SVG document of ``panels`` one above the other (a page's charts in one file: creating a file costs
    more than drawing a chart, see docs/site.md)."""
    width = max((p.width for p in panels), default=WIDTH)
    height = sum(p.height for p in panels)
    body, y = [], 0
    for panel in panels:
        body.append(f'<g transform="translate(0 {y})">')
        body += panel.body
        body.append("</g>")
        y += panel.height
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
            f'viewBox="0 0 {width} {height}" role="img">\n<title>{escape(title)}</title>\n'
            f'<rect width="{width}" height="{height}" fill="#ffffff"/>\n' + "\n".join(body) + "\n</svg>\n")


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """About ``count`` round tick values covering [low, high] (steps of 1, 2 or 5 times a power of ten)."""
    if not (math.isfinite(low) and math.isfinite(high)) or high <= low:
        high = low + 1.0
    raw = (high - low) / max(count - 1, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    start = math.floor(low / step + 1e-9) * step
    ticks, value = [], start
    while value <= high + step * 1e-6:
        ticks.append(round(value, 10))
        value += step
    if ticks[-1] < high:
        ticks.append(round(ticks[-1] + step, 10))
    return ticks


def line_chart(series: Sequence[tuple[str, Sequence[float], Sequence[float | None]]], *, title: str, x_label: str,
               y_label: str, y_range: tuple[float, float] | None = None, percent: bool = False,
               markers: bool = False) -> Panel:
    """A line chart of ``series`` ((label, xs, ys); a None y breaks the line), axes with round ticks, a legend
    below. ``y_range`` fixes the y axis (else it spans the data and 0); ``percent`` labels y as percent."""
    left, right, top, bottom = MARGIN
    plot_w, plot_h = WIDTH - left - right, HEIGHT - top - bottom
    xs = [float(x) for _, values, _ in series for x in values]
    ys = [float(y) for _, _, values in series for y in values if y is not None and math.isfinite(y)]
    x_ticks = nice_ticks(min(xs, default=0.0), max(xs, default=1.0))
    y_ticks = nice_ticks(*(y_range or (min(ys + [0.0]), max(ys, default=1.0))))
    x0, x1, y0, y1 = x_ticks[0], x_ticks[-1], y_ticks[0], y_ticks[-1]

    def px(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * plot_w

    def py(y: float) -> float:
        return top + plot_h - (y - y0) / (y1 - y0) * plot_h

    body = [f'<text x="{WIDTH / 2}" y="18" text-anchor="middle" {FONT} font-weight="bold">{escape(title)}</text>']
    for tick in y_ticks:
        label = f"{tick * 100:g}%" if percent else f"{tick:g}"
        body.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{py(tick):.1f}" y2="{py(tick):.1f}" '
                    f'stroke="#dddddd"/>')
        body.append(f'<text x="{left - 4}" y="{py(tick) + 4:.1f}" text-anchor="end" {FONT}>{label}</text>')
    for tick in x_ticks:
        body.append(f'<text x="{px(tick):.1f}" y="{top + plot_h + 16}" text-anchor="middle" {FONT}>{tick:g}</text>')
    body.append(f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#888888"/>')
    body.append(f'<text x="{left + plot_w / 2}" y="{top + plot_h + 32}" text-anchor="middle" {FONT}>'
                f'{escape(x_label)}</text>')
    body.append(f'<text transform="translate(13 {top + plot_h / 2}) rotate(-90)" text-anchor="middle" {FONT}>'
                f'{escape(y_label)}</text>')
    legend_x = left
    for number, (label, x_values, y_values) in enumerate(series):
        color = COLORS[number % len(COLORS)]
        runs: list[list[str]] = [[]]
        for x, y in zip(x_values, y_values):
            if y is None or not math.isfinite(float(y)):
                runs.append([])
                continue
            runs[-1].append(f"{px(float(x)):.1f},{py(float(y)):.1f}")
            if markers:
                body.append(f'<circle cx="{px(float(x)):.1f}" cy="{py(float(y)):.1f}" r="3" fill="{color}"/>')
        for points in runs:
            if len(points) > 1:
                body.append(f'<polyline points="{" ".join(points)}" fill="none" stroke="{color}" '
                            f'stroke-width="2"/>')
        body.append(f'<line x1="{legend_x}" x2="{legend_x + 16}" y1="{HEIGHT - 12}" y2="{HEIGHT - 12}" '
                    f'stroke="{color}" stroke-width="3"/>')
        body.append(f'<text x="{legend_x + 20}" y="{HEIGHT - 8}" {FONT}>{escape(label)}</text>')
        legend_x += 28 + 7 * len(label)
    return Panel(WIDTH, HEIGHT, body)


#: heat map colour stops (light yellow to dark blue), accuracy 0 -> 1
STOPS = ((0.0, (255, 255, 204)), (0.5, (65, 182, 196)), (1.0, (37, 52, 148)))


def _color(value: float) -> str:
    value = min(max(value, 0.0), 1.0)
    for (a, ca), (b, cb) in zip(STOPS, STOPS[1:]):
        if value <= b:
            t = (value - a) / (b - a)
            return "#" + "".join(f"{round(x + (y - x) * t):02x}" for x, y in zip(ca, cb))
    return "#%02x%02x%02x" % STOPS[-1][1]


def heat_map(rows: Sequence[str], columns: Sequence[str], values: Sequence[Sequence[float | None]], *, title: str,
             column_label: str) -> Panel:
    """A heat map: ``values[row][column]`` in [0, 1] written in each cell as a percentage (None: blank)."""
    label_w = max([7 * len(r) for r in rows] + [40]) + 10
    cell_w, cell_h, top = 56, 26, 48
    width = label_w + cell_w * max(len(columns), 1) + 10
    height = top + cell_h * len(rows) + 10
    body = [f'<text x="{width / 2}" y="18" text-anchor="middle" {FONT} font-weight="bold">{escape(title)}</text>']
    for j, column in enumerate(columns):
        body.append(f'<text x="{label_w + (j + 0.5) * cell_w}" y="{top - 8}" text-anchor="middle" {FONT}>'
                    f'{escape(column_label)} {escape(str(column))}</text>')
    for i, row in enumerate(rows):
        y = top + i * cell_h
        body.append(f'<text x="{label_w - 6}" y="{y + cell_h / 2 + 4}" text-anchor="end" {FONT}>{escape(row)}</text>')
        for j in range(len(columns)):
            value = values[i][j]
            if value is None or not math.isfinite(float(value)):
                continue
            x = label_w + j * cell_w
            ink = "#ffffff" if value > 0.55 else "#000000"
            body.append(f'<rect x="{x}" y="{y}" width="{cell_w - 2}" height="{cell_h - 2}" '
                        f'fill="{_color(float(value))}"/>')
            body.append(f'<text x="{x + cell_w / 2 - 1}" y="{y + cell_h / 2 + 3}" text-anchor="middle" {FONT} '
                        f'fill="{ink}">{float(value) * 100:.1f}</text>')
    return Panel(width, height, body)
