"""GPU check: one prepared script for a machine with a CUDA GPU, at most 8 minutes.

    python benchmarks/gpu_check.py [--out FILE.json]    # default: benchmarks/results/gpu_check.json

Five parts, each in its own process with its own time cap (a part that fails, crashes or runs
out of time is recorded as failed, with its error, and the others still run):

1. ``cuda_tests``: the tests that skip without CUDA (``CUDA_TESTS``), by pytest: pass/fail/skip counts;
2. ``train_step``: images/s of a Wide ResNet-50-2 (200 classes, 64x64x3) training step of the torch
   trainer, ``model-hardening`` and ``standard``, in fp32 and bf16 (``precision``; ``memory_format="auto"``,
   channels-last), on generated images: warm-up steps, then timed steps (each ends with its loss on the host);
3. ``pgd``: PGD-10 L-inf (eps, step of ``benchmarks/workloads.py``), ``harness_torch.attacks.pgd`` vs
   torchattacks' ``PGD`` on that model and a batch of generated images (checked first: both inside the eps
   ball and [0, 1], the same images without a random start), alternated, medians;
4. ``sandbox``: a CUDA matrix product in a child under every isolation that runs there (ns, landlock,
   bwrap), compared with the CPU's; then one submission scored by the scorer's child
   (``run_child``, ``--sandbox auto``) with the GPU visible: its result must say it ran on CUDA and its
   logits must match a bare forward pass;
5. ``data_path``: ``benchmarks/bench_data_path.py`` on the GPU (an epoch of 20,000 images with the model
   replaced by an identity vs with ``wide_resnet50_2``, then ``mobilenet_v2``): the data path's share of an epoch.

The results go to the JSON file, and a table to stdout. Exit status: 0 when every part passed,
1 when one failed; without a CUDA GPU it prints one line and exits 0 at once (nothing imported).
``--device cpu --tiny`` (not in ``--help``) runs every part on the CPU with tiny models and step
counts: how the script itself is checked on machines without a GPU.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, Callable

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
for _path in (HERE, ROOT, ROOT / "plugins"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

RESULT = HERE / "results" / "gpu_check.json"
#: the whole run's cap (seconds) and each part's (their sum stays under it)
TOTAL_CAP = 480
CAPS = {"cuda_tests": 110, "train_step": 130, "pgd": 60, "sandbox": 100, "data_path": 70}
#: the tests that skip without CUDA (files, or node ids / -k filters for files with CPU tests too)
CUDA_TESTS = ["tests/torch/test_device.py", "tests/torch/test_batches.py",
              "tests/torch/test_attacks_torch.py::test_cpu_inputs_run_on_a_cuda_model",
              "tests/augmentations/test_augmentations.py::test_torch_runs_on_the_tensor_device"]
#: (backbone, batch, warm-up steps, timed steps): the GPU run and the --tiny one
STEP_SIZES = {False: ("wide_resnet50_2", 128, 3, 10), True: ("small-cnn", 8, 1, 2)}
#: (backbone, batch) of the PGD comparison
PGD_SIZES = {False: ("wide_resnet50_2", 128), True: ("small-cnn", 16)}
#: real models of the data-path comparison (GPU run, --tiny)
DATA_PATH_MODELS = {False: ("wide_resnet50_2", "mobilenet_v2"), True: ("small-cnn",)}
SHAPE = (64, 64, 3)
CLASSES = 200


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="GPU check (CUDA tests, training steps, PGD, sandbox, data path)")
    parser.add_argument("--out", type=Path, default=RESULT, help=f"result JSON (default {RESULT.relative_to(ROOT)})")
    parser.add_argument("--device", default="cuda", help=argparse.SUPPRESS)  # cpu: the dry run on a CPU machine
    parser.add_argument("--tiny", action="store_true", help=argparse.SUPPRESS)  # tiny models and step counts
    parser.add_argument("--part", default=None, help=argparse.SUPPRESS)  # run one part (in its own process)
    parser.add_argument("--part-out", type=Path, default=None, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


# --------------------------------------------------------------------------- parts (each in its own process)


def sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def generated(count: int, seed: int = 0) -> tuple[Any, Any]:
    """uint8 N,64,64,3 random images and labels of 200 classes."""
    import numpy as np

    rng = np.random.default_rng(seed)
    return (rng.integers(0, 256, (count, *SHAPE), dtype=np.uint8),
            rng.integers(0, CLASSES, count).astype(np.int64))


def part_cuda_tests(device: str, tiny: bool) -> dict[str, Any]:
    """pytest of CUDA_TESTS in a subprocess; counts from its JUnit XML."""
    import xml.etree.ElementTree as ET

    with tempfile.TemporaryDirectory(prefix="gpu-check-tests-") as tmp:
        report = Path(tmp) / "junit.xml"
        command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:xdist", "-q",
                   f"--junitxml={report}", *CUDA_TESTS]
        done = subprocess.run(command, cwd=ROOT, env=child_env(device), capture_output=True, text=True)
        if not report.is_file():
            raise RuntimeError(f"pytest wrote no report (exit {done.returncode}): {done.stdout[-1500:]}"
                               f"{done.stderr[-1500:]}")
        suites = ET.parse(report).getroot()
        suite = suites if suites.tag == "testsuite" else suites.find("testsuite")
        counts = {key: int(suite.get(key, 0)) for key in ("tests", "failures", "errors", "skipped")}
        failed = [case.get("classname", "") + "::" + case.get("name", "") for case in suite.iter("testcase")
                  if case.find("failure") is not None or case.find("error") is not None]
    passed = counts["tests"] - counts["failures"] - counts["errors"] - counts["skipped"]
    on_cuda = device.startswith("cuda")
    return {"ok": done.returncode == 0 and (passed > 0 if on_cuda else True) and not failed,
            "passed": passed, "failed": counts["failures"] + counts["errors"], "skipped": counts["skipped"],
            "failed_tests": failed, "tests": CUDA_TESTS, "pytest_exit": done.returncode,
            "summary": f"{passed} passed, {counts['failures'] + counts['errors']} failed, {counts['skipped']} skipped"}


def precision_knobs(precision: str) -> tuple[dict[str, Any], str | None]:
    """Trainer keyword arguments for ``precision`` with channels-last, and why not when the knobs are missing."""
    from harness.training import TrainingConfig

    knobs = TrainingConfig.defaults()
    missing = [name for name in ("precision", "memory_format") if name not in knobs]
    if missing:
        return {}, f"TrainingConfig has no {' / '.join(missing)} knob in this checkout"
    return {"precision": precision, "memory_format": "auto"}, None


def timed_steps(defense: str, backbone: str, batch: int, warmup: int, steps: int, device: str,
                precision: str) -> dict[str, Any]:
    """images/s of the trainer's own step (its fit hooks: set-up, optimizer, ``_train_batches``)."""
    import numpy as np

    from harness.registry import create_backbone, create_defense

    knobs, missing = precision_knobs(precision)
    if missing and precision != "fp32":
        return {"ok": False, "error": missing}
    trainer = create_defense(defense, framework="torch", batch_size=batch, epochs=1, lr=0.01, device=device,
                             progress=False, **knobs)
    model = create_backbone(backbone, framework="torch", num_classes=CLASSES, input_shape=SHAPE)
    images, labels = generated(batch * (warmup + steps), seed=1)
    run = trainer._setup(model)
    stamps = []
    with trainer._device_scope(run):
        run.optimizer = trainer._open_optimizer(run, len(run.stages), None)
        trainer._open_stages = len(run.stages)
        run.trained = trainer._prepare(run)
        sync(device)
        stamps.append(time.perf_counter())
        losses = []
        for _, loss, _ in trainer._train_batches(run, images, labels, 0, trainer.config.lr):  # loss: on the host
            stamps.append(time.perf_counter())
            losses.append(loss)
    seconds = np.diff(stamps)[warmup:]
    return {"ok": bool(np.isfinite(losses).all()), "images_per_second": round(batch * len(seconds) / seconds.sum(), 1),
            "step_seconds_median": round(float(np.median(seconds)), 5), "timed_steps": len(seconds),
            "warmup_steps": warmup, "first_step_seconds": round(float(stamps[1] - stamps[0]), 3),
            "knobs": knobs or {"precision": "fp32 (no knob)"}, "loss_last": losses[-1]}


