"""The attack-track child: run one attack on the track's clean images and hand back its adversarial images.

Run by :mod:`harness.scoring.attack_track` in a fresh sandboxed child as::

    python -m harness.scoring.attack_worker --settings JSON [--submission DIR] [--export DIR]
        --images clean.npy --out WORK [--threads N]

``settings``: ``{"eps", "norm" ("linf" | "l2"), "seed", "profile" (or null), "attack" ({"name", "params"}, or
null: the submission's own [attack]), "framework" (used only with neither submission nor export)}``.

What the attack runs on (its ``model`` argument):

- ``--export`` given (white-box access): the code-free exported defense (:func:`harness.export.load_exported`);
  the attack is created for the export's framework;
- else the submission's surrogate when it has one ([backbone] and [defense]), trained here on the dataset's
  train split into ``WORK/surrogate`` exactly as a defense submission is trained;
- else ``None`` (model-free attacks only; a gradient attack fails with its own error).

A submission given together with ``settings["attack"]`` is a baseline: the organiser's attack on that (defense)
submission's model as surrogate. The attack is always called with ``y=None``: it never sees labels.

Writes ``WORK/adversarial.npy`` (float32 N,H,W,C as the attack returned them, not clipped: the organiser checks
and clips) and ``WORK/attack.json`` (attack, framework, hyper-parameters, target, surrogate, seconds, device).
Any failure ends it with one line on stderr and exit code 3, like :mod:`harness.scoring.worker`.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import sys
import time
from pathlib import Path
from typing import Any, Mapping

from ..errors import HarnessError

EXIT_FAILED = 3
NORMS = ("linf", "l2")
#: images per attack call (an attack with ``batches_itself = True`` gets them all at once)
BATCH_SIZE = 256


def make_attack(name: str, framework: str, params: Mapping[str, Any], eps: float, norm: str,
                seed: int) -> tuple[Any, dict[str, Any]]:
    """Attack ``name`` of ``framework`` with ``params``, the contest's ``eps``, its ``norm`` (when the attack has
    a norm parameter; l2 without one is an error), ``seed`` (when it has a seed parameter) and, for an attack
    with a label ``mode`` parameter that ``params`` leave unset (the built-in ones), ``mode="predicted"``:
    (the attack, the arguments it was created with)."""
    from ..errors import UsageError
    from ..registry import create_attack, get_attack

    spec = get_attack(name, framework=framework)
    reserved = sorted(set(params) & {"eps", "norm", "seed"})
    if reserved:
        raise UsageError(f"attack '{name}': {reserved[0]} is set by the contest, not in the attack's params")
    if "eps" not in spec.params:
        raise UsageError(f"attack '{name}' has no 'eps' parameter: the attack track sets the budget through it")
    arguments = {**dict(params), "eps": float(eps)}
    if "norm" in spec.params:
        arguments["norm"] = norm
    elif norm != "linf":
        raise UsageError(f"attack '{name}' has no 'norm' parameter, so it cannot attack in the contest's norm "
                         f"'{norm}'")
    if "seed" in spec.params:
        arguments["seed"] = int(seed)
    if "mode" in spec.params and "mode" not in params:  # the built-in attacks' label mode: no labels here
        arguments["mode"] = "predicted"
    attack = create_attack(name, framework=framework, **arguments)
    config = attack.config
    if not math.isclose(float(config.eps), float(eps), rel_tol=1e-6, abs_tol=1e-12) or config.norm != norm:
        raise UsageError(f"attack '{name}' reports budget {config.norm} {config.eps:g}, but the contest gave "
                         f"{norm} {eps:g}")
    return attack, arguments


def hyperparameters(attack: Any, arguments: Mapping[str, Any]) -> dict[str, Any]:
    """``attack.config.to_dict()`` when the attack has one, else the arguments it was created with (JSON-able)."""
    to_dict = getattr(getattr(attack, "config", None), "to_dict", None)
    values = to_dict() if callable(to_dict) else dict(arguments)
    return json.loads(json.dumps(values, default=str))


def attack_images(runtime: Any, model: Any, images: Any, attack: Any, batch_size: int = BATCH_SIZE) -> Any:
    """float32 N,H,W,C images the attack returns for uint8 N,H,W,C ``images``, batch by batch, ``y=None``.

    ``runtime``: the framework's :class:`harness.frameworks.RuntimeBase`; ``model`` None: batches on the host."""
    import numpy as np

    device = runtime.device(model) if model is not None else None
    size = max(1, len(images)) if getattr(attack, "batches_itself", False) else batch_size
    outputs = []
    for start in range(0, len(images), size):
        x = runtime.images_batch(np.asarray(images[start : start + size]), device)
        outputs.append(np.asarray(runtime.to_nhwc(attack(model, x, None)), dtype=np.float32))
    return np.concatenate(outputs) if outputs else np.zeros((0, *np.shape(images)[1:]), np.float32)


