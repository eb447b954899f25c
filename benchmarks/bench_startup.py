"""Start-up: wall time of ``harness --help``, and proof that it imports neither torch nor tensorflow.

Ours: the installed console script (``harness`` next to this Python; ``python -m
harness.cli.main`` when there is none), run with ``--help`` as a fresh process,
output discarded. Two comparisons, each timed alternately in fresh processes:

- vs ``python -c pass``: the bare interpreter, the floor of any Python CLI. The
  ratio is reported only (no target): it is the price of typer, rich and the
  harness's own modules. The absolute bound users feel, under 1 s, is checked in
  ``details``.
- vs ``python -c "import torch"``: the least a CLI that imported its framework
  eagerly would cost on every call (ART-, torchattacks- or script-based tools do).
  Target: ratio <= 0.5, i.e. the lazy imports keep ``--help`` at under half of that.

``import tensorflow`` is timed for context (``details``; skipped with ``--quick``).

Correctness first: ``--help`` exits 0 and lists the commands, and two proofs that
neither framework is loaded: ``python -X importtime`` of the same command (no
``torch``, ``tensorflow``, ``keras`` or ``tf_keras`` module among its imports), and
``sys.modules`` after calling the CLI's ``main()`` with ``--help`` in-process. The
slowest imports from ``-X importtime`` are recorded in ``details`` (the profile).
"""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from common import QUICK_REPEATS, Comparison, alternate, bench_main  # noqa: E402

FRAMEWORKS = ("torch", "torchvision", "tensorflow", "keras", "tf_keras", "jax")
COMMANDS = ("train", "evaluate", "score", "split", "leaderboard", "doctor")
IN_PROCESS = """\
import json, sys
sys.argv = ["harness", "--help"]
from harness.cli.main import main
try:
    main()
except SystemExit as exc:
    code = exc.code
print(json.dumps({"exit": code, "loaded": sorted({m.split(".")[0] for m in sys.modules} & set(%r))}))
"""


def help_command() -> tuple[list[str], str]:
    """The command line of ``harness --help`` and what it is."""
    script = Path(sys.executable).parent / "harness"
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script), "--help"], f"console script {script} --help"
    return [sys.executable, "-m", "harness.cli.main", "--help"], "python -m harness.cli.main --help"


def _run(command: list[str], **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(command, capture_output=True, text=True, env={**os.environ, "COLUMNS": "100"}, **kwargs)


def importtime(command: list[str]) -> tuple[set[str], list[list], float]:
    """Top-level packages ``command`` (a console script or python argv) imports, its slowest imports
    ([module, nesting depth, cumulative s], biggest first) and the import time in all (s)."""
    argv = command if command[0] == sys.executable else [sys.executable, *command]
    done = _run([argv[0], "-X", "importtime", *argv[1:]], check=True)
    packages, rows, total = set(), [], 0
    for line in done.stderr.splitlines():
        match = re.match(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)", line)
        if match:
            packages.add(match.group(4).split(".")[0])
            total += int(match.group(1))
            rows.append([match.group(4), (len(match.group(3)) - 1) // 2, round(int(match.group(2)) / 1e6, 4)])
    return packages, sorted(rows, key=lambda row: -row[2])[:12], total / 1e6


def check(command: list[str]) -> tuple[bool, dict]:
    """--help works, and neither framework is imported (two ways)."""
    done = _run(command)
    listed = [name for name in COMMANDS if re.search(rf"\b{name}\b", done.stdout)]
    packages, slowest, total = importtime(command)
    imported = sorted(packages & set(FRAMEWORKS))
    last_line = _run([sys.executable, "-c", IN_PROCESS % (FRAMEWORKS,)], check=True).stdout.splitlines()[-1]
    in_process = json.loads(last_line)  # after the help text
    ok = done.returncode == 0 and len(listed) == len(COMMANDS) and not imported and not in_process["loaded"] \
        and in_process["exit"] in (0, None)
    return ok, {
        "check": "--help exits 0 and lists the commands; -X importtime shows none of the frameworks imported; "
                 "sys.modules after main(['--help']) in-process holds none of them",
        "frameworks": list(FRAMEWORKS), "exit_code": done.returncode, "commands_listed": listed,
        "importtime_packages": len(packages), "importtime_frameworks_imported": imported,
        "in_process_frameworks_loaded": in_process["loaded"], "in_process_exit": in_process["exit"],
        "torch_imported": "torch" in imported or "torch" in in_process["loaded"],
        "tensorflow_imported": "tensorflow" in imported or "tensorflow" in in_process["loaded"],
    }, {"import_seconds_total": round(total, 4), "slowest_imports": slowest,
        "slowest_imports_columns": ["module", "nesting depth", "cumulative s (-X importtime)"]}


def run(quick: bool = False, repeats: int = 7) -> list[Comparison]:
    repeats = QUICK_REPEATS if quick else repeats
    command, what = help_command()
    ok, correctness, profile = check(command)

    def process(argv):
        return lambda: _run(argv, check=True)

    ours = process(command)
    bare = [sys.executable, "-c", "pass"]
    torch_import = [sys.executable, "-c", "import torch"]
    vs_python = Comparison(
        name="startup_help_vs_python", title="Start-up: `harness --help` vs the bare interpreter",
        ours="harness --help",
        theirs="python -c pass", target="reported only (absolute: < 1 s)", correctness=correctness, correct=ok)
    vs_torch = Comparison(
        name="startup_help_vs_import_torch", title="Start-up: `harness --help` vs `import torch` alone",
        ours="harness --help", theirs='python -c "import torch"',
        target="ratio <= 0.5", target_ratio=0.5, correctness=correctness, correct=ok)
    if not ok:
        return [vs_python, vs_torch]
    vs_python.ours_seconds, vs_python.theirs_seconds = alternate(ours, process(bare), repeats)
    vs_torch.ours_seconds, vs_torch.theirs_seconds = alternate(ours, process(torch_import), repeats)
    help_median = statistics.median(vs_python.ours_seconds + vs_torch.ours_seconds)
    details = {"command": what, "repeats": repeats, "help_median_s": round(help_median, 4),
               "under_1s": help_median < 1.0, **profile}
    if not quick:
        tf_import = [sys.executable, "-c", "import tensorflow"]
        _, tf_times = alternate(lambda: None, process(tf_import), max(2, repeats // 2), warmup=1)
        details["import_tensorflow_median_s"] = round(statistics.median(tf_times), 4)
    vs_python.details = vs_torch.details = details
    slowest = ", ".join(f"{name} {seconds:.3f} s" for name, _, seconds in profile["slowest_imports"][:4])
    vs_python.note = (f"what limits it: {profile['import_seconds_total']:.3f} s of the {help_median:.3f} s is "
                      f"imports (-X importtime); the largest, cumulative: {slowest}")
    return [vs_python, vs_torch]


if __name__ == "__main__":
    sys.exit(bench_main(run))
