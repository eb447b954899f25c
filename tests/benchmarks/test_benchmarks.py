"""The side-by-side benchmarks run (``--quick``), check themselves and write a result with a ratio."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BENCHMARKS = ROOT / "benchmarks"

pytestmark = pytest.mark.slow  # one benchmark process each, 5-60 s on 2 cores

#: module -> the comparisons (result files) it writes, what must be installed for it
#: (each --quick run times one repeat per side: benchmarks/common.py QUICK_REPEATS)
MODULES = {
    "pgd_torch": (["pgd_torch_vs_torchattacks", "pgd_torch_vs_art"], ["torch", "torchattacks", "art"]),
    "pgd_tf": (["pgd_tf_vs_art"], ["tensorflow", "tf_keras", "art"]),
    "training": (["training_hardening_vs_torch", "training_trades_vs_torch", "training_nsl_vs_keras"],
                 ["torch", "torchattacks", "tensorflow", "tf_keras", "neural_structured_learning"]),
    "data": (["data_epoch_vs_imagefolder"], ["torch", "torchvision"]),
    "data_path": (["data_path_vs_training_step"], ["torch"]),
    "corruptions": (["corruptions_vs_imagecorruptions"], ["imagecorruptions"]),
    "scoring": (["scoring_predict_vs_bare_torch"], ["torch"]),
    "adaptive": (["adaptive_phase_vs_evaluate_robust"], ["torch"]),
    "autoattack": (["autoattack_ensemble_vs_torchattacks"], ["torch", "torchattacks"]),
    "startup": (["startup_help_vs_python", "startup_help_vs_import_torch"], ["torch"]),
    "ray": (["ray_executor_vs_local"], ["ray", "torch"]),
    "sandbox": (["sandbox_ns_vs_none_python"], []),
    "site": (["site_build_vs_csv_leaderboard", "site_charts_svg_vs_matplotlib"], ["jinja2"]),
    "precision": (["precision_torch_small_cnn_standard_bf16", "precision_torch_small_cnn_model_hardening_bf16",
                   "precision_tf_nsl_cnn_standard_bf16"], ["torch", "tensorflow", "tf_keras"]),
}
#: quick runs of 11-52 s each on 2 cores, left out of `make test` to keep the whole suite under 15 minutes there;
#: ``HARNESS_QUICK_BENCHMARKS=all make test`` (or ``make bench BENCH_ARGS=--quick``) runs them
HEAVY = {"pgd_torch", "pgd_tf", "training", "data", "data_path", "scoring", "adaptive", "ray", "precision",
         "autoattack"}
ALL_BENCHMARKS = os.environ.get("HARNESS_QUICK_BENCHMARKS") == "all"


def run_quick(module: str, results: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), str(ROOT / "plugins"), env.get("PYTHONPATH")]))
    env["COLUMNS"] = "120"
    env["HARNESS_DEVICE"] = "cpu"  # the quick run checks the plumbing; timings on a GPU come from the full run
    command = [sys.executable, str(BENCHMARKS / f"bench_{module}.py"), "--quick", "--results", str(results)]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("module", list(MODULES))
def test_quick_benchmark_checks_itself_and_reports_a_ratio(module, tmp_path):
    names, needs = MODULES[module]
    if module in HEAVY and not ALL_BENCHMARKS:
        pytest.skip(f"bench_{module} --quick is left to HARNESS_QUICK_BENCHMARKS=all (suite time)")
    missing = [package for package in needs if importlib.util.find_spec(package) is None]  # found, not imported
    if missing:
        pytest.skip(f"not installed: {', '.join(missing)}")
    if module == "sandbox":
        from harness.sandbox.choice import ns_problem

        if ns_problem():
            pytest.skip(f"the namespace sandbox cannot run here: {ns_problem()}")
    done = run_quick(module, tmp_path)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    for name in names:
        result = json.loads((tmp_path / f"{name}.json").read_text())
        assert result["correct"] is True, result["correctness"]
        assert isinstance(result["ratio"], float) and result["ratio"] > 0, result
        assert len(result["ours_seconds"]) == len(result["theirs_seconds"]) == 1
        assert result["title"] in done.stdout  # the summary table was printed
    if module == "startup":  # the proof that --help loads no framework
        assert result["correctness"]["torch_imported"] is False
        assert result["correctness"]["tensorflow_imported"] is False


def test_quick_memory_benchmark_measures_every_task_and_size(tmp_path):
    """bench_memory (ours only: no ratio ours/theirs) measures every task at both quick sizes, the scoring child
    apart, and writes its table; left to HARNESS_QUICK_BENCHMARKS=all (about 5 minutes on 2 cores)."""
    if not ALL_BENCHMARKS:
        pytest.skip("bench_memory --quick is left to HARNESS_QUICK_BENCHMARKS=all (suite time)")
    if importlib.util.find_spec("torch") is None:
        pytest.skip("not installed: torch")
    env = dict(os.environ, COLUMNS="120", HARNESS_DEVICE="cpu")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), str(ROOT / "plugins"), env.get("PYTHONPATH")]))
    command = [sys.executable, str(BENCHMARKS / "bench_memory.py"), "--quick", "--results", str(tmp_path),
               "--data", str(tmp_path / "data")]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    result = json.loads((tmp_path / "memory_peak_rss.json").read_text())
    assert result["correct"] is True and result["theirs"].startswith("none")
    assert {(r["task"], r["size"]) for r in result["rows"]} == {
        (t, s) for t in ("split", "corruptions", "score", "evaluate") for s in result["sizes"]}
    assert all(r["organiser_anon_mib"] > 0 for r in result["rows"])
    assert all(r["child_anon_mib"] > 0 for r in result["rows"] if r["task"] == "score")  # the sandboxed child
    assert isinstance(result["ratios"]["score"]["child"], float) and result["table"] in done.stdout
