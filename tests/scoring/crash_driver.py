"""``harness score`` with instant fake children and numbered kill points, for test_crash.py.

Usage: python crash_driver.py JOBS SCORE-ARGS...  JOBS is a JSON list of [kill_at, folder]; ``{out}`` in
SCORE-ARGS stands for a job's folder. The harness is imported once; each job then runs in a forked process
(one interpreter start for all of them), one after the other. The child run is replaced by one that writes
logits seeded by the submission's name (a submission named ``broken`` fails), so only the organiser's own
steps run. Each step (child run, store insert, leaderboard write, the rename inside the atomic write) passes
a numbered point before and after; at point ``kill_at`` (0: never) the job SIGKILLs itself. Prints one JSON
line per job: {"kill_at", "folder", "code" (exit code, or minus the signal), "points"}; a job's output goes to
``output.log`` in its folder.
"""

from __future__ import annotations

import functools
import json
import os
import signal
import sys
import zlib
from pathlib import Path

import numpy as np

from harness import atomic
from harness.scoring import leaderboard, scorer, split, store

KILL_AT = 0
passed = 0


def point() -> None:
    global passed
    passed += 1
    if passed == KILL_AT:
        os.kill(os.getpid(), signal.SIGKILL)


def around(function):
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        point()
        result = function(*args, **kwargs)
        point()
        return result
    return wrapper


def fake_child(entry, profile, images, scratch, timeout, threads, *rest, **options):
    if entry.name == "broken":
        return "failed", "crashed: broken on purpose"
    count = len(np.load(images, mmap_mode="r"))
    logits = np.random.default_rng(zlib.crc32(entry.name.encode())).normal(size=(count, 10)).astype(np.float32)
    (scratch / "work").mkdir(parents=True, exist_ok=True)
    np.save(scratch / "work" / "predictions.npy", logits)
    (scratch / "work" / "result.json").write_text(json.dumps({"train_seconds": 0.0, "predict_seconds": 0.0}))
    return "ok", ""


scorer.run_both_phases = around(fake_child)
store.ResultStore.add = around(store.ResultStore.add)
scorer.write_leaderboard = leaderboard.write_leaderboard = around(leaderboard.write_leaderboard)
atomic.os.replace = around(os.replace)
split.open_split = around(split.open_split)
scorer.open_split = split.open_split


def run_job(kill_at: int, folder: Path, args: list[str]) -> None:
    """In the forked process: score with the kill point armed, record the points passed, exit (or be killed)."""
    global KILL_AT
    from harness.cli.main import app

    KILL_AT = kill_at
    folder.mkdir(parents=True, exist_ok=True)
    log = os.open(folder / "output.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(log, 1)
    os.dup2(log, 2)
    code = 1
    try:
        code = app(args, standalone_mode=False) or 0
    finally:
        (folder / "points").write_text(str(passed))
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

    for kill_at, folder in json.loads(sys.argv[1]):
        folder = Path(folder)
        args = [arg.replace("{out}", str(folder)) for arg in sys.argv[2:]]
        pid = os.fork()
        if pid == 0:
            run_job(kill_at, folder, args)
        _, status = os.waitpid(pid, 0)
        code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
        points = (folder / "points").read_text() if (folder / "points").exists() and code >= 0 else "0"
        (folder / "points").unlink(missing_ok=True)
        print(json.dumps({"kill_at": kill_at, "folder": str(folder), "code": code, "points": int(points)}),
              flush=True)
