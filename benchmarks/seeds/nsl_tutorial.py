"""The NSL tutorial seed (004): the same small CNN trained plain and with NSL adversarial regularization.

Its experiment, with the harness's pieces: the ``nsl-cnn`` backbone (conv 16-32-32, max-pooling, dense 64)
trained once with the ``standard`` defense (the baseline) and once with ``nsl-adversarial-regularization``
at the tutorial's knobs (multiplier 0.2, adv_step_size 0.2, infinity norm), both with Adam (Keras's
default rate 0.001), batch 28, 5 epochs. Both are then evaluated clean and on images perturbed on a
reference model -- the baseline wrapped with the same NSL config, ``perturb_on_batch``, clipped to
[0, 1], exactly the tutorial's validation -- and, beyond the tutorial, on each model's own NSL
neighbours (white-box), on PGD-20 made on the reference (``harness.robustness.transfer_examples``) and on
NSL neighbours made on an independent reference (the baseline's recipe from seed + 1), which neither model is.

    python benchmarks/seeds/nsl_tutorial.py            # digits, CPU scale (about a minute on 2 cores)
    python benchmarks/seeds/nsl_tutorial.py --quick    # seconds: checks the plumbing
    python benchmarks/seeds/nsl_tutorial.py --full --data ~/tiny-imagenet-200   # Tiny ImageNet, GPU

The tutorial ran on Beans (3 classes, 500x500 RGB; tfds, not downloadable here); the CPU scale is the
embedded 8x8 digits. Writes ``nsl_tutorial[_quick|_full].json`` to ``--out``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (load_data, seed_vs_ours, markdown_table, parse_args, run, scale, set_seeds,  # noqa: E402
                    training_params, write_result)
from nsl_eval import configure_tensorflow, evaluate_models  # noqa: E402

#: the tutorial's knobs (make_adv_reg_config and the Keras fit)
NSL_KNOBS = {"multiplier": 0.2, "adv_step_size": 0.2, "adv_grad_norm": "infinity"}
TRAINING = {"optimizer": "adam", "lr": 0.001, "schedule": "none", "weight_decay": 0.0, "batch_size": 28, "epochs": 5}
#: the tutorial's printed figures (Beans test set); None: not reported
SEED = {
    "clean": {"baseline": 0.8934375, "adv-regularized": 0.911625},
    "nsl_reference": {"baseline": 0.2201466, "adv-regularized": 0.8203125},
}
TRANSFER_EPS = (0.1, 0.2)
TRANSFER_STEPS = 20
MODELS = ("baseline", "adv-regularized")


def train(data, defense: str, args, epochs: int, seed: int | None = None, **knobs):
    """One ``nsl-cnn`` trained with ``defense`` (``seed``: default ``--seed``); (model, seconds, final train top-1)."""
    from harness.registry import create_backbone, create_defense

    seed = args.seed if seed is None else seed
    set_seeds(seed, "tf")  # the baseline and the regularized model start from the same weights
    model = create_backbone("nsl-cnn", framework="tf", num_classes=data.num_classes, input_shape=data.image_shape)
    params = training_params(args, **{**TRAINING, "epochs": epochs})
    trainer = create_defense(defense, framework="tf", **{**params, "seed": seed}, **knobs)
    started = time.perf_counter()
    history = trainer.fit(model, data.train, data.val)
    return model, time.perf_counter() - started, history.epochs[-1].train_top1


def rows(results: dict) -> list[dict]:
    """One row per (perturbation, metric): seed vs ours for both models."""
    return seed_vs_ours(results, MODELS, SEED)


def main(argv=None) -> int:
    args = parse_args(__doc__.split("\n\n")[0], argv, cpu_epochs=TRAINING["epochs"], full_epochs=TRAINING["epochs"])
    data = load_data(args)
    configure_tensorflow(args.threads)
    epochs = args.epochs
    print(f"{data.name}: {data.sizes()}, nsl-cnn, {epochs} epochs Adam, batch {TRAINING['batch_size']}", flush=True)
    baseline, base_seconds, base_train = train(data, "standard", args, epochs)
    regularized, reg_seconds, reg_train = train(data, "nsl-adversarial-regularization", args, epochs, **NSL_KNOBS)
    eps = () if args.quick else TRANSFER_EPS  # --quick: nsl_tiny_imagenet.py's quick run covers the PGD transfer
    results = evaluate_models({"baseline": baseline, "adv-regularized": regularized}, baseline,
                              data.test.images, data.test.labels, adv_step_size=NSL_KNOBS["adv_step_size"],
                              adv_grad_norm=NSL_KNOBS["adv_grad_norm"], transfer_eps=eps, transfer_steps=TRANSFER_STEPS,
                              seed=args.seed)
    # beyond the tutorial: a reference neither model is, trained like the baseline from another seed, so that
    # both models see transferred perturbations (the tutorial's reference is the baseline itself: white-box for it)
    independent, _, _ = train(data, "standard", args, epochs, seed=args.seed + 1)
    results["nsl_independent"] = evaluate_models(
        {"baseline": baseline, "adv-regularized": regularized}, independent, data.test.images, data.test.labels,
        adv_step_size=NSL_KNOBS["adv_step_size"], adv_grad_norm=NSL_KNOBS["adv_grad_norm"], whitebox=False,
        seed=args.seed)["nsl_reference"]
    table = rows(results)
    result = {
        "seed": "004_c822ac97ac692c77 (NSL adversarial regularization tutorial, Beans)",
        "scale": scale(args), "dataset": data.name, "sizes": data.sizes(), "backbone": "nsl-cnn",
        "training": {**TRAINING, "epochs": epochs, "precision": args.precision}, "nsl": NSL_KNOBS,
        "train_seconds": {"baseline": round(base_seconds, 1), "adv-regularized": round(reg_seconds, 1)},
        "train_top1": {"baseline": base_train, "adv-regularized": reg_train},
        "seed_figures": SEED, "results": results, "rows": table,
    }
    path = write_result(args.out / ("nsl_tutorial" + ("" if scale(args) == "cpu" else f"_{scale(args)}") + ".json"),
                        result)
    columns = ["evaluation", "metric"] + [f"{n} ({w})" for n in MODELS for w in ("seed", "ours")]
    print(markdown_table(columns, table), flush=True)
    print(f"train seconds: baseline {base_seconds:.0f}, adv-regularized {reg_seconds:.0f}; wrote {path}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(run(main))
