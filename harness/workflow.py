"""Train a submission into a model artifact, load it back, evaluate it the way the seeds did.

A model artifact is a folder::

    model.json            the resolved submission, classes, input shape, hashes: rebuilds the model
    weights.pt | ...      the framework runtime's weights file
    metrics.json          per-epoch metrics (harness.training schema)
    training_curves.png   loss and top-1 per epoch

Framework specifics go through :mod:`harness.frameworks` runtimes.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from . import __version__
from .atomic import atomic_path, write_json
from .errors import UsageError
from .submission import Submission, content_hash, submission_plugins

MODEL_FILE = "model.json"
#: the seed's evaluation sets besides clean: augmented images, FGSM and BIM examples
EVAL_AUGMENTATIONS = ("color-jitter", "rotation", "gaussian-noise", "salt-and-pepper")
DEFAULT_EPS = 8 / 255


def default_run_dir(submission: Submission, runs: str | Path = "runs") -> Path:
    """``runs/<submission>/<profile>`` (``base`` without a profile)."""
    return Path(runs) / submission.name / (submission.profile or "base")


def _build_model(submission: Submission, num_classes: int, input_shape: Sequence[int], for_loading: bool) -> Any:
    from .registry import create_backbone, get_backbone

    params = dict(submission.backbone_params)
    if for_loading:  # the artifact's weights replace any pretrained ones: don't download them again
        spec_params = get_backbone(submission.backbone, framework=submission.framework).params
        params.update({k: v for k, v in (("pretrained", False), ("weights", None)) if k in spec_params})
    return create_backbone(submission.backbone, framework=submission.framework, num_classes=num_classes,
                           input_shape=tuple(input_shape), **params)


def train_submission(submission: Submission, out_dir: str | Path, *, resume: bool = False,
                     progress: bool = True, threads: int | None = None) -> Path:
    """Train ``submission`` on its dataset's train split (val for curves) and write its artifact to ``out_dir``.

    The submission's own plugin modules are registered while it trains, and only then. An attack submission's
    surrogate model trains the same way; one without a surrogate is a UsageError (nothing to train)."""
    from .frameworks import get_runtime
    from .submission import SUBMISSION_FILE

    if not submission.has_surrogate:
        raise UsageError(f"{submission.root / SUBMISSION_FILE}: attack submission '{submission.name}' has no "
                         "surrogate model ([backbone] and [defense]): nothing to train",
                         hint="its attack runs without a model; add [backbone] and [defense] to train a surrogate")

    runtime = get_runtime(submission.framework)
    runtime.configure(threads=threads, seed=submission.seed)
    with submission_plugins(submission.root, submission.plugins):
        return _train(submission, runtime, Path(out_dir), resume=resume, progress=progress)


def _train(submission: Submission, runtime: Any, out_dir: Path, *, resume: bool, progress: bool) -> Path:
    from .data import load_dataset
    from .registry import create_defense

    dataset = load_dataset(submission.dataset, progress=progress, **dict(submission.dataset_params))
    if "train" not in dataset.splits:
        raise UsageError(f"dataset '{submission.dataset}' has no train split (splits: {', '.join(dataset.splits)})")
    train = dataset.split("train")
    val = dataset.split("val") if "val" in dataset.splits and dataset.split("val").labelled else None
    model = _build_model(submission, dataset.num_classes, dataset.image_shape, for_loading=False)
    trainer = create_defense(submission.defense, framework=submission.framework,
                             **{**submission.trainer_params(), "progress": progress})
    started = time.perf_counter()
    out_dir.mkdir(parents=True, exist_ok=True)
    trainer.fit(model, train, val, out_dir=out_dir, resume=resume)
    seconds = time.perf_counter() - started
    with atomic_path(out_dir / runtime.weights_file, suffix=Path(runtime.weights_file).suffix) as tmp:
        runtime.save_weights(model, tmp)
    write_json(out_dir / MODEL_FILE, {
        "submission": submission.to_dict(),
        "content_hash": content_hash(submission.root),
        "num_classes": dataset.num_classes,
        "input_shape": list(dataset.image_shape),
        "class_names": dataset.class_names,
        "weights_file": runtime.weights_file,
        "train_seconds": round(seconds, 3),
        "harness_version": __version__,
        "device": runtime.device_name(),
    })
    return out_dir


@dataclass
class LoadedModel:
    """A model rebuilt from its artifact, with its runtime and record."""

    model: Any
    runtime: Any
    info: dict[str, Any]
    submission: Submission

    def predict_logits(self, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
        return self.runtime.predict_logits(self.model, images, batch_size)


def read_model_info(artifact: str | Path) -> dict[str, Any]:
    """``model.json`` of an artifact folder; a clear error when it is missing or unreadable."""
    path = Path(artifact) / MODEL_FILE
    if not path.is_file():
        raise UsageError(f"{artifact}: not a trained model (no {MODEL_FILE})",
                         hint="train it first: harness train SUBMISSION")
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise UsageError(f"{path}: unreadable model record: {exc}") from None


def load_model(artifact: str | Path, threads: int | None = None, *, root: str | Path | None = None) -> LoadedModel:
    """Rebuild the model of an artifact folder and load its weights (its submission's plugin modules
    registered while the model is built). ``root``: the submission folder to take those modules from
    instead of the one recorded in the artifact (a scoring child's copy)."""
    from .frameworks import get_runtime

    info = read_model_info(artifact)
    record = dict(info["submission"])
    record["root"] = Path(root if root is not None else record["root"])
    for key in ("plugins", "augmentations", "profiles"):
        record[key] = tuple(record.get(key) or ())
    submission = Submission(**record)
    runtime = get_runtime(submission.framework)
    runtime.configure(threads=threads, seed=submission.seed)
    modules = submission.plugins if submission.root.is_dir() else ()
    with submission_plugins(submission.root, modules):
        model = _build_model(submission, info["num_classes"], info["input_shape"], for_loading=True)
    weights = Path(artifact) / info["weights_file"]
    if not weights.is_file():
        raise UsageError(f"{artifact}: weights file {info['weights_file']} is missing",
                         hint="train it again: harness train SUBMISSION")
    model = runtime.load_weights(model, weights)
    return LoadedModel(model, runtime, info, submission)


# --------------------------------------------------------------------------- evaluation (the seed's table)


def attack_set(framework: str, name: str, params: Mapping[str, Any], eps: float, seed: int) -> tuple[str, Any]:
    """(label, attack) of registered attack ``name``: ``eps`` and ``seed`` fill those parameters unless
    ``params`` set them (an attack without such a parameter does not get it). Label: ``NAME[(k=v, ...)] EPS/255``."""
    from .registry import create_attack, get_attack

    spec = get_attack(name, framework=framework)
    defaults = {k: v for k, v in (("eps", eps), ("seed", seed)) if k in spec.params}
    attack = create_attack(name, framework=framework, **{**defaults, **dict(params)})
    shown = ", ".join(f"{k}={v}" for k, v in params.items() if k != "eps")
    label = name + (f"({shown})" if shown else "")
    budget = getattr(getattr(attack, "config", None), "eps", None)
    if budget is not None:
        norm = getattr(attack.config, "norm", "linf")
        label += f" {budget * 255:.3g}/255" if norm == "linf" else f" {norm} {budget:.3g}"
    return label, attack


def evaluation_sets(framework: str, eps: float, bim_steps: int, seed: int,
                    attacks: Sequence[tuple[str, Mapping[str, Any]]] | None = None) -> dict[str, Any]:
    """Name -> None (clean), a list of augmentations, or an attack; the seed's four validation sets.

    ``attacks``: (name, params) of registered attacks replacing FGSM and BIM (see :func:`attack_set`).
    """
    from .registry import create_attack, create_augmentation

    eps_label = f"{eps * 255:.3g}/255"
    sets: dict[str, Any] = {
        "clean": None,
        "augmented": [create_augmentation(name, framework=framework, p=0.5) for name in EVAL_AUGMENTATIONS],
    }
    if attacks is None:
        sets[f"fgsm {eps_label}"] = create_attack("fgsm", framework=framework, eps=eps, seed=seed)
        sets[f"bim-{bim_steps} {eps_label}"] = create_attack("bim", framework=framework, eps=eps, steps=bim_steps,
                                                             seed=seed)
        return sets
    for name, params in attacks:
        label, attack = attack_set(framework, name, params, eps, seed)
        if label in sets:
            raise UsageError(f"--attack: '{label}' is given twice")
        sets[label] = attack
    return sets


def evaluate_model(loaded: LoadedModel, images: np.ndarray, labels: np.ndarray, *, eps: float = DEFAULT_EPS,
                   bim_steps: int = 10, seed: int = 0, batch_size: int = 256,
                   attacks: Sequence[tuple[str, Mapping[str, Any]]] | None = None,
                   progress: bool = True) -> dict[str, dict[str, float]]:
    """Top-1/top-5 on clean, augmented and attacked versions of ``images``: {set: {top1, top5, loss, count}}.

    ``attacks`` None: FGSM and BIM (``bim_steps``) at ``eps``; else (name, params) of registered attacks.
    ``progress``: a bar on a terminal, else a line per set (:mod:`harness.progress`). ``images`` may be a
    memory map: the augmented set is made and counted a chunk at a time (:mod:`harness.chunks`), the others
    batch by batch.
    """
    from .progress import stage

    results = {}
    runtime, model = loaded.runtime, loaded.model
    sets = evaluation_sets(loaded.submission.framework, eps, bim_steps, seed, attacks)
    with stage("evaluate", len(sets), enabled=progress) as report:
        for name, perturbation in sets.items():
            if isinstance(perturbation, list):
                results[name] = _augmented_accuracy(runtime, model, perturbation, images, labels, seed, batch_size)
            else:
                results[name] = runtime.accuracy(model, images, labels, attack=perturbation, batch_size=batch_size)
            report.done(f"{name} done (top-1 {results[name]['top1']:.1%})")
    return results


def _augmented_accuracy(runtime: Any, model: Any, augmentations: list[Any], images: np.ndarray,
                        labels: np.ndarray, seed: int, batch_size: int) -> dict[str, Any]:
    """:meth:`Runtime.accuracy` on ``augmentations`` applied to ``images``, a chunk at a time: one framework
    generator seeded with ``seed`` runs on across chunks, so the images and the figures are those of one call."""
    from .chunks import spans

    generator = runtime.RUNTIME.seeded_generator(int(seed))
    count = len(labels)
    totals = {"loss": 0.0, "top1": 0, "top5": 0}
    for part in spans(count):
        augmented = runtime.augment_images(augmentations, images[part], seed=seed, batch_size=batch_size,
                                           generator=generator)
        found = runtime.accuracy(model, augmented, labels[part], batch_size=batch_size)
        size = part.stop - part.start
        totals["loss"] += found["loss"] * size
        totals["top1"] += round(found["top1"] * size)
        totals["top5"] += round(found["top5"] * size)
    n = max(1, count)
    return {"loss": totals["loss"] / n, "top1": totals["top1"] / n, "top5": totals["top5"] / n, "count": count}