def part_train_step(device: str, tiny: bool) -> dict[str, Any]:
    import torch

    backbone, batch, warmup, steps = STEP_SIZES[tiny]
    out: dict[str, Any] = {"backbone": backbone, "batch": batch, "input": list(SHAPE), "classes": CLASSES}
    for defense in ("model-hardening", "standard"):
        for precision in ("fp32", "bf16"):
            key = f"{defense}/{precision}"
            try:
                out[key] = timed_steps(defense, backbone, batch, warmup, steps, device, precision)
            except Exception as exc:  # noqa: BLE001 - recorded; the other rows still run
                out[key] = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
            if device.startswith("cuda"):
                out[key]["peak_memory_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
                torch.cuda.reset_peak_memory_stats()
                torch.cuda.empty_cache()
    rows = [k for k in out if "/" in k]
    out["ok"] = all(out[k].get("ok") for k in rows)
    out["summary"] = ", ".join(f"{k} {out[k]['images_per_second']:.0f} img/s" if "images_per_second" in out[k]
                               else f"{k} failed" for k in rows)
    return out


def part_pgd(device: str, tiny: bool) -> dict[str, Any]:
    import numpy as np
    import torch
    import torchattacks

    from common import alternate
    from harness.registry import create_backbone
    from harness_torch.attacks import pgd
    from harness_torch.train import images_to_tensor
    from workloads import EPS, STEP_SIZE, STEPS, linf_checks

    backbone, batch = PGD_SIZES[tiny]
    torch.manual_seed(0)
    model = create_backbone(backbone, framework="torch", num_classes=CLASSES, input_shape=SHAPE).to(device).eval()
    images, _ = generated(batch, seed=2)
    x = images_to_tensor(images, device)
    with torch.no_grad():
        y = model(x).argmax(1)  # its own predictions: the attack has something to flip

    def ours(random_start: bool = True):
        out = pgd(model, x, y, eps=EPS, step_size=STEP_SIZE, steps=STEPS, random_start=random_start, keep_best=False)
        sync(device)
        return out

    def theirs(random_start: bool = True):
        out = torchattacks.PGD(model, eps=EPS, alpha=STEP_SIZE, steps=STEPS, random_start=random_start)(x, y)
        sync(device)
        return out

    x_np = x.cpu().numpy()
    budgets = {"ours": linf_checks(x_np, ours().cpu().numpy(), EPS),
               "torchattacks": linf_checks(x_np, theirs().cpu().numpy(), EPS)}
    a, b = ours(False).cpu().numpy(), theirs(False).cpu().numpy()
    same = float((a == b).mean())  # GPU convolutions' backward is not bit-exact: a few signs may differ
    ok = budgets["ours"]["ok"] and budgets["torchattacks"]["ok"] and same >= 0.99
    out: dict[str, Any] = {"model": backbone, "batch": batch, "eps": EPS, "step_size": STEP_SIZE, "steps": STEPS,
                           "budget": budgets, "same_pixels_without_random_start": same,
                           "max_abs_diff_without_random_start": float(np.abs(a - b).max()),
                           "torchattacks": torchattacks.__version__, "ok": bool(ok)}
    if ok:
        mine, theirs_s = alternate(ours, theirs, 1 if tiny else 5)
        out.update(ours_seconds=mine, theirs_seconds=theirs_s, ours_median=float(np.median(mine)),
                   theirs_median=float(np.median(theirs_s)), ratio=float(np.median(mine) / np.median(theirs_s)))
        out["summary"] = (f"ours {out['ours_median']:.3f} s, torchattacks {out['theirs_median']:.3f} s, "
                          f"ratio {out['ratio']:.3f}")
    return out


MATMUL_CHILD = """
import json, os, torch
report = {"dev": sorted(os.listdir("/dev")) if os.path.isdir("/sandbox") else None,
          "cuda": torch.cuda.is_available()}
if report["cuda"]:
    a = torch.randn(256, 256, generator=torch.Generator().manual_seed(0))
    report["device"] = torch.cuda.get_device_name(0)
    report["max_abs_diff"] = float(((a.cuda() @ a.cuda()).cpu() - a @ a).abs().max())
print(json.dumps(report))
"""


def sandbox_matmul(cuda: bool) -> dict[str, Any]:
    """A CUDA matrix product in a child under every isolation that runs here, vs the CPU's."""
    from harness.sandbox.child import run_isolated
    from harness.sandbox.choice import PROBLEMS, choose_isolation
    from harness.sandbox.limits import default_limits
    from harness.sandbox.view import child_view

    out: dict[str, Any] = {}
    for kind in ("ns", "landlock", "bwrap"):
        if PROBLEMS[kind]():
            out[kind] = {"ok": None, "skipped": PROBLEMS[kind]()}
            continue
        isolation = choose_isolation(kind)
        with tempfile.TemporaryDirectory(prefix="gpu-check-") as folder:
            scratch = Path(folder)
            view = child_view(scratch)
            env = {"PATH": "/usr/bin:/bin", **view.home_env(isolation.mapped)}
            code = run_isolated([sys.executable, "-c", MATMUL_CHILD], view, isolation, default_limits(60, None),
                                env, scratch, 60)
            lines = (scratch / "stdout.log").read_text().strip().splitlines()
            report = json.loads(lines[-1]) if code == 0 and lines else None
            if report is None:
                out[kind] = {"ok": False, "error": (scratch / "stderr.log").read_text()[-1500:]}
                continue
            ok = report["cuda"] == cuda and (not cuda or report["max_abs_diff"] < 1e-2)
            out[kind] = {"ok": bool(ok), **{k: v for k, v in report.items() if k != "dev"},
                         "nvidia_nodes": [d for d in report["dev"] or [] if d.startswith("nvidia")]}
    return out


def part_sandbox(device: str, tiny: bool) -> dict[str, Any]:
    import numpy as np

    import bench_scoring
    from harness.sandbox.choice import choose_isolation

    cuda = device.startswith("cuda")
    out: dict[str, Any] = {"matmul": sandbox_matmul(cuda)}
    isolation = choose_isolation("auto")  # what `harness score` uses here
    with tempfile.TemporaryDirectory(prefix="gpu-check-score-") as tmp:
        work = Path(tmp)
        entry, images_path, images, labels = bench_scoring._prepare(work, 512)
        _, result = bench_scoring._child(entry, images_path, work / "child", isolation)
        predictions = np.load(work / "child" / "work" / "predictions.npy")
        bare = bench_scoring._bare_forward(bench_scoring._bare_model(entry.artifact), images)
    close = predictions.shape == bare.shape and bool(np.allclose(predictions, bare, rtol=1e-4, atol=1e-4))
    on_device = str(result.get("device", "")).startswith("cuda" if cuda else "cpu")
    out["score"] = {"isolation": isolation.kind, "child_device": result.get("device"), "rows": result.get("rows"),
                    "predict_seconds": result.get("predict_seconds"), "logits_match_bare_forward": close,
                    "top1": round(float((predictions.argmax(1) == labels).mean()), 4),
                    "ok": bool(close and on_device and result.get("rows") == len(images))}
    out["ok"] = out["score"]["ok"] and all(v["ok"] is not False for v in out["matmul"].values())
    ran = [k for k, v in out["matmul"].items() if v["ok"] is not None]
    out["summary"] = (f"matmul under {', '.join(ran) or 'no isolation'}; scored under {isolation.kind} on "
                      f"{result.get('device')}")
    return out


def part_data_path(device: str, tiny: bool) -> dict[str, Any]:
    """bench_data_path on this device for each model of DATA_PATH_MODELS (data-only epoch / full epoch)."""
    import bench_data_path

    out: dict[str, Any] = {}
    for model in DATA_PATH_MODELS[tiny]:
        data = bench_data_path.run(quick=tiny, repeats=2, device=device, model=model,
                                   images=256 if tiny else 20_000)[0].to_json()
        out[model] = {key: data[key] for key in ("title", "ours_median", "theirs_median", "ratio", "target", "met",
                                                 "correct", "correctness", "details")}
    out["ok"] = all(row["correct"] and row["met"] is not False for row in out.values())
    out["summary"] = "; ".join(f"{model}: data only {row['ours_median']:.2f} s vs full {row['theirs_median']:.2f} s "
                               f"per epoch, ratio {row['ratio']:.3f}" if row["ratio"] is not None
                               else f"{model}: check failed" for model, row in out.items() if model != "ok")
    return out


PARTS: dict[str, Callable[[str, bool], dict[str, Any]]] = {
    "cuda_tests": part_cuda_tests, "train_step": part_train_step, "pgd": part_pgd, "sandbox": part_sandbox,
    "data_path": part_data_path,
}


# --------------------------------------------------------------------------- the driver


def child_env(device: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), str(ROOT / "plugins"), env.get("PYTHONPATH")]))
    env["HARNESS_DEVICE"] = "cpu" if device == "cpu" else env.get("HARNESS_DEVICE", "auto")
    env.setdefault("TF_USE_LEGACY_KERAS", "1")
    return env


