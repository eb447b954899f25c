"""The static site at contest scale: ``harness site build`` on a generated contest store of 1,000 results.

Two comparisons:

- **Site build vs the CSV leaderboard** (``site_build_vs_csv_leaderboard``): ours builds the whole site (index,
  one page per result with its charts, content-addressed pictures, atomically swapped in) from a cold start,
  i.e. into a new folder; theirs writes the CSV leaderboard of the same store (``write_leaderboard``: what an
  organiser published before the site existed). The issue's targets are absolute and recorded in ``details``:
  the cold build under 10 s on 2 cores and ``index.html`` under 1 MB; a warm rebuild (nothing changed, pictures
  hard-linked from the previous build) is timed too.
- **SVG charts vs matplotlib** (``site_charts_svg_vs_matplotlib``): the charts of N result pages drawn by the
  site's SVG writer (:mod:`harness.site.svg`) vs the same data drawn by :mod:`harness.plots` (matplotlib, PNG):
  why the site writes SVG by hand (one file per page: on this project's VMs creating a file costs about 1 ms,
  more than drawing its charts). Target: ratio <= 0.1.

The store (seeded, written once per run): 200 teams x 5 versions (40 with ``--quick``: 10 teams x 4) in a contest
ledger, 3% of them failed or invalid, 10 rejected entries, each scored record with 7 categories and their
intervals in both partitions, per-image correctness (1,000 images per partition), a 30-epoch history, a
breakdown of 20 tags, flags on every seventh, submission.toml as its spec and two report pictures (distinct
PNGs of about 12 KB). Correctness first: the built site passes ``check_site``, has one page per record plus the
index, one board row per team (plus the baselines), and no private number in the public build's board.
"""

from __future__ import annotations

import shutil
import statistics
import sys
import tempfile
import time
import zlib
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from common import QUICK_REPEATS, Comparison, alternate, bench_main, timed  # noqa: E402

CATEGORIES = ("clean", "noise", "blur", "fog", "fgsm", "pgd", "attacks")
TAGS = (["clean"] + [f"corruption:{name}@{s}" for name in ("fog", "frost", "contrast") for s in (1, 2, 3, 4, 5)]
        + [f"attack:fgsm{{eps={e}}}" for e in (0.02, 0.05)] + ["adaptive:pgd{eps=0.03,norm=linf,steps=10}",
                                                               "adaptive:pgd{eps=0.1,norm=linf,steps=10}"])
IMAGES = 1000


def _png(rng: np.random.Generator, size: int = 64) -> bytes:
    """A distinct PNG of noise (about 12 KB), written with zlib (no drawing library needed)."""
    import struct

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    pixels = rng.integers(0, 256, (size, size), dtype=np.uint8) // 8 * 8  # compressible like a picture
    raw = b"".join(b"\x00" + row.tobytes() for row in pixels)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", size, size, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b""))


