"""One scoring child: what it is given (:class:`Entry`, :class:`Job`, :class:`RunSettings`), how it is started
and watched (:func:`run_child`; every harness child, the exported-model ones of :mod:`harness.scoring.adaptive`
included, through :func:`run_harness_child`) and how its output is read back (:func:`open_predictions`,
:func:`check_predictions`).

Both executors use this module: the local one in :mod:`harness.scoring.scorer` and the Ray one in
:mod:`harness.scoring.ray_executor` (on the worker). The child gets a scratch folder with copies of the
submission and the hidden images, a scrubbed environment, its own process group (killed whole on timeout),
dies with its parent, and runs under the isolation chosen by :mod:`harness.sandbox.choice` with resource
limits; its stdout and stderr are capped (``LOG_CAP``).
"""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from ..chunks import ENV as CHUNK_ENV
from ..errors import UsageError
from ..paths import cache_dir
from ..plugins import CHILD_PLUGIN_ENV
from ..sandbox.child import failure_reason, readable_copy, run_isolated
from ..sandbox.choice import Isolation, choose_isolation
from ..sandbox.limits import Limits, default_limits
from ..sandbox.view import INSIDE, Bind, View, cache_binds, child_view
from ..submission import content_hash, read_toml, submission_file

#: environment variables a child keeps; everything else (tokens, organiser paths) is dropped
CHILD_ENV_KEEP = ("PATH", "LANG", "LC_ALL", "TZ", "HARNESS_DEVICE", "CUDA_VISIBLE_DEVICES", "OMP_NUM_THREADS",
                  "MKL_NUM_THREADS", "TF_CPP_MIN_LOG_LEVEL", "VIRTUAL_ENV", CHUNK_ENV, *CHILD_PLUGIN_ENV)


@dataclass(frozen=True)
class Entry:
    """One submission to score, as the organiser sees it before running any of its code."""

    root: Path
    name: str
    team: str
    framework: str
    content_hash: str
    artifact: Path | None = None
    #: "defense" (trained and scored) or "attack" (run by the attack track), from submission.toml's ``track``
    track: str = "defense"


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
    #: images of each scored submission's report (0: no report; :mod:`harness.scoring.report`)
    explain: int = 0


def read_entry(path: str | Path, artifact: Path | None = None) -> Entry:
    """Name, team, framework and track straight from submission.toml (no plugin code imported here)."""
    toml_path = submission_file(path)
    data = read_toml(toml_path)
    text = {k: data.get(k) if isinstance(data.get(k), str) else "" for k in ("name", "team", "framework")}
    return Entry(root=toml_path.parent.resolve(), name=text["name"] or toml_path.parent.name,
                 team=text["team"] or "?", framework=text["framework"] or "?",
                 content_hash=content_hash(toml_path.parent), artifact=artifact,
                 track="attack" if data.get("track") == "attack" else "defense")


def child_env(threads: int | None) -> dict[str, str]:
    """The child's environment: the kept variables of this one, unbuffered output, a headless matplotlib."""
    env = {k: os.environ[k] for k in CHILD_ENV_KEEP if k in os.environ}
    env["PYTHONUNBUFFERED"] = "1"
    env["MPLBACKEND"] = "Agg"
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    return env


def harness_view(inputs: Mapping[str, Path], scratch: Path, cache: Path | None,
                 withhold: tuple[str, str] | None) -> View:
    """What a harness child sees: its inputs (scratch copies, read-only) under /sandbox by name, its work folder
    and /tmp (writable), and with ``cache`` the dataset cache without the held-out split (read-only)."""
    binds = [Bind(str(scratch / name), str(INSIDE / name)) for name in inputs]
    aliases = {}
    if cache is not None and cache.is_dir():
        more, aliases = cache_binds(cache.resolve(), withhold, scratch / "view", INSIDE / "cache")
        binds += more
    return child_view(scratch, binds, aliases=aliases)


