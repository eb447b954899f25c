"""The scoring child: train (or load) one submission and predict the hidden images.

Run by the scorer as ``python -m harness.scoring.worker`` in its own process
group and working directory. It receives the images only (a copy in its scratch
folder): never labels, recipe or tags. It writes ``predictions.npy`` (float32
logits, one row per image, predicted and written a chunk at a time from the memory-mapped
images: :mod:`harness.chunks`) and ``result.json`` (timings) into ``--out``; any
failure ends it with one line on stderr and exit code 3.

Then, best effort, it exports the model code-free into ``--out``/export
(:mod:`harness.export`) for the white-box phase and adds ``"export": {"status":
"exported" | "not exportable", "reason", "seconds", "format"}`` to ``result.json``
(written again, atomically); a failed export is recorded, never fatal.
``--no-export`` skips it (no white-box phase to feed: no ``export`` key).

``--explain N`` (N > 0): then, best effort too, it writes the site's report material into
``--out``/report: ``history.json`` (the per-epoch metrics of the model it trained, or of the given
artifact's folder when it has ``metrics.json``) and ``explain.npz`` (the arrays of
:meth:`harness.explain.Explained.arrays`: clean and FGSM explanations and the first convolution
layers' feature maps of N images of the dataset's validation split as this child sees it, the held-out
split being withheld), and adds ``"report": {"status": "ok" | "failed", "reason", "seconds"}``. The
organiser checks and draws them (:mod:`harness.scoring.report`).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Callable

import numpy as np

from ..atomic import atomic_path

EXIT_FAILED = 3
#: the report's folder inside ``--out`` and its files (what the organiser reads back)
REPORT_DIR, HISTORY_FILE, EXPLAIN_FILE = "report", "history.json", "explain.npz"


def run(submission: Path, profile: str | None, images: Path, out: Path, artifact: Path | None,
        threads: int | None, export: bool = True, explain: int = 0) -> dict:
    from ..atomic import write_text
    from ..chunks import map_rows
    from ..submission import load_submission, submission_plugins
    from ..workflow import load_model, read_model_info, train_submission

    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    loaded_submission = load_submission(submission, profile) if artifact is None else None
    # the submission's own plugin modules (from this child's copy) stay registered from training to the last
    # prediction; a given artifact records which modules its model needs
    modules = loaded_submission.plugins if loaded_submission else read_model_info(artifact)["submission"]["plugins"]
    with submission_plugins(submission, tuple(modules or ())):
        if loaded_submission is not None:
            artifact = train_submission(loaded_submission, out / "model", progress=False, threads=threads)
        train_seconds = time.perf_counter() - started
        loaded = load_model(artifact, threads=threads, root=submission)
        hidden = np.load(images, mmap_mode="r", allow_pickle=False)
        started = time.perf_counter()
        rows = map_rows(loaded.predict_logits, hidden, out / "predictions.npy")  # a chunk at a time
        predict_seconds = time.perf_counter() - started
        result = {"train_seconds": round(train_seconds, 3), "predict_seconds": round(predict_seconds, 3),
                  "device": loaded.runtime.device_name(), "rows": rows}
        write_text(out / "result.json", json.dumps(result) + "\n")  # the predictions count even if exporting dies
        if export:
            result["export"] = export_step(loaded, out / "export")
        if explain > 0:
            result["report"] = report_step(loaded, artifact, out / REPORT_DIR, explain)
    write_text(out / "result.json", json.dumps(result) + "\n")
    return result


def export_step(loaded, folder: Path) -> dict:
    """Export ``loaded`` code-free into ``folder``: {"status", "reason", "seconds", "format"}; never raises."""
    from ..export import FORMATS, NotExportable, export_model

    started = time.perf_counter()
    record = {"status": "exported", "reason": "", "seconds": 0.0,
              "format": FORMATS.get(loaded.runtime.name, ("", ""))[0]}
    try:
        record["format"] = export_model(loaded, folder)["format"]
    except NotExportable as exc:
        record.update(status="not exportable", reason=exc.message)
    except Exception as exc:  # noqa: BLE001 - a failed export is recorded, the predictions still count
        record.update(status="not exportable", reason=failure_line(exc))
    record["seconds"] = round(time.perf_counter() - started, 3)
    return record


def report_step(loaded, artifact: Path, folder: Path, count: int) -> dict:
    """``history.json`` and ``explain.npz`` of ``count`` images into ``folder``: {"status", "reason", "seconds"};
    never raises (a failed report is recorded, the predictions still count)."""
    from ..atomic import write_text
    from ..explain import explain
    from ..training.history import METRICS_NAME

    started = time.perf_counter()
    record, notes = {"status": "ok", "reason": "", "seconds": 0.0}, []
    try:
        folder.mkdir(parents=True, exist_ok=True)
        metrics = Path(artifact) / METRICS_NAME
        if metrics.is_file():
            write_text(folder / HISTORY_FILE, metrics.read_text(encoding="utf-8"))
        else:
            notes.append(f"no training history (the model folder has no {METRICS_NAME})")
        images, labels, note = report_images(loaded, count)
        notes += [note] if note else []
        arrays = explain(loaded, images, labels).arrays()
        with atomic_path(folder / EXPLAIN_FILE, suffix=".npz") as tmp, open(tmp, "wb") as handle:
            np.savez(handle, **arrays)
    except Exception as exc:  # noqa: BLE001 - a failed report is recorded, the predictions still count
        record.update(status="failed", reason=failure_line(exc))
    record["reason"] = record["reason"] or "; ".join(notes)
    record["seconds"] = round(time.perf_counter() - started, 3)
    return record


def report_images(loaded, count: int) -> tuple:
    """(uint8 images, labels, note): the first image of each of the first ``count`` classes of the submission
    dataset's labelled val split as this child sees it, else of its train split (the note says so)."""
    from ..data import load_dataset
    from ..errors import UsageError
    from ..explain import pick_images

    name = loaded.submission.dataset
    dataset = load_dataset(name, **dict(loaded.submission.dataset_params))
    names = list(loaded.info.get("class_names") or dataset.class_names)
    for split in ("val", "train"):
        if split in dataset.splits and dataset.split(split).labelled:
            images, labels = pick_images(dataset.split(split), names, None, count)
            return images, labels, "" if split == "val" else (
                f"images from the train split: dataset '{name}' shows no labelled val split")
    raise UsageError(f"dataset '{name}' shows no labelled val or train split")


