"""benchmarks/gpu_check.py without a GPU: one line and exit 0; a failing or slow part is recorded, not fatal."""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "gpu_check.py"


def load_gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_without_a_gpu_it_says_so_in_one_line_and_writes_nothing(tmp_path):
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "",  # hides any GPU of the machine running the tests
           "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "plugins")])}
    done = subprocess.run([sys.executable, str(SCRIPT), "--out", str(tmp_path / "gpu.json")], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines() == [
        "gpu_check: no NVIDIA device visible: nothing to check (run it on a machine with a CUDA GPU)"]
    assert done.stderr == "" and not (tmp_path / "gpu.json").exists()


def test_a_part_that_fails_or_runs_past_its_cap_is_recorded_as_failed():
    gpu_check = load_gpu_check()
    args = argparse.Namespace(device="cpu", tiny=True)
    failed = gpu_check.run_part("no-such-part", args, cap=60)
    assert failed["ok"] is False and "KeyError" in failed["error"] and failed["cap_seconds"] == 60
    slow = gpu_check.run_part("cuda_tests", args, cap=0.2)  # killed (with its pytest) long before it ends
    assert slow == {"ok": False, "error": "ran past its cap of 0 s", "seconds": slow["seconds"], "cap_seconds": 0}
