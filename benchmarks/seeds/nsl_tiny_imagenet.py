"""The Tiny ImageNet write-up seed (000, 001, 002): MobileNetV2 + augmentations + NSL, SGD, progressive fine-tuning.

The write-up's recipe is the example submission ``submissions/mobilenet-nsl`` (read from there, one place):
MobileNetV2 from ImageNet weights at the data's own input size with a 512 head; random horizontal flips,
random crops, colour jitter, gaussian / poisson (shot) / salt-and-pepper noise; NSL adversarial
regularization (multiplier 0.2, adv_step_size 0.2, infinity norm); SGD (momentum 0.9) whose rate steps
down when the training loss plateaus, then opens the upper backbone (``unfreeze="progressive"`` with the
seed's ``stage_lrs``: head 0.01 -> 0.001, upper backbone 0.001 -> 0.0001).

Its validation (section 6): a baseline trained the same way without NSL, a reference model (the baseline
wrapped in NSL) that perturbs images with ``perturb_on_batch``, clipped to [0, 1], and the accuracy of the
baseline and of the regularized model's base model on them -- on *training* images, as its code does, and
here also on held-out images, with top-5, white-box neighbours and PGD-10 made on the reference.

CPU scale (default; digits, resized to 32x32 inside the model): no ImageNet weights can be downloaded here,
so a plain run of the whole MobileNetV2 on the training images (3 epochs, SGD 0.05) stands in for them and
only its body is kept (the head starts fresh, as on ImageNet weights); fine-tuning runs 4 epochs with a
plateau of one epoch without a 10% drop of the training loss, so the regime moves within the run.

    python benchmarks/seeds/nsl_tiny_imagenet.py                # digits, CPU scale (minutes on 2 cores)
    python benchmarks/seeds/nsl_tiny_imagenet.py --quick        # seconds: the plumbing, on the nsl-cnn backbone
    python benchmarks/seeds/nsl_tiny_imagenet.py --full --data ~/tiny-imagenet-200 [--weights FILE.h5]

``--full``: 64x64 Tiny ImageNet, ImageNet weights (``--weights``: Keras's no-top MobileNetV2 file, for
offline machines), the submission's 30 epochs and plateau of 2 epochs; meant for a GPU.
``--quick`` swaps MobileNetV2 for ``nsl-cnn``: tracing MobileNetV2's NSL step alone takes 25-60 s on two
busy cores. Writes ``nsl_tiny_imagenet[_quick|_full].json`` to ``--out``.
"""

from __future__ import annotations

import sys
import time
from dataclasses import asdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (ROOT, seed_vs_ours, load_data, markdown_table, parse, parser, run, scale, set_seeds,  # noqa: E402
                    training_params, write_result)
from nsl_eval import configure_tensorflow, evaluate_models  # noqa: E402

RECIPE = ROOT / "submissions" / "mobilenet-nsl"
#: the write-up's printed figures: accuracy on perturbed *training* images (section 6); "more than 80% training
#: accuracy" (section 8); no clean validation accuracy is given
SEED = {
    "train_nsl_reference": {"baseline": 0.500700, "adv-regularized": 0.960400},
    "train_accuracy": {"adv-regularized": 0.80},
}
MODELS = ("baseline", "adv-regularized")
#: (pretraining epochs, plateau patience, plateau min delta) per scale; fine-tuning epochs: 4 on CPU, 1 with
#: --quick, the recipe's with --full
SCALES = {"quick": (1, 1, 0.1), "cpu": (3, 1, 0.1), "full": (0, None, None)}
PRETRAIN = {"optimizer": "sgd", "lr": 0.05, "schedule": "none", "unfreeze": "all", "batch_size": 64}
#: training images perturbed for the seed's own protocol (its code perturbs its training set)
TRAIN_EVAL_IMAGES = 10_000
TRANSFER_EPS = (0.1, 0.2)
TRANSFER_STEPS = 10


def build(data, backbone: str, params: dict, seed: int):
    from harness.registry import create_backbone

    set_seeds(seed, "tf")
    return create_backbone(backbone, framework="tf", num_classes=data.num_classes, input_shape=data.image_shape,
                           **params)


def with_body_of(model, pretrained):
    """``model`` with every layer but the head copied from ``pretrained`` (the head stays freshly initialised)."""
    from harness_tf.backbones import HEAD_LAYERS

    for layer in pretrained.layers:
        if layer.name not in HEAD_LAYERS and layer.weights:
            model.get_layer(layer.name).set_weights(layer.get_weights())
    return model


def fit(model, defense: str, data, args, params: dict):
    from harness.registry import create_defense

    trainer = create_defense(defense, framework="tf", **training_params(args, **params))
    started = time.perf_counter()
    history = trainer.fit(model, data.train, data.val)
    return history, time.perf_counter() - started


def events(history) -> list[str]:
    return [f"epoch {e.epoch}: {e.event}" for e in history.epochs if e.event]


