"""The scoring child: train (or load) one submission and predict the hidden images.

Run by the scorer as ``python -m harness.scoring.worker`` in its own process
group and working directory. It receives the images only (a copy in its scratch
folder): never labels, recipe or tags. It writes ``predictions.npy`` (float32
logits, one row per image) and ``result.json`` (timings) into ``--out``; any
failure ends it with one line on stderr and exit code 3.

Then, best effort, it exports the model code-free into ``--out``/export
(:mod:`harness.export`) for the white-box phase and adds ``"export": {"status":
"exported" | "not exportable", "reason", "seconds", "format"}`` to ``result.json``
(written again, atomically); a failed export is recorded, never fatal.
``--no-export`` skips it (no white-box phase to feed: no ``export`` key).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Callable

EXIT_FAILED = 3


def run(submission: Path, profile: str | None, images: Path, out: Path, artifact: Path | None,
        threads: int | None, export: bool = True) -> dict:
    import numpy as np

    from ..atomic import write_text
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
        logits = np.asarray(loaded.predict_logits(hidden), dtype=np.float32)
        predict_seconds = time.perf_counter() - started
        np.save(out / "predictions.npy", logits)
        result = {"train_seconds": round(train_seconds, 3), "predict_seconds": round(predict_seconds, 3),
                  "device": loaded.runtime.device_name(), "rows": int(logits.shape[0])}
        write_text(out / "result.json", json.dumps(result) + "\n")  # the predictions count even if exporting dies
        if export:
            result["export"] = export_step(loaded, out / "export")
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
    args = parser.parse_args(argv)
    return run_reporting_failure(lambda: run(args.submission, args.profile, args.images, args.out, args.artifact,
                                             args.threads, args.export))


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
