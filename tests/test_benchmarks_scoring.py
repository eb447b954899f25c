"""benchmarks/bench_scoring.py and bench_startup.py run end to end (--quick) and write checked results."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("module, names", [
    pytest.param("bench_scoring", ["scoring_predict_vs_bare_torch"], id="scoring"),
    pytest.param("bench_startup", ["startup_help_vs_python", "startup_help_vs_import_torch"], id="startup"),
])
def test_quick_run_writes_checked_results(tmp_path, module, names):
    if module == "bench_scoring":
        pytest.importorskip("torch")
    command = [sys.executable, str(BENCHMARKS / f"{module}.py"), "--quick", "--results", str(tmp_path)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env={**os.environ, "COLUMNS": "120"})
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    for name in names:
        result = json.loads((tmp_path / f"{name}.json").read_text())
        assert result["correct"] is True, result["correctness"]
        assert isinstance(result["ratio"], float) and result["ratio"] > 0
        assert len(result["ours_seconds"]) == len(result["theirs_seconds"]) == 2
        assert name in done.stdout  # the printed table names the result file
    if module == "bench_startup":
        assert result["correctness"]["torch_imported"] is False
        assert result["correctness"]["tensorflow_imported"] is False