def _settings(settings: Mapping[str, Any]) -> tuple[float, str, int]:
    from ..errors import UsageError

    eps, norm, seed = settings.get("eps"), settings.get("norm", "linf"), settings.get("seed", 0)
    if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not math.isfinite(eps) or eps <= 0:
        raise UsageError(f"settings: eps must be a finite number > 0, got {eps!r}")
    if norm not in NORMS:
        raise UsageError(f"settings: norm must be one of {', '.join(NORMS)}, got {norm!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise UsageError(f"settings: seed must be an integer, got {seed!r}")
    return float(eps), norm, seed


def run(settings: Mapping[str, Any], images: Path, out: Path, submission: Path | None = None,
        export: Path | None = None, threads: int | None = None) -> dict[str, Any]:
    """Run the attack the settings and folders describe on ``images``; write adversarial.npy and attack.json
    into ``out``; the attack.json record."""
    import numpy as np

    from ..atomic import atomic_path, write_json
    from ..errors import UsageError
    from ..frameworks import get_runtime
    from ..submission import load_submission, submission_plugins
    from ..workflow import load_model, train_submission

    eps, norm, seed = _settings(settings)
    chosen = settings.get("attack")
    loaded = load_submission(submission, settings.get("profile")) if submission is not None else None
    if chosen is None and (loaded is None or loaded.track != "attack"):
        raise UsageError("settings: no attack: give settings' attack or an attack submission")
    name, params = (chosen["name"], dict(chosen.get("params") or {})) if chosen else \
        (loaded.attack, dict(loaded.attack_params))
    clean = np.load(images, allow_pickle=False)
    if clean.ndim != 4 or clean.dtype != np.uint8:
        raise UsageError(f"{images}: expected uint8 images N,H,W,C, got {clean.dtype} {clean.shape}")
    out.mkdir(parents=True, exist_ok=True)
    seconds = {"train": 0.0, "load": 0.0, "attack": 0.0}
    surrogate = None
    modules = submission_plugins(loaded.root, loaded.plugins) if loaded is not None else contextlib.nullcontext()
    with modules:
        started = time.perf_counter()
        if export is not None:
            from ..export import load_exported

            exported = load_exported(export, threads)
            model, runtime, target = exported.model, exported.runtime, "export"
        elif loaded is not None and loaded.has_surrogate:
            artifact = train_submission(loaded, out / "surrogate", progress=False, threads=threads)
            seconds["train"] = time.perf_counter() - started
            started = time.perf_counter()
            model_record = load_model(artifact, threads=threads, root=loaded.root)
            model, runtime, target = model_record.model, model_record.runtime, "surrogate"
            surrogate = {"backbone": loaded.backbone, "defense": loaded.defense,
                         "train_seconds": round(seconds["train"], 3)}
        else:
            framework = loaded.framework if loaded is not None else settings.get("framework") or "torch"
            model, runtime, target = None, get_runtime(framework), "none"
        seconds["load"] = time.perf_counter() - started
        runtime.configure(threads=threads, seed=seed)
        attack, arguments = make_attack(name, runtime.name, params, eps, norm, seed)
        started = time.perf_counter()
        try:
            adversarial = attack_images(runtime.RUNTIME, model, clean, attack)
        except Exception as exc:  # noqa: BLE001 - one line naming the attack (and the missing model)
            from .worker import failure_line

            alone = " with no model (no surrogate, no export: model-free attacks only)" if model is None else ""
            raise HarnessError(f"attack '{name}' failed{alone}: {failure_line(exc)}") from exc
        seconds["attack"] = time.perf_counter() - started
    with atomic_path(out / "adversarial.npy", suffix=".npy") as tmp:
        np.save(tmp, adversarial)
    record = {
        "attack": name,
        "framework": runtime.name,
        "hyperparameters": hyperparameters(attack, arguments),
        "target": target,
        "surrogate": surrogate,
        "seconds": {key: round(value, 3) for key, value in seconds.items()},
        "device": runtime.device_name(),
    }
    write_json(out / "attack.json", record)
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="harness.scoring.attack_worker")
    parser.add_argument("--settings", required=True, help="the attack run's settings as JSON")
    parser.add_argument("--submission", type=Path, default=None)
    parser.add_argument("--export", type=Path, default=None)
    parser.add_argument("--images", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    from .worker import run_reporting_failure

    def work() -> None:
        settings = json.loads(args.settings)
        if not isinstance(settings, dict):
            raise ValueError(f"settings must be a JSON object, got {type(settings).__name__}")
        run(settings, args.images, args.out, args.submission, args.export, args.threads)

    return run_reporting_failure(work)


if __name__ == "__main__":
    sys.exit(main())
