"""Bounded memory: peak RSS of split building, corruption suites, scoring and ``evaluate --robust`` vs image count.

Ours only: no other tool builds hidden splits or scores sandboxed submissions, so there is no "theirs"; the
figure is the ratio of peak memory at the largest size to the smallest (target: at most 1.2 from 1,000 to
50,000 images).

Data: a generated ``tiny-imagenet`` cache (64x64 RGB uint8, 200 classes; a ``train`` split of 1,024 images and a
``test`` split of the largest size) written chunk by chunk into a folder reused across runs and sizes
(``--data``, default ``$TMPDIR/harness-bench-memory``), recorded as the machine's tiny-imagenet preparation the
way ``harness data prepare`` records one, so every task opens it memory-mapped as real data is. A tiny
small-cnn submission is trained once on the train split. Smaller sizes take the first N test images.

Each (task, size) runs in a fresh Python process (``--task``) that polls ``/proc/<pid>/status`` every 5 ms for
itself and every descendant (the sandboxed scoring child included) and reports the peak of ``RssAnon``:
anonymous memory only. Pages of memory-mapped ``.npy`` files (the dataset cache, the split, predictions) are
file-backed (``RssFile``), so ``RssAnon`` is the memory beyond the memory-mapped data itself; ``VmHWM`` (all
resident pages, mapped files included) is reported beside it.

- ``split``: ``build_split`` of a recipe: clean (weight 4), three corruptions (gaussian-noise, contrast,
  brightness) and a torch augmentation (rotation), weight 1 each, ``limit`` N;
- ``corruptions``: ``corruption_accuracy`` of the trained model on the first N test images: gaussian-noise and
  contrast at severity 3, and clean;
- ``score``: ``score_submissions`` of the trained model (given as its artifact: no training) on that split, its
  child sandboxed (``--sandbox auto``); organiser and child measured apart;
- ``evaluate``: ``harness evaluate SUB --split test --limit N --attack fgsm --robust --robust-attack fgsm``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from common import RESULTS, machine  # noqa: E402

TASKS = ("split", "corruptions", "score", "evaluate")
SIZES = (1_000, 10_000, 50_000)
QUICK_SIZES = (256, 512)
TARGET = 1.2
NAME = "memory_peak_rss"
TRAIN = 1_024
CLASSES = 200
SIDE = 64
CORRUPTIONS = ("gaussian-noise", "contrast", "brightness")
#: the corruption suite task's corruptions (each a pass over the images plus a prediction pass)
SUITE = ("gaussian-noise", "contrast")
SUBMISSION = """name = "bench-tiny"
team = "bench"
framework = "torch"
dataset = "tiny-imagenet"
seed = 0

[backbone]
name = "small-cnn"
params = { width = 8, hidden = 32 }

[defense]
name = "standard"

[training]
epochs = 1
batch_size = 128
lr = 0.05
"""
RECIPE = """[split]
dataset = "tiny-imagenet"
source = "test"
seed = 5
public_fraction = 0.3
limit = {size}