def generate_store(folder: Path, teams: int, versions: int, seed: int = 0) -> Path:
    """A contest store of ``teams`` x ``versions`` results (see the module docstring) under ``folder``."""
    from harness.contest.ledger import ContestEntry, Ledger, contest_submission_name
    from harness.scoring.stats import pack_bits, wilson_interval
    from harness.scoring.store import ResultStore, ScoreRecord

    rng = np.random.default_rng(seed)
    db = folder / "results.sqlite"
    split = "5e" * 32
    per_category = IMAGES // len(CATEGORIES)
    with ResultStore(db) as store, Ledger(db) as ledger:
        number = 0
        for team_number in range(teams):
            team = f"team-{team_number:03d}"
            for version in range(1, versions + 1):
                number += 1
                submission = contest_submission_name(team, "robust-net", version)
                arrived = 1_790_000_000 + number * 600
                spec = (f'name = "robust-net"\nteam = "{team}"\nframework = "torch"\n\n[backbone]\nname = '
                        f'"small-cnn"\nwidth = {16 * version}\n\n[defense]\nname = "pgd-training"\neps = 0.03\n'
                        f'steps = 7\n\n[profiles.cpu]\nepochs = 30\nbatch_size = 128\nlr = 0.05\n')
                ledger.add(ContestEntry(f"{team}/v{version}.tar.gz", f"fp{number}", team, arrived, "accepted",
                                        name="robust-net", submission=submission, track="defense", spec=spec))
                status = "scored" if rng.random() > 0.03 else str(rng.choice(["failed", "invalid"]))
                metrics, correct, details = {}, {}, {"isolation": "ns", "spec": spec, "bootstrap_seed": 7}
                if status == "scored":
                    skill = rng.uniform(0.2, 0.9)
                    for partition in ("public", "private"):
                        values, bits = {"clean_top1": skill, "clean_top5": min(1.0, skill + 0.2)}, {}
                        for category in CATEGORIES:
                            hits = rng.random(per_category) < skill * rng.uniform(0.6, 1.0)
                            bits[category] = pack_bits(hits)
                            values[f"top1_{category}"] = float(hits.mean())
                            values[f"{category}_ci_low"], values[f"{category}_ci_high"] = wilson_interval(
                                int(hits.sum()), per_category)
                        values["score"] = float(np.mean([values[f"top1_{c}"] for c in CATEGORIES]))
                        values["score_ci_low"], values["score_ci_high"] = values["score"] - 0.03, values["score"] + .03
                        metrics[partition], correct[partition] = values, bits
                    details["breakdown"] = {p: {tag: [int(n * skill * rng.uniform(0.5, 1.0)), n] for tag in TAGS
                                                for n in [int(rng.integers(20, 60))]} for p in ("public", "private")}
                    details["history"] = [{"epoch": e, "train_loss": 2.3 / e ** 0.5, "train_top1": skill * e / 30,
                                           "val_loss": 2.4 / e ** 0.5, "val_top1": skill * e / 31, "lr": 0.05}
                                          for e in range(1, 31)]
                    report = folder / "reports" / submission
                    report.mkdir(parents=True)
                    (report / "explain.png").write_bytes(_png(rng))
                    (report / "activations.png").write_bytes(_png(rng))
                    details["report"] = {"status": "ok", "reason": "", "dir": str(report),
                                         "pictures": {"explain": "explain.png", "activations": "activations.png"}}
                store.add(ScoreRecord(
                    submission=submission, team=team, framework="torch", profile="cpu",
                    content_hash=f"{number:064x}", split_hash=split, harness_version="bench", status=status,
                    reason="" if status == "scored" else "crashed: killed by the memory limit",
                    metrics=metrics, train_seconds=60.0, predict_seconds=2.0, finished_at=arrived + 300,
                    isolation="ns", flags=["pgd: zero-gradients"] if number % 7 == 0 else [], details=details,
                    correct=correct))
        for extra in range(10):
            ledger.add(ContestEntry(f"team-000/late-{extra}.tar.gz", f"late{extra}", "team-000",
                                    1_800_000_000 + extra, "rejected", name="robust-net",
                                    reason="arrived after the deadline (2026-12-15 23:59 UTC)", track="defense"))
        ledger.set_settings({"name": "Benchmark cup", "deadline": 1_797_379_140.0,  # 2026-12-15T23:59:00Z
                             "reveal_private": True, "split_hash": split})
    return db


def _check(db: Path, site: Path, teams: int, records: int) -> dict:
    """The built site: check_site clean, one page per record, one board row per team with a scored entry."""
    import re

    from harness.scoring.store import ResultStore
    from harness.site import check_site

    problems = check_site(site)
    pages = len(list((site / "submissions").glob("*.html")))
    index = (site / "index.html").read_text(encoding="utf-8")
    board = index.split('id="leaderboard"', 1)[-1].split("</table>", 1)[0]
    rows = len(re.findall(r"<tr[ >]", board)) - 1  # less the header
    with ResultStore(db) as store:
        scored_teams = {r.team for r in store.records() if r.status == "scored"}
    return {"check": "check_site finds no problem; one page per record; one board row per team with a scored "
                     "entry", "problems": problems[:5], "pages": pages, "records": records, "board_rows": rows,
            "teams_scored": len(scored_teams), "ok": not problems and pages == records
            and rows == len(scored_teams)}


