"""Child start-up under the built-in sandboxes vs the plain child process.

What ``harness score`` pays per submission for isolation: the wall time from starting a
child to its end, for a child that does nothing but start Python (``python -c pass``: the
sandbox's own cost) and one that imports torch (what every scoring child does first).

- ours: ``--sandbox ns`` (namespaces, a tmpfs root of binds, pivot_root, the PID-namespace
  init), through ``harness.sandbox.child.run_isolated`` with the view of a scoring child
  (system folders, code, a writable work folder and /tmp); with ``--sandbox landlock`` where it
  runs, and bubblewrap (the tool organisers would otherwise install) where it is installed;
- theirs: ``--sandbox none``, the same call without isolation (the limits are set either way).

Target (issue 15): ns start-up <= 1.2 x the plain child's + 0.2 s; the ratio that meets it
depends on the plain child's time, so ``target_ratio`` is computed from its median.

Correctness first: every kind ends with exit 0, and a planted organiser file and a TCP
listener of this process are reachable from the plain child and from none of the sandboxed ones.
"""

from __future__ import annotations

import itertools
import socket
import statistics
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from common import QUICK_REPEATS, Comparison, alternate, bench_main  # noqa: E402

RUNS = itertools.count()  # one fresh scratch folder per child

PROBE = ("import os, socket, sys\nreached = []\ntry:\n    open(sys.argv[1], 'rb').read(); reached.append('file')\n"
         "except OSError:\n    pass\ntry:\n    socket.create_connection(('127.0.0.1', int(sys.argv[2])), timeout=2)\n"
         "    reached.append('tcp')\nexcept OSError:\n    pass\nprint(' '.join(reached) or 'nothing')\n")


def child_runner(kind: str, scratch: Path):
    """A function running one child of ``kind`` with ``argv`` in a fresh scratch folder: (exit code, stdout)."""
    from harness.sandbox.child import run_isolated
    from harness.sandbox.choice import choose_isolation
    from harness.sandbox.limits import default_limits
    from harness.sandbox.view import child_view

    isolation = choose_isolation(kind)
    limits = default_limits(120, 1)

    def run(argv: list[str]) -> tuple[int, str]:
        folder = scratch / f"{kind}-{next(RUNS)}"
        view = child_view(folder)
        env = {"PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1", **view.home_env(isolation.mapped)}
        code = run_isolated(argv, view, isolation, limits, env, folder, 120)
        return code, (folder / "stdout.log").read_text().strip()

    return run


def run(quick: bool = False, repeats: int = 9) -> list[Comparison]:
    from harness.sandbox.choice import PROBLEMS

    repeats = QUICK_REPEATS if quick else repeats
    kinds = [kind for kind in ("ns", "landlock", "bwrap") if PROBLEMS[kind]() is None]
    comparisons = []
    with tempfile.TemporaryDirectory(prefix="bench-sandbox-") as tmp:
        scratch = Path(tmp)
        secret = scratch / "organiser-labels.npy"
        secret.write_bytes(b"labels")
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        probe = [sys.executable, "-c", PROBE, str(secret), str(listener.getsockname()[1])]
        plain = child_runner("none", scratch)
        reached = {"none": plain(probe)}
        for kind in kinds:
            reached[kind] = child_runner(kind, scratch)(probe)
        listener.close()
        ok = reached["none"] == (0, "file tcp") and all(reached[k] == (0, "nothing") for k in kinds)
        correctness = {"check": "a probe child reads a planted organiser file and connects to a listener of the "
                                "benchmark: the plain child reaches both, each sandboxed one neither",
                       "reached": {k: v[1] for k, v in reached.items()},
                       "exit_codes": {k: v[0] for k, v in reached.items()}}
        for kind in kinds:
            ours = child_runner(kind, scratch)
            for what, argv in (("python -c pass", [sys.executable, "-c", "pass"]),
                               ("python -c 'import torch'", [sys.executable, "-c", "import torch"])):
                if quick and "torch" in what:  # --quick checks the plumbing: the bare interpreter is enough
                    continue
                name = f"sandbox_{kind}_vs_none_{'torch' if 'torch' in what else 'python'}"
                comparison = Comparison(
                    name=name, title=f"Child start-up, {what}: --sandbox {kind} vs --sandbox none",
                    ours=f"run_isolated under {kind}", theirs="run_isolated, plain child (none)",
                    target="ours <= 1.2 x theirs + 0.2 s" if kind == "ns" else "reported",
                    correctness=correctness, correct=ok)
                comparisons.append(comparison)
                if not ok:
                    continue
                comparison.ours_seconds, comparison.theirs_seconds = alternate(
                    lambda: ours(argv), lambda: plain(argv), repeats)
                theirs_median = statistics.median(comparison.theirs_seconds)
                extra = statistics.median(comparison.ours_seconds) - theirs_median
                comparison.details = {"repeats": repeats, "extra_seconds_median": round(extra, 4)}
                if kind == "ns":
                    comparison.target_ratio = 1.2 + 0.2 / theirs_median
    return comparisons


if __name__ == "__main__":
    sys.exit(bench_main(run))