def main(argv=None) -> int:
    from harness.submission import load_submission

    p = parser(__doc__.split("\n\n")[0], cpu_epochs=4, full_epochs=None, framework="tf")
    p.add_argument("--weights", default=None, help="--full: Keras's no-top MobileNetV2 ImageNet weights (.h5)")
    p.add_argument("--unfreeze", choices=("progressive", "all"), default=None,
                   help="override the recipe's progressive unfreezing (all: every layer trains from epoch 1; "
                        "the JSON name gets _unfreeze-all)")
    args = parse(p, argv)
    recipe = load_submission(RECIPE)
    pretrain_epochs, patience, min_delta = SCALES[scale(args)]
    epochs = args.epochs
    data = load_data(args)
    configure_tensorflow(args.threads)
    backbone = "nsl-cnn" if args.quick else recipe.backbone
    params = {} if args.quick else dict(recipe.backbone_params)
    if not args.full and not args.quick:
        params["pretrained"] = False  # no download here: the pretraining run below stands in
    if args.weights:
        params.update(weights=args.weights, pretrained=False)
    recipe_params = recipe.trainer_params()
    nsl_knobs = dict(recipe.defense_params)
    for knob in nsl_knobs:
        recipe_params.pop(knob)
    recipe_params["seed"] = args.seed
    if epochs is not None:
        recipe_params["epochs"] = epochs
    if args.unfreeze:
        recipe_params["unfreeze"] = args.unfreeze
    if patience is not None:
        recipe_params.update(plateau_patience=patience, plateau_min_delta=min_delta)
    print(f"{data.name}: {data.sizes()}, {backbone} {params}, recipe {RECIPE.relative_to(ROOT)}", flush=True)

    pretrained, pretrain_seconds = None, 0.0
    if pretrain_epochs:
        pretrained = build(data, backbone, params, args.seed)
        _, pretrain_seconds = fit(pretrained, "standard", data, args,
                                  {**PRETRAIN, "epochs": pretrain_epochs, "seed": args.seed})
    models, seconds, histories = {}, {}, {}
    for name, defense, knobs in (("baseline", "standard", {}),
                                 ("adv-regularized", recipe.defense, nsl_knobs)):
        model = build(data, backbone, params, args.seed)
        if pretrained is not None:
            with_body_of(model, pretrained)
        histories[name], seconds[name] = fit(model, defense, data, args, {**recipe_params, **knobs})
        models[name] = model

    step, norm = nsl_knobs["adv_step_size"], nsl_knobs["adv_grad_norm"]
    eps, steps = (TRANSFER_EPS[-1:], 2) if args.quick else (TRANSFER_EPS, TRANSFER_STEPS)
    results = evaluate_models(models, models["baseline"], data.test.images, data.test.labels, adv_step_size=step,
                              adv_grad_norm=norm, transfer_eps=eps, transfer_steps=steps, seed=args.seed)
    count = min(TRAIN_EVAL_IMAGES, len(data.train.labels))
    on_train = evaluate_models(models, models["baseline"], data.train.images[:count], data.train.labels[:count],
                               adv_step_size=step, adv_grad_norm=norm, whitebox=False, seed=args.seed)
    results["train_clean"], results["train_nsl_reference"] = on_train["clean"], on_train["nsl_reference"]
    results["train_settings"] = on_train["settings"]
    table = rows(results, histories)
    result = {
        "seed": "000_2acae5b12fd595f9 (Tiny ImageNet write-up: MobileNetV2 + NSL), 001, 002",
        "scale": scale(args), "dataset": data.name, "sizes": data.sizes(), "backbone": backbone,
        "backbone_params": params, "recipe": str(RECIPE.relative_to(ROOT)),
        "pretraining": None if not pretrain_epochs else {**PRETRAIN, "epochs": pretrain_epochs,
                                                         "seconds": round(pretrain_seconds, 1)},
        "training": recipe_params, "nsl": nsl_knobs, "precision": args.precision,
        "train_seconds": {k: round(v, 1) for k, v in seconds.items()},
        "events": {name: events(h) for name, h in histories.items()},
        "history": {name: [asdict(e) for e in h.epochs] for name, h in histories.items()},
        "seed_figures": SEED, "results": results, "rows": table,
    }
    name = "nsl_tiny_imagenet" + ("" if scale(args) == "cpu" else f"_{scale(args)}")
    if args.unfreeze and args.unfreeze != recipe.training.get("unfreeze"):
        name += f"_unfreeze-{args.unfreeze}"
    path = write_result(args.out / f"{name}.json", result)
    columns = ["evaluation", "metric"] + [f"{n} ({w})" for n in MODELS for w in ("seed", "ours")]
    print(markdown_table(columns, table), flush=True)
    for name in MODELS:
        print(f"{name}: {seconds[name]:.0f} s; {'; '.join(result['events'][name])}", flush=True)
    print(f"pretraining stand-in: {pretrain_seconds:.0f} s; wrote {path}", flush=True)
    return 0


def rows(results: dict, histories: dict) -> list[dict]:
    """Seed vs ours per (evaluation, metric), both models; the last epoch's training accuracy first."""
    table = [{"evaluation": "train_accuracy (last epoch, augmented)", "metric": "top1",
              **{f"{n} (seed)": SEED["train_accuracy"].get(n) for n in MODELS},
              **{f"{n} (ours)": histories[n].epochs[-1].train_top1 for n in MODELS}}]
    return table + seed_vs_ours(results, MODELS, SEED)


if __name__ == "__main__":
    sys.exit(run(main))
