"""Adaptive scoring phase: its time per submission vs the robustness evaluation a participant runs himself.

Set-up (untimed): a small PyTorch submission (``small-cnn``, width 16, hidden 64) is
trained for one epoch on the embedded digits into a model artifact; a hidden split is
built with ``build_split`` from a recipe whose only category is adaptive (``kind =
"adaptive"``, ``name = "pgd"``, eps 0.1, 10 steps), and that category's clean images are
repeated to IMAGES 8x8 grey images (``images.npy``, the category's indices 0..N-1). The
model is exported code-free once with ``harness.export.export_model(load_model(artifact),
folder)``: that export's seconds are reported apart (``details.export``), and so, in the
full run, are those of the export step of the scoring child 1 (``run_child(...,
export=True)``, what ``harness score`` runs before the phase).

Ours: :func:`harness.scoring.adaptive.run_adaptive_phase` on that export with the
isolation ``--sandbox auto`` picks, the whole phase as ``harness score`` runs it per
submission: for the category, a sandboxed ``attack`` child (copies of the export and the
clean images, load the export, predict, ``evaluate_robustness`` in predicted-label mode at
eps 0.05 and 0.1 with every sanity check), the organiser's check of every returned image,
and a sandboxed ``predict`` child (clean and adversarial logits). The children's own
seconds (load, attack) are in ``details``; the rest is start-up.

Theirs: what a participant runs for the same numbers. ``harness evaluate --robust`` cannot
be pointed at these images (it takes the first ``--limit`` images of a dataset split; the
split shuffles) nor at this eps ladder (it always adds 2/255, 4/255 and 8/255, and runs its
clean / augmented / FGSM-BIM table first), so theirs is ``evaluate_robustness`` in a plain
``python`` subprocess (both sides pay a process start-up): the trained model loaded with
``harness.workflow.load_model`` (the submission's own code, not the export), the same
images, the same attack (PGD, 10 steps), eps ladder (0.05, 0.1), seed, label mode
(predicted labels) and thread count. Ratio: ours' wall time / theirs' wall time.

Correctness first: both sides' robust accuracy at eps 0.1 in predicted-label mode (ours:
the share of images whose adversarial prediction equals the clean one, from the outcome's
logits; theirs: its report) must agree within ROBUST_TOLERANCE or two images, whichever is
larger (the same seed gives the same random starts; the exported program's float rounding
can flip a near tie); the clean predictions of the export equal the model's; ours' and
theirs' adversarial images pass :func:`check_adversarial`; the model is trained (top-1
above 0.5) and the attack bites (robust accuracy below clean). Every timed phase is checked
for its status and image count. The checked runs are untimed warm-ups, except with
``--quick`` (QUICK_IMAGES images), whose one timed repeat is the checked run of each side.
"""

from __future__ import annotations

import dataclasses
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from common import QUICK_REPEATS, Comparison, bench_main, timed  # noqa: E402
from workloads import EPS, ROBUST_TOLERANCE, STEPS, small_cnn_submission  # noqa: E402

IMAGES = 400
QUICK_IMAGES = 8  # the quick run checks the plumbing: start-ups dominate it anyway
THREADS = 1  # one intra-op thread on both sides: the model is tiny, and the machine may be shared
TIMEOUT = 600.0
SUBMISSION = small_cnn_submission("bench-adaptive")
RECIPE = f"""\
[split]
dataset = "digits"
source = "test"
seed = 16
public_fraction = 0.5

[[perturbations]]
category = "pgd"
kind = "adaptive"
name = "pgd"
eps = {EPS}
params = {{ steps = {STEPS} }}
"""
#: theirs: a participant's script around evaluate_robustness (argv: artifact, images.npy, settings JSON, out folder)
THEIRS = """\
import json, sys, time
from pathlib import Path

import numpy as np

from harness.robustness import Member, evaluate_robustness
from harness.workflow import load_model

artifact, images, settings, out = sys.argv[1], sys.argv[2], json.loads(sys.argv[3]), Path(sys.argv[4])
started = time.perf_counter()
model = load_model(artifact, threads=int(settings["threads"]))
clean = np.load(images)
predicted = model.predict_logits(clean).argmax(axis=1)
load = time.perf_counter() - started
started = time.perf_counter()
eps = float(settings["eps"])
report = evaluate_robustness(model.runtime, model.model, clean, predicted, eps=(eps / 2, eps),
                             attacks=[Member(settings["attack"], settings["params"])], seed=int(settings["seed"]),
                             norm=settings["norm"], keep_adversarial=True, progress=False,
                             num_classes=int(model.info["num_classes"]))
attack = time.perf_counter() - started
out.mkdir(parents=True, exist_ok=True)
np.save(out / "adversarial.npy", np.asarray(report.adversarial[eps], dtype=np.float32))
(out / "report.json").write_text(json.dumps({
    "robust_accuracy": report.robust_accuracy[eps], "flags": report.flags,
    "seconds": {"load": load, "attack": attack}}))
"""


