"""The exported-model child of the adaptive scoring phase: harness code only, no submission code.

Run by :mod:`harness.scoring.adaptive` as ``python -m harness.scoring.exported_worker MODE`` in a fresh
sandboxed child whose view holds a copy of the submission's code-free export (:mod:`harness.export`),
one adaptive category's clean images and its work folder: never the submission, its plugins, labels or
the recipe. Plugins installed for the organiser load as in every child (``CHILD_PLUGIN_ENV``).

- ``attack --settings JSON --export DIR --images clean.npy --out WORK``: predicts the clean images, then
  attacks them with :func:`harness.robustness.evaluate_robustness` in predicted-label mode (the labels are
  the model's own predictions) at the eps ladder (eps/2, eps), the category's attack as the ensemble's
  member(s); writes ``adversarial.npy`` (float32 N,H,W,C at eps) and ``attack.json`` (flags with their
  details, hyper-parameters, seeds, seconds).
- ``predict --export DIR --images clean.npy --adversarial adversarial.npy --out WORK``: writes
  ``clean_logits.npy``, ``adversarial_logits.npy`` (float32) and ``result.json``.

Any failure ends it with one line on stderr and exit code 3, like :mod:`harness.scoring.worker`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

EXIT_FAILED = 3
#: the eps ladder's points as fractions of the category's eps (two points: the eps-monotonicity check runs)
EPS_LADDER = (0.5, 1.0)


def members(settings: dict[str, Any]) -> list[Any]:
    """The ensemble members of a category's settings: its attack, or an ensemble's members (none: the default)."""
    from ..robustness.ensemble import DEFAULT_ATTACKS, Member

    if settings["attack"] != "ensemble":
        return [Member(settings["attack"], dict(settings.get("params") or {}))]
    chosen = settings.get("members") or DEFAULT_ATTACKS
    return [Member(m, {}) if isinstance(m, str) else Member(m["name"], dict(m.get("params") or {})) for m in chosen]


def attack(export: Path, images: Path, out: Path, settings: dict[str, Any], threads: int | None) -> dict[str, Any]:
    """Attack the clean images of one category on the exported model; write adversarial.npy and attack.json."""
    import numpy as np

    from ..atomic import write_json
    from ..chunks import spans
    from ..export import load_exported
    from ..robustness import evaluate_robustness

    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    exported = load_exported(export, threads)
    clean = np.load(images, mmap_mode="r", allow_pickle=False)
    predicted, num_classes = np.zeros(len(clean), dtype=np.int64), 0
    for part in spans(len(clean)):  # the model's own labels, a chunk at a time
        logits = np.asarray(exported.predict_logits(clean[part]), dtype=np.float32)
        predicted[part], num_classes = logits.argmax(axis=1), logits.shape[1]
    load_seconds = time.perf_counter() - started
    eps = float(settings["eps"])
    ladder = sorted({eps * f for f in EPS_LADDER})
    started = time.perf_counter()
    report = evaluate_robustness(exported.runtime, exported.model, clean, predicted, eps=ladder,
                                 attacks=members(settings), seed=int(settings["seed"]), norm=settings["norm"],
                                 keep_adversarial=True, progress=False, num_classes=num_classes or None)
    attack_seconds = time.perf_counter() - started
    np.save(out / "adversarial.npy", np.asarray(report.adversarial[max(report.eps)], dtype=np.float32))
    budgets = next((c for c in report.checks if c.name == "adversarial-out-of-budget"), None)
    result = {
        "flags": report.flags,
        "checks": {c.name: c.detail for c in report.checks if c.flagged},
        "eps_ladder": report.eps,
        "hyperparameters": {name: [by_eps[e] for e in sorted(by_eps)] for name, by_eps in report.attack_params.items()},
        "seed": int(settings["seed"]),
        "accuracy_vs_own_predictions": {str(e): a for e, a in sorted(report.robust_accuracy.items())},
        "projected": budgets.values.get("violations", []) if budgets is not None else [],
        "seconds": {"load": round(load_seconds, 3), "attack": round(attack_seconds, 3)},
        "device": exported.runtime.device_name(),
    }
    write_json(out / "attack.json", result)
    return result


def predict(export: Path, images: Path, adversarial: Path, out: Path, threads: int | None) -> dict[str, Any]:
    """Logits of the clean and the adversarial images on the exported model; clean_logits.npy,
    adversarial_logits.npy and result.json."""
    import numpy as np

    from ..atomic import write_json
    from ..chunks import map_rows
    from ..export import load_exported

    out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    exported = load_exported(export, threads)
    clean = np.load(images, mmap_mode="r", allow_pickle=False)
    attacked = np.load(adversarial, mmap_mode="r", allow_pickle=False)
    map_rows(exported.predict_logits, clean, out / "clean_logits.npy")  # a chunk at a time, both
    map_rows(lambda x: exported.runtime.predict_logits_float(exported.model, np.asarray(x, dtype=np.float32)),
             attacked, out / "adversarial_logits.npy")
    result = {"seconds": round(time.perf_counter() - started, 3), "device": exported.runtime.device_name()}
    write_json(out / "result.json", result)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="harness.scoring.exported_worker")
    modes = parser.add_subparsers(dest="mode", required=True)
    for mode in ("attack", "predict"):
        sub = modes.add_parser(mode)
        sub.add_argument("--export", type=Path, required=True)
        sub.add_argument("--images", type=Path, required=True)
        sub.add_argument("--out", type=Path, required=True)
        sub.add_argument("--threads", type=int, default=None)
        if mode == "attack":
            sub.add_argument("--settings", required=True, help="the category's settings as JSON")
        else:
            sub.add_argument("--adversarial", type=Path, required=True)
    args = parser.parse_args(argv)
    from .worker import run_reporting_failure

    if args.mode == "attack":
        return run_reporting_failure(lambda: attack(args.export, args.images, args.out, json.loads(args.settings),
                                                    args.threads))
    return run_reporting_failure(lambda: predict(args.export, args.images, args.adversarial, args.out,
                                                 args.threads))


if __name__ == "__main__":
    sys.exit(main())