def run(quick: bool = False, repeats: int = 3) -> list[Comparison]:
    from harness.scoring.leaderboard import write_leaderboard
    from harness.scoring.store import ResultStore
    from harness.site import build_site
    from harness.site.figures import record_chart

    repeats = QUICK_REPEATS if quick else repeats
    teams, versions = (10, 4) if quick else (200, 5)
    work = Path(tempfile.mkdtemp(prefix="bench-site-"))
    try:
        started = time.perf_counter()
        db = generate_store(work, teams, versions)
        generate_seconds = time.perf_counter() - started
        with ResultStore(db) as store:
            records = store.records()
        correctness = _check(db, build_site(db, work / "check-site", now=0).out, teams, len(records))
        build = Comparison(
            name="site_build_vs_csv_leaderboard",
            title=f"Site build: {len(records)} results ({teams} teams x {versions} versions), cold",
            ours="harness site build (index + one page per result, SVG charts, pictures, atomic swap)",
            theirs="write_leaderboard: the CSV leaderboard of the same store",
            target="absolute: cold build < 10 s on 2 cores, index.html < 1 MB (details)",
            correctness=correctness, correct=correctness["ok"])
        charts = Comparison(
            name="site_charts_svg_vs_matplotlib", title="Result-page charts: SVG writer vs matplotlib",
            ours="harness.site.svg (training loss + top-1, accuracy vs eps, corruption heat map; one SVG file)",
            theirs="harness.plots (matplotlib Agg PNG: training curves, robustness vs eps, corruptions)",
            target="ratio <= 0.1", target_ratio=0.1)
        if not build.correct:
            return [build, charts]
        cold = [0]

        def ours() -> None:
            cold[0] += 1
            build_site(db, work / f"cold-{cold[0]}", now=0)

        build.ours_seconds, build.theirs_seconds = alternate(ours, lambda: write_leaderboard(records, work / "lb.csv"),
                                                             repeats, warmup=0)
        warm = [timed(lambda: build_site(db, work / "cold-1", now=0)) for _ in range(repeats)]
        site = work / "cold-1"
        files = [p for p in site.rglob("*") if p.is_file()]
        index_bytes = (site / "index.html").stat().st_size
        cold_median = statistics.median(build.ours_seconds)
        build.details = {
            "results": len(records), "teams": teams, "versions": versions, "generate_store_seconds":
            round(generate_seconds, 2), "cold_seconds": [round(s, 3) for s in build.ours_seconds],
            "warm_seconds": [round(s, 3) for s in warm], "cold_median_s": round(cold_median, 3),
            "warm_median_s": round(statistics.median(warm), 3), "total_bytes": sum(p.stat().st_size for p in files),
            "files": len(files), "index_bytes": index_bytes,
            "largest_page_bytes": max(p.stat().st_size for p in site.rglob("*.html")),
            "target_cold_under_10s": cold_median < 10.0, "target_index_under_1mb": index_bytes < 1_000_000}
        build.note = (f"cold {cold_median:.2f} s, warm {statistics.median(warm):.2f} s, "
                      f"{build.details['total_bytes'] / 1e6:.1f} MB in {len(files)} files, index.html "
                      f"{index_bytes / 1e3:.0f} KB; targets (< 10 s, < 1 MB) "
                      + ("met" if build.details["target_cold_under_10s"] and build.details["target_index_under_1mb"]
                         else "missed"))
        chart_records = [r for r in records if r.status == "scored"][:2 if quick else 10]
        charts_dir = work / "charts"
        charts_dir.mkdir()

        def svg_charts() -> None:
            for number, record in enumerate(chart_records):
                document, _, _ = record_chart(record.details, "public", record.submission)
                (charts_dir / f"{number}.svg").write_text(document)

        def matplotlib_charts() -> None:
            _matplotlib_charts(chart_records, charts_dir)

        charts.ours_seconds, charts.theirs_seconds = alternate(svg_charts, matplotlib_charts, repeats)
        svg_files, png_files = list(charts_dir.glob("*.svg")), list(charts_dir.glob("*.png"))
        charts.correctness = {"check": "both sides write every chart of every page (one SVG "
                                       "holding the four panels; three PNGs), none empty",
                              "records": len(chart_records), "svg_files": len(svg_files), "png_files": len(png_files)}
        charts.correct = (len(svg_files) == len(chart_records) and len(png_files) == 3 * len(chart_records)
                          and all(p.stat().st_size > 0 for p in svg_files + png_files))
        charts.details = {"records": len(chart_records), "repeats": repeats,
                          "svg_bytes_mean": int(np.mean([p.stat().st_size for p in svg_files])),
                          "png_bytes_mean": int(np.mean([p.stat().st_size for p in png_files]))}
        return [build, charts]
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _matplotlib_charts(records, folder: Path) -> None:
    """The same three pictures per record with harness.plots (matplotlib)."""
    from harness.plots import plot_corruptions, plot_robustness, plot_training_curves
    from harness.scoring.split import parse_tag
    from harness.training.history import EpochMetrics, TrainingHistory

    for number, record in enumerate(records):
        history = TrainingHistory([EpochMetrics(epoch=e["epoch"], train_loss=e["train_loss"],
                                                train_top1=e["train_top1"], train_top5=1.0, lr=e["lr"], seconds=1.0,
                                                val_loss=e["val_loss"], val_top1=e["val_top1"])
                                   for e in record.details["history"]])
        plot_training_curves(history, folder / f"{number}-curves.png", title=record.submission)
        counts = record.details["breakdown"]["public"]
        clean = counts["clean"][0] / counts["clean"][1]
        series: dict = {}
        grid: dict = {}
        for tag, (correct, total) in counts.items():
            parsed = parse_tag(tag)
            if parsed.eps is not None:
                series.setdefault(parsed.name, []).append({"eps": parsed.eps, "accuracy": correct / total})
            elif parsed.kind == "corruption":
                grid.setdefault(parsed.name, {})[parsed.severity] = correct / total
        plot_robustness({name: {"robust_accuracy": points, "clean_accuracy": clean} for name, points in
                         series.items()}, folder / f"{number}-eps.png")
        severities = sorted({s for row in grid.values() for s in row})
        plot_corruptions(list(grid), severities, np.array([[row.get(s, np.nan) for s in severities]
                                                           for row in grid.values()]),
                         record.submission, folder / f"{number}-corruptions.png")


if __name__ == "__main__":
    sys.exit(bench_main(run))