def _prepare(work: Path, count: int):
    """Trained artifact, submission entry, the adaptive category over ``count`` images in ``images.npy``;
    (entry, images path, images, labels, category)."""
    import numpy as np

    from harness.scoring.adaptive import adaptive_categories
    from harness.scoring.child_run import read_entry
    from harness.scoring.split import build_split, load_recipe, open_split
    from harness.submission import load_submission
    from harness.workflow import train_submission

    folder = work / "submission"
    folder.mkdir()
    (folder / "submission.toml").write_text(SUBMISSION)
    artifact = train_submission(load_submission(folder), work / "artifact", progress=False, threads=THREADS)
    (work / "recipe.toml").write_text(RECIPE)
    build_split(load_recipe(work / "recipe.toml"), work / "split", references=work / "references", progress=False)
    split = open_split(work / "split")
    category = adaptive_categories(split)[0]
    hidden = np.load(split.images_path)[category.indices]
    images = np.ascontiguousarray(np.resize(hidden, (count, *hidden.shape[1:])))
    path = work / "images.npy"
    np.save(path, images)
    labels = np.resize(split.labels[category.indices], count)
    category = dataclasses.replace(category, indices=np.arange(count))
    return read_entry(folder, artifact=artifact.resolve()), path, images, labels, category


def _ours(export_dir: Path, images_path: Path, category, scratch: Path, isolation, count: int):
    """The phase once: (wall seconds, the category's outcome); RuntimeError unless it succeeded on every image."""
    from harness.sandbox.limits import default_limits
    from harness.scoring.adaptive import run_adaptive_phase

    started = time.perf_counter()
    outcome = run_adaptive_phase(export_dir, "", images_path, [category], scratch, TIMEOUT, THREADS, isolation,
                                 default_limits(TIMEOUT, THREADS), num_classes=10)
    wall = time.perf_counter() - started
    result = outcome.categories[category.name]
    if result.status != "ok" or result.adversarial_logits is None or len(result.adversarial_logits) != count:
        raise RuntimeError(f"adaptive phase ({isolation.kind}) failed: {result.reason}")
    return wall, result


def _theirs(script: Path, artifact: Path, images_path: Path, category, out: Path) -> tuple[float, dict]:
    """The participant's evaluation once, in a fresh process: (wall seconds, its report.json)."""
    settings = json.dumps({**category.settings(), "threads": THREADS})
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(HERE.parent), str(HERE.parent / "plugins"),
                                                      env.get("PYTHONPATH")]))
    command = [sys.executable, str(script), str(artifact), str(images_path), settings, str(out)]
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"their evaluation failed: {done.stderr[-2000:]}")
    return wall, json.loads((out / "report.json").read_text())


def _export(artifact: Path, folder: Path) -> dict:
    """The code-free export once, as child 1 does it: load the model, export_model; its info plus wall seconds."""
    from harness.export import export_model
    from harness.workflow import load_model

    started = time.perf_counter()
    loaded = load_model(artifact, threads=THREADS)
    loaded_at = time.perf_counter()
    info = export_model(loaded, folder)
    return {**info, "load_model_s": round(loaded_at - started, 3), "wall_s": round(time.perf_counter() - started, 3)}


def _child1_export(entry, images_path: Path, scratch: Path, isolation) -> dict:
    """Child 1 as ``harness score`` runs it with adaptive categories (predict, then export): its export record
    and wall seconds."""
    from harness.sandbox.limits import default_limits
    from harness.scoring.child_run import run_child

    started = time.perf_counter()
    status, reason = run_child(entry, None, images_path, scratch, TIMEOUT, THREADS, isolation,
                               default_limits(TIMEOUT, THREADS), export=True)
    wall = time.perf_counter() - started
    if status != "ok":
        raise RuntimeError(f"scoring child 1 failed: {reason}")
    result = json.loads((scratch / "work" / "result.json").read_text())
    return {**result.get("export", {}), "child_wall_s": round(wall, 3),
            "predict_seconds": result.get("predict_seconds")}


