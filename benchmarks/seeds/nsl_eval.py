"""The NSL seed scripts' TensorFlow pieces: TensorFlow's set-up, and the seeds' validation on reference perturbations.

- :func:`configure_tensorflow`: Keras 2, quiet logs, CPU threads;
- :func:`evaluate_models`: clean top-1/top-5, then images perturbed on a reference model (NSL's
  ``perturb_on_batch``, as the seeds did, and PGD made on it with :func:`harness.robustness.transfer_examples`)
  given to every model.

The rest of the plumbing (options, data, seeds, result JSON, tables) is :mod:`common`, shared with the PyTorch
seed scripts.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np


def configure_tensorflow(threads: int | None) -> None:
    """Keras 2 before TensorFlow starts, quiet logs, ``threads`` CPU threads (None: TensorFlow's choice)."""
    import harness_tf  # noqa: F401 - selects Keras 2 (TF_USE_LEGACY_KERAS) before TensorFlow is imported
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")
    if threads:
        try:
            tf.config.threading.set_intra_op_parallelism_threads(threads)
            tf.config.threading.set_inter_op_parallelism_threads(threads)
        except RuntimeError:  # TensorFlow already started (e.g. in a test session): it keeps its pools
            pass


def _accuracies(runtime: Any, models: Mapping[str, Any], x: np.ndarray, labels: np.ndarray) -> dict[str, dict]:
    from harness.metrics import topk_accuracy

    out = {}
    for name, model in models.items():
        top = topk_accuracy(runtime.predict_logits_float(model, x), labels, (1, 5))
        out[name] = {"top1": top[1], "top5": top[5]}
    return out


def evaluate_models(models: Mapping[str, Any], reference: Any, images: np.ndarray, labels: np.ndarray, *,
                    adv_step_size: float, adv_grad_norm: str, transfer_eps: Sequence[float] = (),
                    transfer_steps: int = 20, whitebox: bool = True, seed: int = 0) -> dict[str, Any]:
    """Accuracy of every model (Keras, logits) on uint8 ``images``: clean, on NSL neighbours made on
    ``reference`` (the seeds' protocol: ``perturb_on_batch`` of the reference wrapped with the same step and
    norm, clipped to [0, 1]), on each model's own NSL neighbours (white-box), and on L-inf PGD examples made on
    ``reference`` at each ``transfer_eps`` (``whitebox=False``: no white-box rows).
    Returns {perturbation: {model: {"top1", "top5"}}} plus "settings"."""
    from harness.frameworks import get_runtime
    from harness.progress import stage
    from harness.registry import create_attack
    from harness.robustness import transfer_examples

    runtime = get_runtime("tf")
    x = images.astype(np.float32) / 255.0
    results: dict[str, Any] = {"clean": _accuracies(runtime, models, x, labels)}
    knobs = {"adv_step_size": adv_step_size, "adv_grad_norm": adv_grad_norm}
    with stage(f"NSL neighbours on the reference model (step {adv_step_size}, {adv_grad_norm})"):
        attack = create_attack("nsl-perturb", framework="tf", reference_model=reference, **knobs)
        perturbed = runtime.adversarial_images(reference, images, labels, attack)
    results["nsl_reference"] = _accuracies(runtime, models, perturbed, labels)
    for name, model in models.items() if whitebox else ():
        results.setdefault("nsl_whitebox", {})
        with stage(f"NSL neighbours on {name} itself (white-box)"):
            own = runtime.adversarial_images(model, images, labels, create_attack("nsl-perturb", framework="tf",
                                                                                  **knobs))
        results["nsl_whitebox"][name] = _accuracies(runtime, {name: model}, own, labels)[name]
    if transfer_eps:
        with stage(f"PGD-{transfer_steps} on the reference model at eps {list(transfer_eps)}"):
            transferred = transfer_examples(runtime, reference, images, labels, transfer_eps,
                                            steps=transfer_steps, seed=seed)
        for eps, adversarial in transferred.items():
            results[f"pgd{transfer_steps}_reference@{eps:g}"] = _accuracies(runtime, models, adversarial, labels)
    results["settings"] = {"count": int(len(labels)), **knobs, "transfer_eps": [float(e) for e in transfer_eps],
                           "transfer_steps": int(transfer_steps)}
    return results
