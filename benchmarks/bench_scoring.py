"""Scoring overhead: the predict phase of `harness score`'s child vs a bare PyTorch forward pass.

Set-up (untimed): a small PyTorch submission (``small-cnn``, width 16, hidden 64) is
trained for one epoch on the embedded digits into a model artifact, so training is
not in the measurement (``harness score --artifact NAME=FOLDER`` does the same); a
hidden split is built with ``build_split`` (digits test, clean and gaussian noise)
and its images are repeated to IMAGES images (8x8 grey), written as the scorer's
``images.npy``.

Ours: :func:`harness.scoring.child_run.run_child`, what ``harness score`` runs per
submission: a copy of the images in a scratch folder, a scrubbed environment,
limits, bubblewrap when it runs here (the default ``--sandbox auto``), then
``python -m harness.scoring.worker --artifact ...``, which loads the model and
times its own predict phase (``predict_seconds`` in result.json). Theirs: the same
weights loaded into the same ``nn.Module`` with plain ``torch.load``, ``eval()``,
``torch.no_grad()``, the same batch size and thread count, over the same images in
this process. Ratio: predict_seconds / bare forward seconds (target 1.15). The
child's start-up (its wall time minus predict: interpreter, imports, model load,
writing the logits) is reported separately in ``details``, with the other isolation
kind and a bare ``python -c "import torch; torch.load(weights)"`` for context.

Correctness first: the child's predictions.npy must equal the bare logits
(``np.allclose``) under both isolation kinds, and the model must be trained
(top-1 on the split well above chance); every timed child is checked for its row
count.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from common import QUICK_REPEATS, Comparison, bench_main, timed  # noqa: E402
from workloads import digits_split_recipe, small_cnn_submission  # noqa: E402

IMAGES = 100_000  # about 0.5 s of predict on one core: enough that ms rounding and jitter are small
QUICK_IMAGES = 5_000
BATCH_SIZE = 256  # LoadedModel.predict_logits' default, which the worker uses
THREADS = 1  # one intra-op thread each: the model is tiny, and the machine is shared
SUBMISSION = small_cnn_submission("bench-scoring")


def _prepare(work: Path, count: int):
    """Trained artifact, submission entry, hidden split and its images repeated to ``count``; (entry, images
    path, images, labels)."""
    import numpy as np

    from harness.scoring.child_run import read_entry
    from harness.scoring.split import build_split, load_recipe, open_split
    from harness.submission import load_submission
    from harness.workflow import train_submission

    folder = work / "submission"
    folder.mkdir()
    (folder / "submission.toml").write_text(SUBMISSION)
    artifact = train_submission(load_submission(folder), work / "artifact", progress=False, threads=THREADS)
    (work / "recipe.toml").write_text(digits_split_recipe(seed=9))
    build_split(load_recipe(work / "recipe.toml"), work / "split", references=work / "references", progress=False)
    split = open_split(work / "split")
    hidden = np.load(split.images_path)
    images = np.ascontiguousarray(np.resize(hidden, (count, *hidden.shape[1:])))
    path = work / "images.npy"
    np.save(path, images)
    return read_entry(folder, artifact=artifact.resolve()), path, images, np.resize(split.labels, count)


def _bare_model(artifact: Path):
    """The artifact's network loaded with plain torch: same module, ``torch.load`` + ``load_state_dict``."""
    import torch
    from harness_torch.backbones import small_cnn

    info = json.loads((artifact / "model.json").read_text())
    model = small_cnn(info["num_classes"], tuple(info["input_shape"]), **info["submission"]["backbone_params"])
    model.load_state_dict(torch.load(artifact / info["weights_file"], map_location="cpu", weights_only=True))
    return model.eval()


def _bare_forward(model, images):
    """What one would write by hand: uint8 NHWC batches -> float NCHW in [0, 1] -> logits."""
    import torch

    x = torch.from_numpy(images)
    outputs = []
    with torch.no_grad():
        for start in range(0, len(x), BATCH_SIZE):
            outputs.append(model(x[start:start + BATCH_SIZE].permute(0, 3, 1, 2).float().div_(255.0)))
    return torch.cat(outputs).numpy()


def _child(entry, images: Path, scratch: Path, isolation) -> tuple[float, dict]:
    """Run the scorer's child once: (wall seconds of run_child, its result.json); RuntimeError if it failed."""
    from harness.sandbox.limits import default_limits
    from harness.scoring.child_run import run_child

    started = time.perf_counter()
    status, reason = run_child(entry, None, images, scratch, 600.0, THREADS, isolation, default_limits(600.0, THREADS))
    wall = time.perf_counter() - started
    if status != "ok":
        raise RuntimeError(f"scoring child ({isolation.kind}) failed: {reason}")
    return wall, json.loads((scratch / "work" / "result.json").read_text())