def _bare_startups(export_dir: Path) -> dict:
    """Wall seconds of plain processes, once each, for where a child's start-up goes: the interpreter, ``import
    torch``, and torch plus loading the exported program."""
    program = export_dir / "model.pt2"
    commands = {"python -c pass": "pass", "import torch": "import torch",
                "import torch + torch.export.load": f"import torch; torch.export.load({str(program)!r})"}
    return {name: round(timed(lambda: subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)),
                        3) for name, code in commands.items()}


def run(quick: bool = False, repeats: int = 3) -> list[Comparison]:
    import numpy as np
    import torch

    from harness.sandbox.choice import choose_isolation
    from harness.scoring.adaptive import check_adversarial
    from harness.workflow import load_model

    repeats = QUICK_REPEATS if quick else repeats
    count = QUICK_IMAGES if quick else IMAGES
    torch.set_num_threads(THREADS)
    isolation = choose_isolation("auto")  # what `harness score` uses here
    comparison = Comparison(
        name="adaptive_phase_vs_evaluate_robust",
        title=f"Adaptive phase per submission (PGD-{STEPS}, eps {EPS}, {count} images) vs a participant's "
              "evaluate_robustness",
        ours=f"run_adaptive_phase on the export (attack + predict children, {isolation.kind})",
        theirs="evaluate_robustness in a plain python process on the trained model (same attack, eps, seed, "
               "label mode)",
        target="reported (export time and start-ups reported separately)")
    with tempfile.TemporaryDirectory(prefix="bench-adaptive-") as tmp:
        work = Path(tmp)
        entry, images_path, images, labels, category = _prepare(work, count)
        export = _export(entry.artifact, work / "export")
        script = work / "theirs.py"
        script.write_text(THEIRS)
        model = load_model(entry.artifact, threads=THREADS)
        clean_logits = np.asarray(model.predict_logits(images), dtype=np.float32)
        predicted = clean_logits.argmax(1)

        ours_wall, ours = _ours(work / "export", images_path, category, work / "check-ours", isolation, count)
        theirs_wall, theirs = _theirs(script, entry.artifact, images_path, category, work / "check-theirs")
        ours_agreement = float((ours.adversarial_logits.argmax(1) == ours.clean_logits.argmax(1)).mean())
        theirs_agreement = float(theirs["robust_accuracy"])
        ours_adversarial = np.load(work / "check-ours" / "adaptive-children" / category.name / "adversarial.npy")
        theirs_adversarial = np.load(work / "check-theirs" / "adversarial.npy")
        tolerance = max(ROBUST_TOLERANCE, 2 / count)
        top1 = float((predicted == labels).mean())
        theirs_adv_pred = model.runtime.predict_logits_float(model.model, theirs_adversarial).argmax(1)
        checks = {
            "images": count, "eps": EPS, "steps": STEPS, "label_mode": "predicted labels (both sides)",
            "clean_top1": round(top1, 4),
            "export_clean_predictions_equal": bool(np.array_equal(ours.clean_logits.argmax(1), predicted)),
            "ours_robust_accuracy_vs_own_predictions": round(ours_agreement, 4),
            "theirs_robust_accuracy_vs_own_predictions": round(theirs_agreement, 4),
            "difference": round(abs(ours_agreement - theirs_agreement), 4), "tolerance": round(tolerance, 4),
            "ours_robust_top1": round(float(ours.robust_correct(labels).mean()), 4),
            "theirs_robust_top1": round(float(((predicted == labels) & (theirs_adv_pred == labels)).mean()), 4),
            "ours_images_problem": check_adversarial(ours_adversarial, images, EPS, "linf"),
            "theirs_images_problem": check_adversarial(theirs_adversarial, images, EPS, "linf"),
            "ours_flags": ours.flags, "theirs_flags": theirs["flags"],
        }
        ok = (checks["export_clean_predictions_equal"] and top1 > 0.5 and checks["difference"] <= tolerance
              and not checks["ours_images_problem"] and not checks["theirs_images_problem"]
              and ours_agreement < 1.0)  # the attack bites on this undefended model
        comparison.correctness = {
            "check": f"robust accuracy at eps {EPS} in predicted-label mode: ours (outcome logits) vs theirs "
                     f"(its report) within max({ROBUST_TOLERANCE}, 2 images); export's clean predictions == the "
                     "model's; both sides' adversarial images pass check_adversarial; clean top-1 > 0.5; "
                     "the attack changes some prediction", **checks}
        comparison.correct = bool(ok)
        if not ok:
            return [comparison]
        ours_details, theirs_reports = [], []
        if quick:  # the checked runs are the timed repeat: the quick run checks the plumbing, not the speed
            comparison.ours_seconds.append(ours_wall)
            ours_details.append(ours.details["seconds"])
            comparison.theirs_seconds.append(theirs_wall)
            theirs_reports.append(theirs["seconds"])
        child1 = None if quick else _child1_export(entry, images_path, work / "child1", isolation)
        bare = None if quick else _bare_startups(work / "export")
        for repeat in range(0 if quick else repeats):  # ours and theirs alternate within each repeat
            wall, result = _ours(work / "export", images_path, category, work / f"run-ours-{repeat}", isolation,
                                 count)
            comparison.ours_seconds.append(wall)
            ours_details.append(result.details["seconds"])
            wall, report = _theirs(script, entry.artifact, images_path, category, work / f"run-theirs-{repeat}")
            comparison.theirs_seconds.append(wall)
            theirs_reports.append(report["seconds"])

    def median(values):
        return round(statistics.median(values), 3)

    attack = [s["attack"]["attack"] for s in ours_details]
    load = [s["attack"]["load"] for s in ours_details]
    attack_child = [s["attack_child"] for s in ours_details]
    predict_child = [s["predict_child"] for s in ours_details]
    their_attack = [s["attack"] for s in theirs_reports]
    their_load = [s["load"] for s in theirs_reports]
    details = {
        "images": count, "image_shape": list(images.shape[1:]), "threads": THREADS, "repeats": repeats,
        "model": "small-cnn width 16 hidden 64 (digits, 1 epoch)", "attack": category.settings(),
        "eps_ladder": [EPS / 2, EPS], "isolation": isolation.kind, "isolation_reason": isolation.reason,
        "export": {"export_model_s": export["seconds"], "load_model_s": export["load_model_s"],
                   "wall_s": export["wall_s"], "format": export["format"], "max_abs_diff": export["max_abs_diff"]},
        "ours": {
            "wall_seconds": [round(s, 3) for s in comparison.ours_seconds],
            "attack_child_wall_median_s": median(attack_child), "predict_child_wall_median_s": median(predict_child),
            "attack_median_s": median(attack), "attack_load_median_s": median(load),
            "attack_child_startup_median_s": median([w - a - c for w, a, c in zip(attack_child, attack, load)]),
            "other_median_s": median([w - a - p for w, a, p in zip(comparison.ours_seconds, attack_child,
                                                                    predict_child)]),
        },
        "theirs": {
            "wall_seconds": [round(s, 3) for s in comparison.theirs_seconds],
            "attack_median_s": median(their_attack), "load_median_s": median(their_load),
            "startup_median_s": median([w - a - c for w, a, c in zip(comparison.theirs_seconds, their_attack,
                                                                       their_load)]),
        },
        "attack_ratio_ours_vs_theirs": round(statistics.median(attack) / statistics.median(their_attack), 3),
    }
    if child1 is not None:
        details["child1_export"] = child1
    if bare is not None:
        details["bare_startups_s"] = bare
    comparison.details = details
    ours_part, theirs_part = details["ours"], details["theirs"]
    comparison.note = (
        f"where the time goes: ours' attack child {ours_part['attack_child_wall_median_s']} s (start-up "
        f"{ours_part['attack_child_startup_median_s']} s, import torch + load the export + clean predict "
        f"{ours_part['attack_load_median_s']} s, attack {ours_part['attack_median_s']} s) and predict child "
        f"{ours_part['predict_child_wall_median_s']} s; theirs: start-up {theirs_part['startup_median_s']} s, "
        f"load model + clean predict {theirs_part['load_median_s']} s, attack {theirs_part['attack_median_s']} s. "
        f"The export, once per submission in child 1, is apart: {details['export']['export_model_s']} s here"
        + (f", {child1['seconds']} s in child 1" if child1 is not None else ""))
    return [comparison]


if __name__ == "__main__":
    sys.exit(bench_main(run))