def run_harness_child(module: str, arguments: Sequence[str], inputs: Mapping[str, Path], scratch: Path,
                      timeout: float, threads: int | None, isolation: Isolation | None = None,
                      limits: Limits | None = None, *, cache: Path | None = None,
                      withhold: tuple[str, str] | None = None) -> tuple[str, str]:
    """Run ``python -m module ARGUMENTS --NAME PATH... --out WORK [--threads N]`` isolated and limited in a fresh
    ``scratch``: each of ``inputs`` ({name: organiser path}) is copied into it (readable by the child's uid,
    the child's to break) and shown at /sandbox/NAME (``--images`` for images.npy-like names: the flag is the
    name up to its first dot); ("ok", "") or ("failed", reason), the reason from the child's last stderr line.

    The child keeps only :data:`CHILD_ENV_KEEP` of this environment. ``cache`` (with ``withhold``, a
    (dataset, split) left out): the dataset cache it may read, as ``HARNESS_CACHE_DIR``.
    """
    isolation = isolation or choose_isolation("auto")
    limits = limits or default_limits(timeout, threads)
    scratch = scratch.resolve()  # the child runs in its own directory
    if scratch.exists():
        shutil.rmtree(scratch)
    scratch.mkdir(parents=True)
    for name, source in inputs.items():
        readable_copy(Path(source).resolve(), scratch / name)
    view = harness_view(inputs, scratch, cache, withhold)
    inside = lambda target: view.path(target, isolation.mapped)  # noqa: E731 - a path as the child names it
    env = child_env(threads)  # no HARNESS_DATA_DIR: raw downloads (e.g. Tiny ImageNet's val labels) never shown
    env.update(view.home_env(isolation.mapped))
    if view.aliases:
        env["HARNESS_CACHE_DIR"] = inside(INSIDE / "cache")
    command = [sys.executable, "-m", module, *arguments]
    for name in inputs:
        command += [f"--{name.split('.')[0]}", inside(INSIDE / name)]
    command += ["--out", inside(INSIDE / "work")]
    if threads:
        command += ["--threads", str(threads)]
    code = run_isolated(command, view, isolation, limits, env, scratch, timeout)
    if code is None:
        return "failed", f"timeout: no result after {timeout:g} s (process group killed)"
    if code != 0:
        return "failed", failure_reason(code, scratch / "stderr.log")
    return "ok", ""


def run_child(entry: Entry, profile: str | None, images: Path, scratch: Path, timeout: float,
              threads: int | None, isolation: Isolation | None = None, limits: Limits | None = None,
              withhold: tuple[str, str] | None = None, cache: Path | None = None, *,
              export: bool = False, explain: int = 0) -> tuple[str, str]:
    """Run the worker for ``entry`` (isolated, limited); ("ok", "") or ("failed", reason).

    ``export``: the worker also exports the model code-free into ``scratch/work/export`` for the adaptive
    phase (:mod:`harness.scoring.adaptive`); without it the worker is told ``--no-export``. ``explain`` N > 0:
    it also writes its report of N validation images into ``scratch/work/report`` (``--explain N``).

    It sees its copies of the submission, the images (and the given artifact) and the dataset cache.
    ``withhold`` (dataset, split): that split of the dataset cache is not in the child's view (the held-out
    images). ``cache``: the dataset cache the child uses (default ``HARNESS_CACHE_DIR`` or the user's cache).
    """
    inputs = {"submission": entry.root, "images.npy": Path(images)}
    if entry.artifact is not None:
        inputs["artifact"] = entry.artifact
    arguments = (["--profile", profile] if profile else []) + ([] if export else ["--no-export"])
    arguments += ["--explain", str(int(explain))] if explain > 0 else []
    return run_harness_child("harness.scoring.worker", arguments, inputs, scratch,
                             timeout, threads, isolation, limits, withhold=withhold,
                             cache=Path(cache) if cache is not None else cache_dir())


def open_predictions(path: Path, count: int, num_classes: int) -> np.ndarray:
    """The child's logits as a read-only memory map, checked a chunk at a time: readable, (count, num_classes),
    numbers, finite. UsageError says what is wrong."""
    from ..chunks import spans

    if not path.is_file():
        raise UsageError("no predictions written")
    try:
        logits = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise UsageError(f"unreadable predictions: {exc}") from None
    if not isinstance(logits, np.ndarray):
        raise UsageError("unreadable predictions: not a .npy array")
    if logits.ndim != 2 or logits.shape[0] != count or logits.shape[1] != num_classes:
        raise UsageError(f"wrong predictions shape {tuple(logits.shape)}: expected ({count}, {num_classes}), "
                         "one row of class scores per hidden image")
    if not np.issubdtype(logits.dtype, np.number):
        raise UsageError(f"predictions must be numbers, got {logits.dtype}")
    bad = sum(int(np.count_nonzero(~np.isfinite(logits[part]))) for part in spans(count))
    if bad:
        raise UsageError(f"predictions contain {bad} NaN or infinite values")
    return logits


def check_predictions(path: Path, count: int, num_classes: int) -> np.ndarray:
    """The child's logits, checked as by :func:`open_predictions`, as float32 in memory."""
    return np.array(open_predictions(path, count, num_classes), dtype=np.float32)
