"""``harness score`` with instant fake children and numbered kill points, for test_crash.py.

Usage: python crash_driver.py KILL_AT SCORE-ARGS...  The child run is replaced by one that writes
logits seeded by the submission's name (a submission named ``broken`` fails), so only the organiser's
own steps run. Each step (child run, store insert, leaderboard write, the rename inside the atomic
write) passes a numbered point before and after; at point KILL_AT (0: never) the process SIGKILLs
itself. At the end it prints ``points N``.
"""

from __future__ import annotations

import functools
import json
import os
import signal
import sys
import zlib

import numpy as np

from harness import atomic
from harness.scoring import leaderboard, scorer, split, store

KILL_AT = int(sys.argv[1])
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


def fake_child(entry, profile, images, scratch, timeout, threads, *rest):
    if entry.name == "broken":
        return "failed", "crashed: broken on purpose"
    count = len(np.load(images, mmap_mode="r"))
    logits = np.random.default_rng(zlib.crc32(entry.name.encode())).normal(size=(count, 10)).astype(np.float32)
    (scratch / "work").mkdir(parents=True, exist_ok=True)
    np.save(scratch / "work" / "predictions.npy", logits)
    (scratch / "work" / "result.json").write_text(json.dumps({"train_seconds": 0.0, "predict_seconds": 0.0}))
    return "ok", ""


scorer.run_child = around(fake_child)
store.ResultStore.add = around(store.ResultStore.add)
scorer.write_leaderboard = leaderboard.write_leaderboard = around(leaderboard.write_leaderboard)
atomic.os.replace = around(os.replace)
split.open_split = around(split.open_split)
scorer.open_split = split.open_split

if __name__ == "__main__":
    from harness.cli.main import app

    try:
        code = app(sys.argv[2:], standalone_mode=False)
    finally:
        print(f"points {passed}")
    sys.exit(code or 0)