def failure_line(exc: BaseException) -> str:
    """The one line a failed child prints on stderr (its reason in the store): the message, no newlines."""
    message = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}".removesuffix(": ")
    return message.replace("\n", " ")[:2000]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="harness.scoring.worker")
    parser.add_argument("--submission", type=Path, required=True)
    parser.add_argument("--profile", default=None)
    parser.add_argument("--images", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--artifact", type=Path, default=None)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--no-export", dest="export", action="store_false",
                        help="skip the code-free export after predicting")
    parser.add_argument("--explain", type=int, default=0, help="images of the report (0: no report)")
    args = parser.parse_args(argv)
    return run_reporting_failure(lambda: run(args.submission, args.profile, args.images, args.out, args.artifact,
                                             args.threads, args.export, args.explain))


def run_reporting_failure(work: Callable[[], object]) -> int:
    """Every scoring child's ending: 0 when ``work()`` returns; on any exception one line on stderr (the
    organiser's recorded reason, :func:`failure_line`) and ``EXIT_FAILED``."""
    try:
        work()
    except Exception as exc:  # noqa: BLE001 - the organiser records one line as the reason
        print(f"worker failed: {failure_line(exc)}"[:2000], file=sys.stderr, flush=True)
        return EXIT_FAILED
    return 0


if __name__ == "__main__":
    sys.exit(main())