def run_part(name: str, args: argparse.Namespace, cap: float) -> dict[str, Any]:
    """One part in a fresh process, killed at ``cap`` seconds; what it reported, or why it failed."""
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix=f"gpu-check-{name}-") as tmp:
        report = Path(tmp) / "part.json"
        command = [sys.executable, str(Path(__file__).resolve()), "--part", name, "--part-out", str(report),
                   "--device", args.device] + (["--tiny"] if args.tiny else [])
        # its own process group: at the cap, the part and what it started (pytest, a training child) go together
        process = subprocess.Popen(command, cwd=ROOT, env=child_env(args.device), stdout=subprocess.PIPE,
                                   stderr=subprocess.STDOUT, text=True, start_new_session=True)
        try:
            output, _ = process.communicate(timeout=cap)
            result = json.loads(report.read_text()) if report.is_file() else {
                "ok": False, "error": f"exit {process.returncode}: {output[-2000:]}"}
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            result = {"ok": False, "error": f"ran past its cap of {cap:.0f} s"}
    result["seconds"] = round(time.perf_counter() - started, 1)
    result["cap_seconds"] = round(cap)
    return result


def machine(device: str) -> dict[str, Any]:
    info: dict[str, Any] = {"python": sys.version.split()[0], "platform": platform.platform(), "cpus": os.cpu_count()}
    try:
        import torch

        info["torch"] = torch.__version__
        if device.startswith("cuda"):
            info.update(gpu=torch.cuda.get_device_name(0), cuda=torch.version.cuda,
                        gpu_memory_gib=round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1),
                        bf16_supported=torch.cuda.is_bf16_supported())
    except Exception as exc:  # noqa: BLE001 - the machine facts are informative only
        info["error"] = f"{type(exc).__name__}: {exc}"
    return info


