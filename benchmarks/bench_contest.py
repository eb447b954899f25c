"""``harness contest run`` with the Ray executor: does rebuilding the site in the background hold up scoring?

The runner (:func:`harness.contest.runner.run_contest`) rebuilds the static site in a background thread
(:class:`~harness.contest.runner.BackgroundUpdate`) when it starts, after each recorded entry and after each
stored result. This benchmark scores the same inbox twice per repeat, from the same starting store:

- *ours*: ``run_contest(..., once=True, on_update=<the CLI's site updater>)``: the real
  :func:`harness.cli.contest_cmd.site_updater` (``build_site`` into ``OUTPUT/site``), wrapped to record each
  build's start and end;
- *theirs*: the same run with ``on_update=None`` (``harness contest run --no-site``).

The timed figure is the *scoring wall time*: from the call to the last inbox result stored (its ``finished_at``),
so it covers Ray's start, recording the entries and the Ray pass, not the last rebuild the runner waits for
when it closes (reported apart). Target: ratio <= 1.1 (the rebuilds do not hold up scoring).

Workload: a contest (``contest.toml`` written here: ``[executor] kind = "ray"``, a local Ray instance with one
CPU per task, ``sandbox = "auto"``, ``explain = 0``, ``profile = "cpu"``) on a 200-image split built from the
digits recipe of ``workloads.py``. Its store starts with a generated history (``bench_site.generate_store``:
200 teams x 5 versions = 1,000 results, re-keyed to the contest's split hash and harness version, each ledger
entry with its record's content hash), and its site already built from it (hard-linked into each run's output:
a contest in progress), so each rebuild takes seconds. The inbox: N = 4 (2 with ``--quick``: then 20 teams x 5)
copies of ``tests/submissions/tiny``, each from its own team.

Correctness first: both sides store the same metrics for every inbox submission (all scored); the with-site
run's final site passes ``check_site``, has one page per stored result and one board row per team with a
scored result, and lists every inbox team. ``details`` gives, per run, each build's (start, end) and each
result's ``finished_at`` (seconds from the call), how many results were stored while a build was running (at
least one in the with-site runs, or the note says the overlap was not shown), Ray's start time and the last
build's seconds.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from common import QUICK_REPEATS, Comparison, bench_main  # noqa: E402
from workloads import digits_split_recipe  # noqa: E402

CONTEST_TOML = """\
name = "Benchmark cup"
split = "{split}"
output = "."
profile = "cpu"
sandbox = "auto"
timeout = 900.0
explain = 0

