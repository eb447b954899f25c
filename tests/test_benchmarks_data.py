"""The data and corruption benchmarks run (``--quick``), check themselves and write their result files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow  # two benchmark processes, about 20 s on 2 cores

pytest.importorskip("torchvision")


@pytest.mark.parametrize("module, result", [
    ("bench_data", "data_epoch_vs_imagefolder"),
    ("bench_corruptions", "corruptions_vs_imagecorruptions"),
])
def test_quick_benchmark_writes_a_checked_ratio(module, result, tmp_path):
    if module == "bench_corruptions":
        pytest.importorskip("imagecorruptions")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "plugins")])}
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / f"{module}.py"), "--quick",
                           "--results", str(tmp_path)], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    data = json.loads((tmp_path / f"{result}.json").read_text())
    assert data["correct"] is True, data["correctness"]
    assert isinstance(data["ratio"], float) and data["ratio"] > 0
    assert len(data["ours_seconds"]) == len(data["theirs_seconds"]) == 2
    assert "| ratio (ours/theirs) |" in done.stdout
