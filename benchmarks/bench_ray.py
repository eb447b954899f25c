"""Scoring N tiny submissions: ``harness score --executor ray`` on a 2-CPU local Ray instance vs the local
executor (one child after the other), and where the Ray run's time goes.

Both sides score the same N copies of the tiny test submission (small CNN, 4 epochs
on digits; each copy has its own name, so its own content hash) on the same
hidden split (digits test images, clean + gaussian noise), with one thread per
child and the sandbox ``harness score`` picks here. Each repeat starts from an
empty results store. The Ray side's time includes starting and stopping the Ray
instance (what an organiser waits for); ``details`` splits it into: Ray start,
submitting (cache bundle + object puts), per-task staging on the node, the
children themselves, and the rest (scheduling, returning results, shutdown).

Correctness first: every submission's metrics from Ray equal the local ones.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from common import QUICK_REPEATS, Comparison, bench_main, timed  # noqa: E402
from workloads import digits_split_recipe  # noqa: E402



def make_submissions(folder: Path, count: int) -> list[Path]:
    """``count`` copies of tests/submissions/tiny, named tiny-1 ... tiny-N."""
    paths = []
    for index in range(1, count + 1):
        target = folder / f"tiny-{index}"
        shutil.copytree(ROOT / "tests" / "submissions" / "tiny", target,
                        ignore=shutil.ignore_patterns("__pycache__"))
        toml = target / "submission.toml"
        toml.write_text(re.sub(r'^name = "tiny"', f'name = "tiny-{index}"', toml.read_text(), flags=re.M))
        paths.append(target)
    return paths


def run(quick: bool = False, repeats: int = 3) -> list[Comparison]:
    from harness.scoring.ray_executor import RayOptions, ray_session
    from harness.scoring.scorer import entries_from_paths, score_submissions
    from harness.scoring.split import build_split, load_recipe

    count = 2 if quick else 6
    repeats = QUICK_REPEATS if quick else repeats
    work = Path(tempfile.mkdtemp(prefix="bench-ray-"))
    try:
        (work / "recipe.toml").write_text(digits_split_recipe(seed=7, limit=200))
        build_split(load_recipe(work / "recipe.toml"), work / "split", references=work / "references",
                    progress=False)
        entries = entries_from_paths(make_submissions(work / "subs", count))
        runs = iter(range(1_000_000))
        phases: list[dict[str, float]] = []
        metrics: dict[str, dict] = {}

        def local() -> None:
            out = work / f"local-{next(runs)}"
            records = score_submissions(entries, work / "split", out / "db.sqlite", None, profile="cpu",
                                        timeout=600, work_dir=out / "work", threads=1)
            metrics["local"] = {r.submission: r.metrics for r in records}

        def on_ray() -> None:
            out = work / f"ray-{next(runs)}"
            options = RayOptions(num_cpus=2, cpus_per_submission=1, worker_dir=str(out / "nodes"))
            phase: dict[str, float] = {}
            started = time.perf_counter()
            with ray_session(options):
                phase["ray_start"] = time.perf_counter() - started
                before = time.perf_counter()
                records = score_submissions(entries, work / "split", out / "db.sqlite", None, profile="cpu",
                                            timeout=600, work_dir=out / "work", executor="ray", ray_options=options)
                phase["scoring"] = time.perf_counter() - before
                shutdown = time.perf_counter()
            phase["ray_stop"] = time.perf_counter() - shutdown
            tasks = [json.loads(p.read_text()) for p in (out / "work").glob("*/node.json")]
            phase["stage_seconds_sum"] = sum(t["stage_seconds"] for t in tasks)
            phase["child_seconds_sum"] = sum(t["child_seconds"] for t in tasks)
            phases.append(phase)
            metrics["ray"] = {r.submission: r.metrics for r in records}

        # correctness before timing: one run each, the same metrics for every submission
        local_first, ray_first = timed(local), timed(on_ray)
        same = metrics["local"] == metrics["ray"] and len(metrics["local"]) == count
        comparison = Comparison(
            name="ray_executor_vs_local", title=f"score {count} tiny submissions on 2 CPUs",
            ours="harness score --executor ray (local 2-CPU instance, 1 CPU per task)",
            theirs="harness score --executor local (sequential, 1 thread per child)",
            target="reported (2 tasks at once on 2 cores: ideal about 0.5 plus Ray's start-up)",
            correctness={"submissions": count, "metrics_equal": same}, correct=same)
        if same:
            local_times, ray_times = [local_first], [ray_first]
            for _ in range(repeats - 1):
                local_times.append(timed(local))
                ray_times.append(timed(on_ray))
            comparison.ours_seconds, comparison.theirs_seconds = ray_times, local_times
            median = {key: round(statistics.median(p[key] for p in phases), 3) for key in phases[0]}
            children_alone = median["child_seconds_sum"] / 2  # two children at once on two cores
            comparison.details = {
                "submissions": count, "repeats": len(ray_times), "phases_median_seconds": median,
                "local_seconds_per_submission": round(statistics.median(local_times) / count, 3),
                "ray_overhead_seconds": round(statistics.median(ray_times) - children_alone, 3),
                "cpus": os.cpu_count(),
            }
            local_each = statistics.median(local_times) / count
            comparison.note = (f"of the Ray run's median {statistics.median(ray_times):.1f} s: Ray start "
                               f"{median['ray_start']:.1f} s, stop {median['ray_stop']:.1f} s, staging on the node "
                               f"{median['stage_seconds_sum']:.1f} s summed over tasks; the children took "
                               f"{median['child_seconds_sum'] / count:.1f} s each, two at a time, against "
                               f"{local_each:.1f} s per submission locally, one at a time.")
        return [comparison]
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(bench_main(run))