def print_table(results: dict[str, Any]) -> None:
    rows = [(name, {True: "ok", False: "FAILED"}.get(part.get("ok"), "-"), f"{part.get('seconds', 0):.0f}",
             part.get("summary") or part.get("error", "")[:300]) for name, part in results["parts"].items()]
    try:
        from rich.console import Console
        from rich.table import Table

        table = Table(title=f"GPU check: {results['machine'].get('gpu', results['device'])}")
        for column in ("part", "result", "s", "figures"):
            table.add_column(column)
        for row in rows:
            table.add_row(*row)
        Console(width=160).print(table)
    except ImportError:
        for row in rows:
            print(" | ".join(row))


def cuda_here() -> str | None:
    """Why this machine cannot run the check (None: it can); imports torch only when a GPU node is present."""
    from harness.sandbox.limits import gpu_visible

    if not gpu_visible():
        return "no NVIDIA device visible"
    import torch

    return None if torch.cuda.is_available() else "torch sees no CUDA device"


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.part:  # one part, in the process run_part started
        try:
            result = PARTS[args.part](args.device, args.tiny)
        except Exception as exc:  # noqa: BLE001 - reported to the driver as this part's failure
            result = {"ok": False, "error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()[-3000:]}
        args.part_out.write_text(json.dumps(result, indent=2, default=str))
        return 0
    if args.device != "cpu":
        problem = cuda_here()
        if problem:
            print(f"gpu_check: {problem}: nothing to check (run it on a machine with a CUDA GPU)")
            return 0
    started = time.perf_counter()
    results: dict[str, Any] = {"device": args.device, "tiny": args.tiny, "machine": machine(args.device),
                               "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                               "caps_seconds": {"total": TOTAL_CAP, **CAPS}, "parts": {}}
    for name in PARTS:
        left = TOTAL_CAP - (time.perf_counter() - started)
        cap = min(CAPS[name], left) if not args.tiny else CAPS[name] * 3  # the CPU dry run is slower, not capped
        if cap < 5:
            results["parts"][name] = {"ok": False, "error": "not run: the total cap was spent"}
            continue
        print(f"gpu_check: {name} (cap {cap:.0f} s) ...", flush=True)
        results["parts"][name] = run_part(name, args, cap)
        print(f"gpu_check: {name} {'ok' if results['parts'][name].get('ok') else 'FAILED'} "
              f"({results['parts'][name]['seconds']} s)", flush=True)
    results["seconds"] = round(time.perf_counter() - started, 1)
    results["ok"] = all(part.get("ok") for part in results["parts"].values())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(results, indent=2, default=str) + "\n")
    os.replace(tmp, args.out)
    print_table(results)
    print(f"wrote {args.out} ({results['seconds']} s)")
    return 0 if results["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