def run(quick: bool = False, repeats: int = 7) -> list[Comparison]:
    import numpy as np
    import torch

    from harness.sandbox.choice import Isolation, choose_isolation

    repeats = QUICK_REPEATS if quick else repeats
    count = QUICK_IMAGES if quick else IMAGES
    torch.set_num_threads(THREADS)
    isolation = choose_isolation("auto")  # what `harness score` uses here
    kinds = [isolation] + ([Isolation("none", "plain child process")] if isolation.kind != "none" else [])
    comparison = Comparison(
        name="scoring_predict_vs_bare_torch",
        title="Scoring overhead: predict phase of the `harness score` child vs a bare forward pass",
        ours=f"harness score child (run_child, {isolation.kind}), its predict_seconds",
        theirs="plain torch: same weights, eval + no_grad, same batches and threads, in one process",
        target="ratio <= 1.15 (child start-up reported separately)", target_ratio=1.15)
    with tempfile.TemporaryDirectory(prefix="bench-scoring-") as tmp:
        work = Path(tmp)
        entry, images_path, images, labels = _prepare(work, count)
        model = _bare_model(entry.artifact)
        bare = _bare_forward(model, images)
        checks: dict = {"images": count, "classes": int(bare.shape[1])}
        ok = bool(np.isfinite(bare).all())
        top1 = float((bare.argmax(1) == labels).mean())
        checks["bare_top1"] = round(top1, 4)
        ok &= top1 > 0.5  # ten classes: chance is 0.1; an untrained or wrongly loaded model fails here
        for kind in kinds:
            _, result = _child(entry, images_path, work / f"check-{kind.kind}", kind)
            predictions = np.load(work / f"check-{kind.kind}" / "work" / "predictions.npy")
            shaped = predictions.shape == bare.shape
            same = shaped and bool(np.allclose(predictions, bare, rtol=1e-5, atol=1e-5))
            checks[f"{kind.kind}_allclose"] = same
            checks[f"{kind.kind}_identical"] = shaped and bool(np.array_equal(predictions, bare))
            if shaped:
                checks[f"{kind.kind}_max_abs_diff"] = float(np.abs(predictions - bare).max())
            ok &= same and result["rows"] == count
        comparison.correctness = {"check": "child predictions.npy == bare forward logits (allclose rtol/atol "
                                           "1e-5) under each isolation; bare top-1 on the split > 0.5", **checks}
        comparison.correct = ok
        if not ok:
            return [comparison]
        weights = entry.artifact / "weights.pt"
        bare_start = [sys.executable, "-c", f"import torch; torch.load({str(weights)!r}, weights_only=True)"]
        walls: dict[str, list[float]] = {k.kind: [] for k in kinds}
        predicts: dict[str, list[float]] = {k.kind: [] for k in kinds}
        bare_startup: list[float] = []
        timed_kinds = kinds[:1] if quick else kinds  # quick: the other isolation is checked, not timed
        for _ in range(repeats):  # ours and theirs alternate within each repeat
            for kind in timed_kinds:
                wall, result = _child(entry, images_path, work / f"run-{kind.kind}", kind)
                if result["rows"] != count:
                    raise RuntimeError(f"child wrote {result['rows']} rows, expected {count}")
                walls[kind.kind].append(wall)
                predicts[kind.kind].append(float(result["predict_seconds"]))
            comparison.theirs_seconds.append(timed(lambda: _bare_forward(model, images)))
            if not (quick and bare_startup):
                bare_startup.append(timed(lambda: subprocess.run(bare_start, check=True, capture_output=True)))
        comparison.ours_seconds = predicts[isolation.kind]

    def median(values):
        return round(statistics.median(values), 4)

    bare_median = statistics.median(comparison.theirs_seconds)
    details = {
        "images": count, "image_shape": list(images.shape[1:]), "batch_size": BATCH_SIZE, "threads": THREADS,
        "model": "small-cnn width 16 hidden 64 (digits, 1 epoch)", "repeats": repeats,
        "isolation": isolation.kind, "isolation_reason": isolation.reason,
        "bare_process_startup_median_s": median(bare_startup),
        "bare_process_startup": "python -c 'import torch; torch.load(weights)': the start-up any scoring process pays",
    }
    for kind in timed_kinds:
        startup = [w - p for w, p in zip(walls[kind.kind], predicts[kind.kind])]
        details[kind.kind] = {
            "predict_seconds": predicts[kind.kind], "child_wall_seconds": [round(w, 4) for w in walls[kind.kind]],
            "predict_median_s": median(predicts[kind.kind]), "child_wall_median_s": median(walls[kind.kind]),
            "child_startup_median_s": median(startup),
            "predict_ratio_vs_bare": round(statistics.median(predicts[kind.kind]) / bare_median, 4),
        }
    comparison.details = details
    if comparison.met is False:  # the figures that say whether the harness or the machine's load missed it
        def spread(values):
            return f"{min(values):.3f}-{max(values):.3f} s"
        others = "; ".join(f"{k} child ratio {details[k]['predict_ratio_vs_bare']}" for k in predicts
                           if k != isolation.kind and k in details)
        comparison.note = (f"missed: predict across repeats {spread(comparison.ours_seconds)}, bare forward "
                           f"{spread(comparison.theirs_seconds)}" + (f"; {others}" if others else ""))
    return [comparison]


if __name__ == "__main__":
    sys.exit(bench_main(run))
