"""GPU inside the sandbox: run on a machine with an NVIDIA GPU (``python benchmarks/gpu_sandbox_check.py``).

Starts a child under every isolation that runs there (ns, landlock, bwrap) with the view a scoring
child gets, and in it: lists /dev, checks ``torch.cuda.is_available()``, runs a matrix product on
the GPU and compares it with the CPU's. Prints one line per isolation and exits 1 if any failed.
Not part of the test suite (CI machines have no GPU); tests/sandbox/test_isolation.py checks the
device binds with stand-in nodes.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

CHILD = """
import json, os, torch
report = {"dev": sorted(os.listdir("/dev")) if os.path.isdir("/sandbox") else None,
          "cuda": torch.cuda.is_available()}
if report["cuda"]:
    a = torch.randn(256, 256, generator=torch.Generator().manual_seed(0))
    report["device"] = torch.cuda.get_device_name(0)
    report["max_abs_diff"] = float(((a.cuda() @ a.cuda()).cpu() - a @ a).abs().max())
print(json.dumps(report))
"""


def main() -> int:
    from harness.sandbox.child import run_isolated
    from harness.sandbox.choice import PROBLEMS, choose_isolation
    from harness.sandbox.limits import default_limits, gpu_visible
    from harness.sandbox.view import child_view

    if not gpu_visible():
        print("no NVIDIA device visible here: nothing to check")
        return 1
    failed = 0
    for kind in ("ns", "landlock", "bwrap"):
        if PROBLEMS[kind]():
            print(f"{kind}: not available ({PROBLEMS[kind]()})")
            continue
        isolation = choose_isolation(kind)
        with tempfile.TemporaryDirectory(prefix="gpu-check-") as folder:
            scratch = Path(folder)
            view = child_view(scratch)
            env = {"PATH": "/usr/bin:/bin", **view.home_env(isolation.mapped)}
            limits = default_limits(600, None)
            code = run_isolated([sys.executable, "-c", CHILD], view, isolation, limits, env, scratch, 600)
            out = (scratch / "stdout.log").read_text().strip().splitlines()
            report = json.loads(out[-1]) if code == 0 and out else None
            ok = bool(report and report["cuda"] and report["max_abs_diff"] < 1e-2)
            failed += not ok
            print(f"{kind}: {'ok' if ok else 'FAILED'} {report or (scratch / 'stderr.log').read_text()[-2000:]}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