[[perturbations]]
category = "clean"
kind = "clean"
weight = 4
""" + "".join(f"""
[[perturbations]]
category = "{name}"
kind = "augmentation"
name = "corruption/{name}"
severity = 3
""" for name in CORRUPTIONS) + """
[[perturbations]]
category = "rotation"
kind = "augmentation"
name = "rotation"
severity = 3
"""


# --------------------------------------------------------------------------- measuring (in the task process)


def _status(pid: int) -> dict[str, int]:
    """kB values of /proc/PID/status (empty when the process is gone)."""
    try:
        lines = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return {}
    return {key: int(rest.split()[0]) for key, _, rest in (line.partition(":") for line in lines)
            if rest.strip().endswith("kB")}


def _descendants(pid: int) -> list[int]:
    found, queue = [], [pid]
    while queue:
        current = queue.pop()
        try:
            tasks = os.listdir(f"/proc/{current}/task")
        except OSError:
            continue
        for task in tasks:
            try:
                children = Path(f"/proc/{current}/task/{task}/children").read_text().split()
            except OSError:
                continue
            for child in map(int, children):
                found.append(child)
                queue.append(child)
    return found


class Peaks(threading.Thread):
    """Polls RssAnon of this process and of its descendants every ``interval`` seconds; keeps the peaks (kB)."""

    def __init__(self, interval: float = 0.005):
        super().__init__(daemon=True)
        self.interval, self.own, self.child, self.running = interval, 0, 0, True

    def run(self) -> None:
        me = os.getpid()
        while self.running:
            self.own = max(self.own, _status(me).get("RssAnon", 0))
            for pid in _descendants(me):
                self.child = max(self.child, _status(pid).get("RssAnon", 0))
            time.sleep(self.interval)


def run_task(task: str, size: int, data: Path) -> dict[str, Any]:
    """One (task, size) in this process, measured; what :func:`measure` reads back."""
    peaks = Peaks()
    peaks.start()
    started = time.perf_counter()
    detail = TASK_FUNCTIONS[task](size, data)
    seconds = time.perf_counter() - started
    peaks.running = False
    peaks.join()
    mib = lambda kb: round(kb / 1024, 1)  # noqa: E731
    return {"task": task, "size": size, "seconds": round(seconds, 2), "organiser_anon_mib": mib(peaks.own),
            "child_anon_mib": mib(peaks.child) if peaks.child else None,
            "vmhwm_mib": mib(_status(os.getpid()).get("VmHWM", 0)), "detail": detail}


# --------------------------------------------------------------------------- the tasks


def _split_dir(data: Path, size: int) -> Path:
    return data / "work" / f"split-{size}"


def task_split(size: int, data: Path) -> dict[str, Any]:
    from harness.scoring.split import build_split, load_recipe

    recipe = data / "work" / f"recipe-{size}.toml"
    recipe.parent.mkdir(parents=True, exist_ok=True)
    recipe.write_text(RECIPE.replace("{size}", str(size)))
    summary = build_split(load_recipe(recipe), _split_dir(data, size), progress=False)
    return {"split_hash": summary["split_hash"][:16], "categories": summary["categories"]}


def _model(data: Path):
    from harness.submission import load_submission
    from harness.workflow import default_run_dir, load_model

    return load_model(default_run_dir(load_submission(data / "submission"), data / "runs"))


def task_corruptions(size: int, data: Path) -> dict[str, Any]:
    from harness.data import load_dataset
    from harness.robustness.corruption import corruption_accuracy

    loaded = _model(data)
    test = load_dataset("tiny-imagenet").split("test")
    result = corruption_accuracy(loaded.predict_logits, test.images[:size], test.labels[:size], SUITE,
                                 severities=(3,), seed=0)
    return {"clean_accuracy": result.clean_accuracy, "mean_accuracy": result.mean_accuracy()}


def task_score(size: int, data: Path) -> dict[str, Any]:
    from harness.scoring.scorer import entries_from_paths, score_submissions
    from harness.submission import load_submission
    from harness.workflow import default_run_dir

    artifact = default_run_dir(load_submission(data / "submission"), data / "runs")
    work = data / "work" / f"score-{size}"
    (work / "results.db").unlink(missing_ok=True)
    entries = entries_from_paths([data / "submission"], {"bench-tiny": artifact})
    records = score_submissions(entries, _split_dir(data, size), work / "results.db", None, work_dir=work,
                                threads=1, progress=False)
    record = records[0]
    if record.status != "scored":
        raise RuntimeError(f"scoring failed: {record.reason}")
    return {"status": record.status, "isolation": record.isolation,
            "private_score": record.metrics["private"]["score"], "predict_seconds": record.predict_seconds}


def task_evaluate(size: int, data: Path) -> dict[str, Any]:
    import typer

    from harness.cli.main import app

    out = data / "work" / f"evaluate-{size}.csv"
    typer.main.get_command(app)([
        "evaluate", str(data / "submission"), "--runs", str(data / "runs"), "--split", "test", "--limit",
        str(size), "--attack", "fgsm", "--robust", "--robust-attack", "fgsm", "--csv", str(out)],
        standalone_mode=False)
    return {"csv_rows": len(out.read_text().splitlines()) - 1}


TASK_FUNCTIONS = {"split": task_split, "corruptions": task_corruptions, "score": task_score,
                  "evaluate": task_evaluate}


# --------------------------------------------------------------------------- data (in the driver)


def prepare(data: Path, largest: int) -> dict[str, Any]:
    """The generated tiny-imagenet cache (at least ``largest`` test images) and the trained submission, made
    once in ``data`` and reused; seconds spent."""
    import numpy as np

    from harness.chunks import open_npy, spans
    from harness.data import DatasetPlan, load_dataset
    from harness.data.cache import build_cache, cache_key
    from harness.data.index import record_prepared
    from harness.submission import load_submission
    from harness.workflow import default_run_dir, train_submission

    started = time.perf_counter()
    cache = data / "cache"
    params = {"source": f"generated-{largest}"}
    target = cache / cache_key("tiny-imagenet", params)
    if not (target / "manifest.json").is_file():
        rng = np.random.default_rng(0)
        raw = data / "raw"
        raw.mkdir(parents=True, exist_ok=True)
        arrays = {}
        for split, count in (("train", TRAIN), ("test", largest)):
            images = open_npy(raw / f"{split}.npy", (count, SIDE, SIDE, 3), np.uint8)
            for part in spans(count, 4096):  # smooth blobs: a coarse grid upsampled, so corruptions see images
                coarse = rng.integers(0, 256, size=(part.stop - part.start, 8, 8, 3), dtype=np.uint8)
                images[part] = coarse.repeat(SIDE // 8, axis=1).repeat(SIDE // 8, axis=2)
            images.flush()
            arrays[split] = (np.load(raw / f"{split}.npy", mmap_mode="r"), rng.integers(0, CLASSES, count))
        from harness.data.plan import ArraySplit

        ids = [f"n{i:08d}" for i in range(CLASSES)]
        plan = DatasetPlan(ids, ids, (SIDE, SIDE), 3, {k: ArraySplit(*v) for k, v in arrays.items()}, resize=False)
        build_cache("tiny-imagenet", params, plan, target)
        for split in arrays:
            (raw / f"{split}.npy").unlink()
    record_prepared(cache, "tiny-imagenet", target, params)
    submission = data / "submission"
    submission.mkdir(parents=True, exist_ok=True)
    (submission / "submission.toml").write_text(SUBMISSION)
    run_dir = default_run_dir(load_submission(submission), data / "runs")
    if not (run_dir / "model.json").is_file():
        train_submission(load_submission(submission), run_dir, progress=False)
    assert len(load_dataset("tiny-imagenet").split("test")) >= largest
    return {"prepare_seconds": round(time.perf_counter() - started, 1), "cache": str(target)}


def measure(task: str, size: int, data: Path) -> dict[str, Any]:
    """Run one (task, size) in a fresh process and return its measurement."""
    env = dict(os.environ, HARNESS_CACHE_DIR=str(data / "cache"), COLUMNS="120")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), str(ROOT / "plugins"), env.get("PYTHONPATH")]))
    done = subprocess.run([sys.executable, __file__, "--task", task, "--size", str(size), "--data", str(data)],
                          env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"task {task} at {size} failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def table(rows: list[dict[str, Any]], sizes: tuple[int, ...]) -> tuple[str, dict[str, dict[str, float]]]:
    """The markdown table (task x size: peak anon RSS MiB, organiser and child) and the ratios largest/smallest."""
    by = {(r["task"], r["size"]): r for r in rows}
    tasks = list(dict.fromkeys(r["task"] for r in rows))
    lines = ["| task | process | " + " | ".join(f"{s:,} images" for s in sizes) + f" | ratio {sizes[-1]:,}/{sizes[0]:,}"
             " | growth MiB |", "| --- | --- | " + " ---: |" * (len(sizes) + 2)]
    ratios: dict[str, dict[str, float]] = {}
    for task in tasks:
        for process in ("organiser", "child"):
            values = [by[(task, s)][f"{process}_anon_mib"] if (task, s) in by else None for s in sizes]
            if all(v is None for v in values):
                continue
            first, last = values[0], values[-1]
            ratio = round(last / first, 3) if first and last else None
            ratios.setdefault(task, {})[process] = ratio
            cells = [f"{v:.0f}" if v is not None else "-" for v in values]
            growth = f"{last - first:+.0f}" if first and last else "-"
            lines.append(f"| {task} | {process} | " + " | ".join(cells) + f" | {ratio if ratio else '-'} | {growth} |")
    return "\n".join(lines) + "\n", ratios


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help=f"sizes {QUICK_SIZES}: checks that it runs")
    parser.add_argument("--results", type=Path, default=RESULTS, help="folder for the result JSON")
    parser.add_argument("--data", type=Path, default=Path(tempfile.gettempdir()) / "harness-bench-memory",
                        help="folder of the generated data, reused across runs and sizes")
    parser.add_argument("--tasks", nargs="+", choices=TASKS, default=list(TASKS))
    parser.add_argument("--sizes", nargs="+", type=int, default=None)
    parser.add_argument("--jobs", type=int, default=1, help="sizes measured side by side (separate processes)")
    parser.add_argument("--task", choices=TASKS, help=argparse.SUPPRESS)  # one measured run (internal)
    parser.add_argument("--size", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.task:
        print(json.dumps(run_task(args.task, args.size, args.data)), flush=True)
        return 0
    sizes = tuple(sorted(args.sizes or (QUICK_SIZES if args.quick else SIZES)))
    data = args.data / ("quick" if args.quick else "full")
    os.environ["HARNESS_CACHE_DIR"] = str(data / "cache")
    info = prepare(data, sizes[-1])
    print(f"data ready in {info['prepare_seconds']} s: {info['cache']}", flush=True)
    tasks = [t for t in TASKS if t in args.tasks]
    if "score" in tasks and "split" not in tasks and not all(
            (_split_dir(data, size) / "manifest.json").is_file() for size in sizes):
        tasks.insert(0, "split")  # scoring reads the split the split task builds
    def one_size(size: int) -> list[dict[str, Any]]:
        found = []
        for task in tasks:
            row = measure(task, size, data)
            print(f"{task:12s} {size:>7,}: organiser {row['organiser_anon_mib']:7.1f} MiB anon, child "
                  f"{row['child_anon_mib'] or 0:7.1f} MiB anon, VmHWM {row['vmhwm_mib']:7.1f} MiB, "
                  f"{row['seconds']:.1f} s", flush=True)
            found.append(row)
        return found

    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=args.jobs) as pool:  # sizes side by side: each process measures itself
        rows = [row for found in pool.map(one_size, sizes) for row in found]
    text, ratios = table(rows, sizes)
    worst = max((r for by in ratios.values() for r in by.values() if r is not None), default=None)
    result = {
        "name": NAME, "title": f"peak anon RSS {sizes[-1]:,} vs {sizes[0]:,} images (worst task and process)",
        "ours": "harness, streamed in chunks", "theirs": "none: ours only (no other tool does these jobs)",
        "ours_seconds": [], "theirs_seconds": [], "ours_median": None, "theirs_median": None, "ratio": None,
        "target": f"peak anon RSS ratio <= {TARGET}", "target_ratio": TARGET, "worst_ratio": worst,
        "met": None if worst is None else worst <= TARGET, "correct": True,
        "correctness": {"all tasks ran": True}, "quick": args.quick, "sizes": list(sizes), "ratios": ratios,
        "rows": rows, "table": text, "machine": machine(),
        "method": "peak RssAnon polled every 5 ms from /proc/PID/status for the task process and its "
                  "descendants (anonymous pages only: memory-mapped .npy pages are RssFile, so this is the memory "
                  "beyond the memory-mapped data); VmHWM (all resident pages) beside it; one fresh process per "
                  "(task, size)",
        "details": info,
        "note": f"worst ratio {worst}" if worst is not None else "",
    }
    args.results.mkdir(parents=True, exist_ok=True)
    path = args.results / f"{NAME}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {path}\n\n{text}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
