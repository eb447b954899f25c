"""``harness score``: every submission trained and predicted in its own child process, scored here.

The organiser's process alone reads labels and tags; it reads each submission's
TOML only, never its code. Each child gets a scratch folder with copies of the
submission and the hidden images, a scrubbed environment, its own process group
(killed whole on timeout), dies with the organiser, and runs under the isolation
chosen by :mod:`harness.sandbox.choice` (bubblewrap, the built-in namespace sandbox
or Landlock; none only when asked) with resource limits; its stdout and stderr are
capped (``LOG_CAP``). A crash,
timeout, NaN output or wrong number of rows marks the submission failed with the
reason; scoring goes on. Finished results go to the SQLite store in one transaction
each; a rerun skips what is there.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from .. import __version__
from ..errors import UsageError
from ..submission import SUBMISSION_FILE, content_hash, read_toml, submission_file
from ..metrics import topk_correct
from ..paths import cache_dir
from ..sandbox.child import (LOG_CAP, STDERR_TAIL, failure_reason, readable_copy,  # noqa: F401 - re-exported
                             run_isolated)
from ..sandbox.choice import Isolation, choose_isolation
from ..sandbox.limits import Limits, default_limits
from ..sandbox.view import INSIDE, Bind, View, cache_binds, child_view
from .split import HiddenSplit, open_split
from .store import ResultStore, ScoreRecord, result_key

#: environment variables a child keeps; everything else (tokens, organiser paths) is dropped
CHILD_ENV_KEEP = ("PATH", "LANG", "LC_ALL", "TZ", "HARNESS_DEVICE", "CUDA_VISIBLE_DEVICES", "OMP_NUM_THREADS",
                  "MKL_NUM_THREADS",
                  "TF_CPP_MIN_LOG_LEVEL", "VIRTUAL_ENV", "PYTHONPATH")
DEFAULT_TIMEOUT = 3600.0


@dataclass(frozen=True)
class Entry:
    """One submission to score, as the organiser sees it before running any of its code."""

    root: Path
    name: str
    team: str
    framework: str
    content_hash: str
    artifact: Path | None = None


def read_entry(path: str | Path, artifact: Path | None = None) -> Entry:
    """Name, team and framework straight from submission.toml (no plugin code imported here)."""
    toml_path = submission_file(path)
    data = read_toml(toml_path)
    text = {k: data.get(k) if isinstance(data.get(k), str) else "" for k in ("name", "team", "framework")}
    return Entry(root=toml_path.parent.resolve(), name=text["name"] or toml_path.parent.name,
                 team=text["team"] or "?", framework=text["framework"] or "?",
                 content_hash=content_hash(toml_path.parent), artifact=artifact)


def child_env(threads: int | None) -> dict[str, str]:
    env = {k: os.environ[k] for k in CHILD_ENV_KEEP if k in os.environ}
    env["PYTHONUNBUFFERED"] = "1"
    env["MPLBACKEND"] = "Agg"
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    return env


def worker_view(entry: Entry, scratch: Path, cache: Path | None, withhold: tuple[str, str] | None) -> View:
    """What the scoring child sees: code, its copy of the submission and of the images (read-only), its work
    folder and /tmp (writable), the dataset cache without the held-out split (read-only)."""
    binds = [Bind(str(scratch / "submission"), str(INSIDE / "submission")),
             Bind(str(scratch / "images.npy"), str(INSIDE / "images.npy"))]
    if entry.artifact is not None:
        binds.append(Bind(str(scratch / "artifact"), str(INSIDE / "artifact")))
    aliases = {}
    if cache is not None and cache.is_dir():
        more, aliases = cache_binds(cache.resolve(), withhold, scratch / "view", INSIDE / "cache")
        binds += more
    return child_view(scratch, binds, aliases=aliases)


def run_child(entry: Entry, profile: str | None, images: Path, scratch: Path, timeout: float,
              threads: int | None, isolation: Isolation | None = None, limits: Limits | None = None,
              withhold: tuple[str, str] | None = None, cache: Path | None = None) -> tuple[str, str]:
    """Run the worker for ``entry`` (isolated, limited); ("ok", "") or ("failed", reason).

    ``withhold`` (dataset, split): that split of the dataset cache is not in the child's view (the held-out
    images). ``cache``: the dataset cache the child uses (default ``HARNESS_CACHE_DIR`` or the user's cache).
    """
    isolation = isolation or choose_isolation("auto")
    limits = limits or default_limits(timeout, threads)
    scratch, images = scratch.resolve(), Path(images).resolve()  # the child runs in its own directory
    if scratch.exists():
        shutil.rmtree(scratch)
    scratch.mkdir(parents=True)
    readable_copy(images, scratch / "images.npy")  # copies: readable by the child's uid, theirs to break
    readable_copy(entry.root, scratch / "submission")
    if entry.artifact is not None:
        readable_copy(entry.artifact, scratch / "artifact")
    view = worker_view(entry, scratch, Path(cache) if cache is not None else cache_dir(), withhold)
    inside = lambda target: view.path(target, isolation.mapped)  # noqa: E731 - a path as the child names it
    env = child_env(threads)  # no HARNESS_DATA_DIR: raw downloads (e.g. Tiny ImageNet's val labels) never shown
    env.update(view.home_env(isolation.mapped))
    if view.aliases:
        env["HARNESS_CACHE_DIR"] = inside(INSIDE / "cache")
    command = [sys.executable, "-m", "harness.scoring.worker", "--submission", inside(INSIDE / "submission"),
               "--images", inside(INSIDE / "images.npy"), "--out", inside(INSIDE / "work")]
    if profile:
        command += ["--profile", profile]
    if entry.artifact is not None:
        command += ["--artifact", inside(INSIDE / "artifact")]
    if threads:
        command += ["--threads", str(threads)]
    code = run_isolated(command, view, isolation, limits, env, scratch, timeout)
    if code is None:
        return "failed", f"timeout: no result after {timeout:g} s (process group killed)"
    if code != 0:
        return "failed", failure_reason(code, scratch / "stderr.log")
    return "ok", ""


def check_predictions(path: Path, count: int, num_classes: int) -> np.ndarray:
    """The child's logits, checked: readable, (count, num_classes), finite. UsageError says what is wrong."""
    if not path.is_file():
        raise UsageError("no predictions written")
    try:
        logits = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise UsageError(f"unreadable predictions: {exc}") from None
    if logits.ndim != 2 or logits.shape[0] != count or logits.shape[1] != num_classes:
        raise UsageError(f"wrong predictions shape {tuple(logits.shape)}: expected ({count}, {num_classes}), "
                         "one row of class scores per hidden image")
    if not np.issubdtype(logits.dtype, np.number):
        raise UsageError(f"predictions must be numbers, got {logits.dtype}")
    bad = int(np.count_nonzero(~np.isfinite(logits)))
    if bad:
        raise UsageError(f"predictions contain {bad} NaN or infinite values")
    return logits.astype(np.float32, copy=False)


def score_metrics(logits: np.ndarray, split: HiddenSplit) -> dict[str, dict[str, float]]:
    """Per partition: clean top-1/top-5, top-1 per perturbation category, and the score (their mean)."""
    categories = list(split.summary.get("categories") or dict.fromkeys(split.categories))  # recipe order
    category_of = np.asarray(split.categories)
    metrics = {}
    for partition, mask in (("public", split.public), ("private", ~split.public)):
        values: dict[str, float] = {}
        clean = mask & (category_of == "clean")
        if clean.any():
            values["clean_top1"] = topk_correct(logits[clean], split.labels[clean], 1) / int(clean.sum())
            values["clean_top5"] = topk_correct(logits[clean], split.labels[clean], 5) / int(clean.sum())
        per_category = []
        for category in categories:
            chosen = mask & (category_of == category)
            if chosen.any():
                value = topk_correct(logits[chosen], split.labels[chosen], 1) / int(chosen.sum())
                values[f"top1_{category}"] = value
                per_category.append(value)
        values["score"] = float(np.mean(per_category)) if per_category else 0.0
        metrics[partition] = values
    return metrics


EXECUTORS = ("local", "ray")


@dataclass(frozen=True)
class Job:
    """One submission to run: its entry, store key and organiser-side scratch folder."""

    entry: Entry
    key: str
    scratch: Path


@dataclass(frozen=True)
class RunSettings:
    """What every child run gets, whichever executor runs it."""

    profile: str | None
    timeout: float
    threads: int | None
    sandbox: str
    memory_gb: float | None
    withhold: tuple[str, str]


def local_runs(jobs: list[Job], split: HiddenSplit, settings: RunSettings,
               event: Callable[[str, Entry, str], None]) -> Iterator[tuple[Job, str, str, str]]:
    """The local executor: one child after the other on this machine; yields (job, status, reason, isolation)."""
    isolation = choose_isolation(settings.sandbox)
    limits = default_limits(settings.timeout, settings.threads, settings.memory_gb)
    for job in jobs:
        event("running", job.entry, "")
        status, reason = run_child(job.entry, settings.profile, split.images_path, job.scratch, settings.timeout,
                                   settings.threads, isolation, limits, settings.withhold)
        yield job, status, reason, isolation.kind


def score_submissions(
    entries: list[Entry],
    split_dir: str | Path,
    db: str | Path,
    leaderboard: str | Path | None,
    *,
    profile: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    work_dir: str | Path = "runs/score",
    threads: int | None = None,
    skip: dict[str, str] | None = None,
    retry_failed: bool = False,
    sandbox: str = "auto",
    memory_gb: float | None = None,
    on_event: Callable[[str, Entry, str], None] | None = None,
    executor: str = "local",
    ray_options: Any = None,
) -> list[ScoreRecord]:
    """Score ``entries`` on the split (verified first); return every record of this split.

    ``retry_failed`` scores again the submissions whose stored result is a failure.
    ``skip`` maps submission names to a reason (e.g. needs a GPU): recorded nowhere,
    only reported, so they are scored once the hardware allows. ``sandbox`` is auto (the first of
    bwrap, ns, landlock that works here, else a UsageError), one of those (a UsageError when it cannot
    run) or none (no isolation; each record says how it was run); ``memory_gb`` caps each child's
    address space (default: the machine's memory without a GPU, none with one). ``executor``
    "local" runs the children here one after the other; "ray" runs them as Ray tasks
    (``ray_options``: a :class:`harness.scoring.ray_executor.RayOptions`). ``on_event(kind,
    entry, detail)`` reports "cached", "skipped", "queued" (ray), "running", "scored" and "failed".
    """
    from .leaderboard import write_leaderboard

    if executor not in EXECUTORS:
        raise UsageError(f"--executor '{executor}': expected one of {', '.join(EXECUTORS)}")
    if executor == "local":
        choose_isolation(sandbox)  # an isolation that cannot run is an error before anything starts
    split = open_split(split_dir)
    num_classes = int(split.summary["num_classes"])
    event = on_event or (lambda kind, entry, detail: None)
    profile_name = profile or "base"
    work_dir = Path(work_dir)
    settings = RunSettings(profile, timeout, threads, sandbox, memory_gb,
                           (split.summary.get("dataset"), split.summary.get("source")))
    with ResultStore(db) as store:
        jobs = []
        for entry in entries:
            key = result_key(entry.content_hash, split.split_hash, __version__, profile_name)
            if retry_failed:
                store.forget_failure(key)
            if store.has(key):
                event("cached", entry, "already scored: kept")
            elif skip and entry.name in skip:
                event("skipped", entry, skip[entry.name])
            else:
                jobs.append(Job(entry, key, work_dir / f"{entry.name}-{key[:12]}"))
        if executor == "ray":
            from .ray_executor import ray_runs

            runs = ray_runs(jobs, split, settings, ray_options, event)
        else:
            runs = local_runs(jobs, split, settings, event)
        for job, status, reason, isolation in runs:
            entry = job.entry
            metrics: dict[str, Any] = {}
            timings: dict[str, Any] = {}
            if status == "ok":
                try:
                    logits = check_predictions(job.scratch / "work" / "predictions.npy", len(split.ids), num_classes)
                    metrics = score_metrics(logits, split)
                    timings = json.loads((job.scratch / "work" / "result.json").read_text())
                    status = "scored"
                except (UsageError, ValueError, OSError) as exc:
                    status, reason = "failed", getattr(exc, "message", str(exc))
            record = ScoreRecord(
                submission=entry.name, team=entry.team, framework=entry.framework, profile=profile_name,
                content_hash=entry.content_hash, split_hash=split.split_hash, harness_version=__version__,
                status=status, reason=reason, metrics=metrics,
                train_seconds=timings.get("train_seconds"), predict_seconds=timings.get("predict_seconds"),
                isolation=isolation,
            )
            store.add(record)
            event(status, entry, reason)
            if leaderboard is not None:
                write_leaderboard(store.records(split.split_hash), leaderboard)
        records = store.records(split.split_hash)
    if leaderboard is not None:
        write_leaderboard(records, leaderboard)
    return records


def entries_from_paths(paths: list[str | Path], artifacts: dict[str, Path] | None = None) -> list[Entry]:
    """Entries for submission folders (or folders of them); ``artifacts`` maps names to trained models."""
    from ..submission import find_submissions

    artifacts = dict(artifacts or {})
    entries = []
    for folder in find_submissions(list(paths)):
        entry = read_entry(folder)
        if entry.name in artifacts:
            entry = read_entry(folder, artifacts.pop(entry.name).resolve())
        entries.append(entry)
    names = [e.name for e in entries]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise UsageError(f"two submissions are called '{duplicates[0]}' ({SUBMISSION_FILE} name field)")
    if artifacts:
        raise UsageError(f"--artifact names unknown submission '{next(iter(artifacts))}'")
    return entries