[executor]
kind = "ray"
cpus_per_submission = 1.0
"""


def make_inbox(folder: Path, count: int) -> list[str]:
    """``folder/bench-team-I/tiny-I``: ``count`` copies of tests/submissions/tiny, each with its own name and team;
    the teams."""
    teams = []
    for index in range(1, count + 1):
        team = f"bench-team-{index}"
        target = folder / team / f"tiny-{index}"
        shutil.copytree(ROOT / "tests" / "submissions" / "tiny", target, ignore=shutil.ignore_patterns("__pycache__"))
        toml = target / "submission.toml"
        text = re.sub(r'^name = "tiny"', f'name = "tiny-{index}"', toml.read_text(), flags=re.M)
        toml.write_text(re.sub(r'^team = "tests"', f'team = "{team}"', text, flags=re.M))
        teams.append(team)
    return teams


def make_template(work: Path, teams: int, versions: int, split_hash: str) -> Path:
    """A contest store of ``teams`` x ``versions`` generated results under the contest's split hash, profile and
    harness version (so the runner finds every one stored), and its site built: ``work/template``."""
    from bench_site import generate_store

    from harness import __version__
    from harness.contest.ledger import Ledger
    from harness.scoring.store import ResultStore
    from harness.site import build_site

    raw = generate_store(work / "generated", teams, versions)  # its reports/ folder stays: the records name it
    with ResultStore(raw) as store, Ledger(raw) as ledger:
        records, entries, settings = store.records(), ledger.entries(), ledger.settings()
    template = work / "template"
    template.mkdir()
    content = {r.submission: r.content_hash for r in records}
    with ResultStore(template / "results.sqlite") as store, Ledger(template / "results.sqlite") as ledger:
        for record in records:
            store.add(dataclasses.replace(record, split_hash=split_hash, harness_version=__version__, profile="cpu"))
        for entry in entries:
            ledger.add(dataclasses.replace(entry, id=None, content_hash=content.get(entry.submission, "")))
        ledger.set_settings({**settings, "split_hash": split_hash})
    build_site(template / "results.sqlite", template / "site")
    return template


@contextlib.contextmanager
def ray_start_timer(starts: list[float]):
    """``harness.scoring.ray_executor.ray_session`` wrapped to append the seconds each fresh Ray start took."""
    from harness.scoring import ray_executor

    original = ray_executor.ray_session

    @contextlib.contextmanager
    def timed_session(options):
        fresh = not ray_executor.ray_module().is_initialized()
        started = time.perf_counter()
        with original(options) as ray:
            if fresh:
                starts.append(time.perf_counter() - started)
            yield ray

    ray_executor.ray_session = timed_session
    try:
        yield
    finally:
        ray_executor.ray_session = original


def contest_run(template: Path, split: Path, inbox: Path, teams: list[str], out: Path, site: bool) -> dict[str, Any]:
    """One ``run_contest(once=True)`` on a copy of the template: what it stored and when, and each build."""
    from harness.cli.contest_cmd import site_updater
    from harness.contest.runner import run_contest
    from harness.contest.spec import load_contest

    out.mkdir(parents=True)
    shutil.copyfile(template / "results.sqlite", out / "results.sqlite")
    shutil.copytree(template / "site", out / "site", copy_function=os.link)  # builds swap in a new folder
    (out / "contest.toml").write_text(CONTEST_TOML.format(split=split))
    spec = load_contest(out / "contest.toml")
    builds: list[tuple[float, float]] = []
    updater = None
    if site:
        real = site_updater(spec.db, spec.site_dir)

        def updater() -> None:
            started = time.time()
            try:
                real()
            finally:
                builds.append((started, time.time()))

    ray_starts: list[float] = []
    with ray_start_timer(ray_starts):
        started = time.time()
        result = run_contest(spec, inbox, once=True, on_update=updater, progress=False)
        returned = time.time()
    mine = [r for r in result.records if r.team in teams]
    finished = sorted(r.finished_at for r in mine)
    during = sum(any(start <= f <= end for start, end in builds) for f in finished)
    return {
        "out": out, "records": len(result.records), "stored": len(mine),
        "statuses": {r.submission: r.status for r in mine}, "metrics": {r.submission: r.metrics for r in mine},
        "scoring_seconds": (finished[-1] - started) if finished else float("nan"),
        "returned_seconds": returned - started,
        "builds": [(round(s - started, 2), round(e - started, 2)) for s, e in builds],
        "finished_at": [round(f - started, 2) for f in finished], "stored_during_build": during,
        "ray_start_seconds": round(ray_starts[0], 2) if ray_starts else None,
        "last_build_seconds": round(builds[-1][1] - builds[-1][0], 2) if builds else None,
    }


def check_final_site(run: dict[str, Any], teams: list[str]) -> dict[str, Any]:
    """The with-site run's final site: bench_site's check (check_site, pages, board rows) and a board row for every
    inbox team."""
    from bench_site import _check

    site = run["out"] / "site"
    found = _check(run["out"] / "results.sqlite", site, len(teams), run["records"])
    index = (site / "index.html").read_text(encoding="utf-8")
    board = index.split('id="leaderboard"', 1)[-1].split("</table>", 1)[0]
    missing = [team for team in teams if f"<td>{team}</td>" not in board]
    return {**found, "inbox_teams_missing": missing, "ok": found["ok"] and not missing}


def run(quick: bool = False, repeats: int = 3) -> list[Comparison]:
    from harness.scoring.split import build_split, load_recipe, open_split

    count = 2 if quick else 4
    store_teams, versions = (20, 5) if quick else (200, 5)
    repeats = QUICK_REPEATS if quick else repeats
    work = Path(tempfile.mkdtemp(prefix="bench-contest-"))
    try:
        (work / "recipe.toml").write_text(digits_split_recipe(seed=7, limit=200))
        split = work / "split"
        build_split(load_recipe(work / "recipe.toml"), split, references=work / "references", progress=False)
        split_hash = open_split(split).split_hash
        started = time.perf_counter()
        template = make_template(work, store_teams, versions, split_hash)
        template_seconds = time.perf_counter() - started
        teams = make_inbox(work / "inbox", count)
        numbers = iter(range(1_000_000))

        def one(site: bool) -> dict[str, Any]:
            return contest_run(template, split, work / "inbox", teams,
                               work / f"{'site' if site else 'nosite'}-{next(numbers)}", site)

        # correctness before timing: one run each (they are the first timed repeat)
        first_site, first_bare = one(True), one(False)
        site_check = check_final_site(first_site, teams)
        all_scored = all(set(r["statuses"].values()) == {"scored"} and r["stored"] == count
                         for r in (first_site, first_bare))
        same = first_site["metrics"] == first_bare["metrics"]
        correct = same and all_scored and site_check["ok"]
        comparison = Comparison(
            name="contest_ray_site_vs_no_site",
            title=f"contest run, Ray executor: score {count} tiny submissions on 2 CPUs beside a "
                  f"{store_teams * versions}-result history, site rebuilt in the background",
            ours="run_contest(once=True, on_update=site_updater): build_site in a background thread",
            theirs="run_contest(once=True, on_update=None) (harness contest run --no-site)",
            target="ratio <= 1.1 (the rebuilds do not hold up scoring); time to the last result stored",
            target_ratio=1.1,
            correctness={"check": "same metrics for every inbox submission with and without the site, all scored; "
                                  "the final site passes check_site, one page per result, one board row per "
                                  "scored team, every inbox team listed",
                         "submissions": count, "metrics_equal": same, "all_scored": all_scored, "site": site_check},
            correct=correct)
        if not correct:
            return [comparison]
        site_runs, bare_runs = [first_site], [first_bare]
        for _ in range(repeats - 1):
            site_runs.append(one(True))
            bare_runs.append(one(False))
        for run_ in site_runs + bare_runs:
            shutil.rmtree(run_.pop("out"), ignore_errors=True)
            run_.pop("metrics"), run_.pop("statuses")
        comparison.ours_seconds = [r["scoring_seconds"] for r in site_runs]
        comparison.theirs_seconds = [r["scoring_seconds"] for r in bare_runs]
        during = [r["stored_during_build"] for r in site_runs]
        build_seconds = [e - s for r in site_runs for s, e in r["builds"]]
        ours, theirs = statistics.median(comparison.ours_seconds), statistics.median(comparison.theirs_seconds)
        returned = statistics.median(r["returned_seconds"] for r in site_runs)
        returned_bare = statistics.median(r["returned_seconds"] for r in bare_runs)
        comparison.details = {
            "submissions": count, "store_results": store_teams * versions, "repeats": len(site_runs),
            "template_seconds": round(template_seconds, 1),
            "stored_during_build": during, "overlap_shown": all(n >= 1 for n in during),
            "builds_per_run": [len(r["builds"]) for r in site_runs],
            "build_seconds_median": round(statistics.median(build_seconds), 2) if build_seconds else None,
            "returned_seconds_median": {"site": round(returned, 2), "no_site": round(returned_bare, 2)},
            "ray_start_seconds_median": {
                side: statistics.median(starts) if starts else None for side, starts in (
                    ("site", [r["ray_start_seconds"] for r in site_runs if r["ray_start_seconds"] is not None]),
                    ("no_site", [r["ray_start_seconds"] for r in bare_runs if r["ray_start_seconds"] is not None]))},
            "site_runs": site_runs, "no_site_runs": bare_runs, "cpus": os.cpu_count(),
        }
        overlap = (f"{sum(during)} of {count * len(site_runs)} results were stored while a build was running"
                   if all(n >= 1 for n in during) else
                   f"OVERLAP NOT SHOWN: in {sum(n == 0 for n in during)} of {len(during)} with-site runs no "
                   f"result was stored while a build was running ({during})")
        comparison.note = (
            f"scoring (call to last result stored) {ours:.1f} s with the site rebuilt in the background vs "
            f"{theirs:.1f} s without; {overlap}; {statistics.median(len(r['builds']) for r in site_runs):.0f} "
            f"builds a run, {comparison.details['build_seconds_median']} s each (median), the last "
            f"{site_runs[-1]['last_build_seconds']} s; Ray start "
            f"{comparison.details['ray_start_seconds_median']['site']} s; run_contest returned after "
            f"{returned:.1f} s with the site (the last rebuild is waited for on close) vs {returned_bare:.1f} s.")
        return [comparison]
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(bench_main(run))
