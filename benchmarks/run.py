"""Run every side-by-side benchmark, write benchmarks/results/*.json and results/README.md, print the table.

    python benchmarks/run.py                 # everything (make bench installs the compared tools first)
    python benchmarks/run.py --only pgd_torch data --quick

Each ``bench_*.py`` runs in its own Python process (PyTorch and TensorFlow never
share one), one after the other, so no two comparisons compete for the cores.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from common import RESULTS, markdown_table  # noqa: E402


def modules() -> list[str]:
    return sorted(p.stem.removeprefix("bench_") for p in HERE.glob("bench_*.py"))


def summary(results: Path) -> str:
    rows = [json.loads(p.read_text()) for p in sorted(results.glob("*.json"))]
    rows = [row for row in rows if "ours_seconds" in row]  # comparisons only (gpu_check.json is its own report)
    header = ("# Benchmark results\n\nWritten by `python benchmarks/run.py`; ratio = ours / theirs, medians of the "
              "repeats, both sides timed alternately in one run on one machine. A failed correctness check "
              "reports no ratio.\n\n")
    machines = sorted({f"{r['machine']['platform']}, {r['machine']['cpus']} CPUs, Python {r['machine']['python']}"
                       for r in rows if r.get("machine")})
    return header + markdown_table(rows) + "".join(f"\nMachine: {m}\n" for m in machines) + "".join(
        f"\n- **{r['title']}**: {r['note']}" for r in rows if r.get("note")) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", choices=modules(), help="run these benchmarks only")
    parser.add_argument("--quick", action="store_true", help="tiny sizes, 1 repeat: checks that everything runs")
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    failed = []
    for name in args.only or modules():
        print(f"== {name}", flush=True)
        started = time.perf_counter()
        command = [sys.executable, str(HERE / f"bench_{name}.py"), "--results", str(args.results)]
        if args.quick:
            command.append("--quick")
        if subprocess.run(command).returncode != 0:
            failed.append(name)
        print(f"== {name}: {time.perf_counter() - started:.0f} s", flush=True)
    text = summary(args.results)
    (args.results / "README.md").write_text(text)
    try:
        from rich.console import Console
        from rich.markdown import Markdown

        Console().print(Markdown(text))
    except ImportError:  # pragma: no cover
        print(text)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
