"""``harness contest run --once`` with instant fake children and one armed kill point, for test_kill.py.

Usage: python contest_driver.py JOBS. JOBS is a JSON list of [point, n, contest.toml, inbox, log folder]: each
job runs the command in a process forked from this one (the harness imported once), with a SIGKILL at the
``n``-th pass of ``point`` (none when ``point`` is null):

- ``take``: before the n-th inbox entry is snapshotted;
- ``recorded``: after the n-th ledger entry is recorded (before anything of it is scored);
- ``child``: inside the n-th scoring child (its predictions written, not returned);
- ``stored``: after the n-th result is stored (before the leaderboard is written).

Prints one JSON line per job: {"point", "n", "code" (exit code, or minus the signal)}.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import zlib
from pathlib import Path

import numpy as np

from harness.contest import ledger, runner
from harness.scoring import scorer, store

POINT, N = None, 0
passed: dict[str, int] = {}


def point(name: str) -> None:
    passed[name] = passed.get(name, 0) + 1
    if name == POINT and passed[name] == N:
        os.kill(os.getpid(), signal.SIGKILL)


def fake_child(entry, profile, images, scratch, *rest, **options):
    count = len(np.load(images, mmap_mode="r"))
    logits = np.random.default_rng(zlib.crc32(entry.name.encode())).normal(size=(count, 10)).astype(np.float32)
    (scratch / "work").mkdir(parents=True, exist_ok=True)
    np.save(scratch / "work" / "predictions.npy", logits)
    (scratch / "work" / "result.json").write_text(json.dumps({"train_seconds": 0.0, "predict_seconds": 0.0}))
    point("child")
    return "ok", ""


def before(name: str, function):
    def wrapper(*args, **kwargs):
        point(name)
        return function(*args, **kwargs)
    return wrapper


def after(name: str, function):
    def wrapper(*args, **kwargs):
        result = function(*args, **kwargs)
        point(name)
        return result
    return wrapper


scorer.run_both_phases = fake_child
runner.take = before("take", runner.take)
ledger.Ledger.add = after("recorded", ledger.Ledger.add)
store.ResultStore.add = after("stored", store.ResultStore.add)


def run_job(contest: str, inbox: str, log_folder: Path) -> None:
    """In the forked process: run the contest once with the point armed, then exit (or be killed)."""
    from harness.cli.main import app

    log_folder.mkdir(parents=True, exist_ok=True)
    log = os.open(log_folder / "output.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(log, 1)
    os.dup2(log, 2)
    code = 1
    try:
        code = app(["contest", "run", contest, "--inbox", inbox, "--once"], standalone_mode=False) or 0
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


if __name__ == "__main__":
    import harness.cli.main  # noqa: F401 - every import done once, before the forks
    from harness.registry import registry
    from harness.specs import KINDS
    from harness.training import TrainingConfig  # noqa: F401 - what scoring's TOML validation uses, loaded once

    for kind in KINDS:
        registry(kind)
    for kill_point, n, contest, inbox, log_folder in json.loads(sys.argv[1]):
        POINT, N = kill_point, n
        pid = os.fork()
        if pid == 0:
            run_job(contest, inbox, Path(log_folder))
        _, status = os.waitpid(pid, 0)
        code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
        print(json.dumps({"point": kill_point, "n": n, "code": code}), flush=True)
