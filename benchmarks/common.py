"""Shared pieces of the side-by-side benchmarks: timing, ratios, result files, the summary table.

Every comparison is measured in one process run on one machine: ours and theirs
alternate within each repeat (so drift in the machine's load hits both), the
median of the repeats is kept, and the ratio is ours / theirs (below 1: we are
faster). A benchmark checks that both sides compute the same thing *before* it
times anything; a failed check is recorded and no ratio is reported.
"""

from __future__ import annotations

import gc
import json
import os
import platform
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

RESULTS = Path(__file__).resolve().parent / "results"
#: timed repeats per side with ``--quick``, which checks that a benchmark runs and checks itself, not its speed
QUICK_REPEATS = 1
#: set by :func:`bench_main` for ``--quick``: :func:`alternate` then skips its warm-up runs
quick_run = False


@dataclass
class Comparison:
    """One row of the summary: ours vs the tool users would otherwise pick."""

    name: str  # file stem in results/, e.g. "pgd_torch_vs_torchattacks"
    title: str  # what is compared, one line
    ours: str  # what runs on our side, e.g. "harness_torch pgd"
    theirs: str  # e.g. "torchattacks 3.5.1 PGD"
    ours_seconds: list[float] = field(default_factory=list)
    theirs_seconds: list[float] = field(default_factory=list)
    target: str = ""  # e.g. "ratio <= 1.05"
    target_ratio: float | None = None  # the ratio that meets the target (None: reported only)
    correctness: dict[str, Any] = field(default_factory=dict)  # what was checked, with the figures
    correct: bool | None = None
    details: dict[str, Any] = field(default_factory=dict)  # sizes, device, extra figures
    note: str = ""  # what limits it, when the target is missed

    @property
    def ratio(self) -> float | None:
        if not self.correct or not self.ours_seconds or not self.theirs_seconds:
            return None
        return statistics.median(self.ours_seconds) / statistics.median(self.theirs_seconds)

    @property
    def met(self) -> bool | None:
        if self.ratio is None or self.target_ratio is None:
            return None
        return self.ratio <= self.target_ratio

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(ratio=self.ratio, met=self.met, machine=machine(),
                    ours_median=statistics.median(self.ours_seconds) if self.ours_seconds else None,
                    theirs_median=statistics.median(self.theirs_seconds) if self.theirs_seconds else None)
        return data


def machine() -> dict[str, Any]:
    return {"python": sys.version.split()[0], "platform": platform.platform(), "cpus": os.cpu_count()}


def timed(fn: Callable[[], Any]) -> float:
    gc.collect()
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def alternate(ours: Callable[[], Any], theirs: Callable[[], Any], repeats: int, warmup: int = 1
              ) -> tuple[list[float], list[float]]:
    """Wall seconds of ``repeats`` runs of each, alternating ours/theirs, after ``warmup`` untimed runs each
    (none with ``--quick``)."""
    for _ in range(0 if quick_run else warmup):
        ours()
        theirs()
    ours_times, theirs_times = [], []
    for _ in range(repeats):
        ours_times.append(timed(ours))
        theirs_times.append(timed(theirs))
    return ours_times, theirs_times


def write_result(comparison: Comparison, results: Path = RESULTS) -> Path:
    results.mkdir(parents=True, exist_ok=True)
    path = results / f"{comparison.name}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(comparison.to_json(), indent=2, default=str) + "\n")
    os.replace(tmp, path)
    return path


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """The summary table from result JSONs: one line per comparison."""
    lines = ["| comparison | ours | theirs | ours median s | theirs median s | ratio (ours/theirs) | target | met "
             "| check |",
             "| --- | --- | --- | ---: | ---: | ---: | --- | --- | --- |"]
    for row in rows:
        def seconds(value):
            return f"{value:.4g}" if isinstance(value, (int, float)) else "-"
        ratio = f"{row['ratio']:.3f}" if isinstance(row.get("ratio"), (int, float)) else "-"
        met = {True: "yes", False: "**no**", None: "-"}[row.get("met")]
        check = {True: "ok", False: "**failed**", None: "-"}[row.get("correct")]
        lines.append(f"| {row['title']} | {row['ours']} | {row['theirs']} | {seconds(row.get('ours_median'))} | "
                     f"{seconds(row.get('theirs_median'))} | {ratio} | {row.get('target') or '-'} | {met} | {check} |")
    return "\n".join(lines) + "\n"


def bench_main(run: Callable[..., list[Comparison]], argv: list[str] | None = None) -> int:
    """Command line of one ``bench_*.py`` module: run it, write each comparison to results/, print the rows."""
    import argparse

    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true",
                        help=f"tiny sizes, {QUICK_REPEATS} repeat, no warm-up: checks that it runs")
    parser.add_argument("--repeats", type=int, default=None, help="timed repeats per side (default: the module's)")
    parser.add_argument("--results", type=Path, default=RESULTS, help="folder for the result JSONs")
    args = parser.parse_args(argv)
    global quick_run
    quick_run = args.quick
    kwargs: dict[str, Any] = {"quick": args.quick}
    if args.repeats is not None:
        kwargs["repeats"] = args.repeats
    comparisons = run(**kwargs)
    for comparison in comparisons:
        print(f"wrote {write_result(comparison, args.results)}", flush=True)
    print(markdown_table([c.to_json() for c in comparisons]), flush=True)
    return 0 if all(c.correct is not False for c in comparisons) else 1
