"""The Robust Image Classification seed's Table 1: five training regimes on four validation sets, top-1 and top-5.

The seed (/work/shared/seeds/003, section 2.3.3) trains five models and tests each on four validation sets.
Its protocol, as reproduced here:

- "normal" trains on clean images. It is the *source model*: the seed generated its FGSM and BIM training
  and validation images once, from this model's gradients;
- "augmented" trains on augmented images only (the seed's seven perturbations: :data:`SEED_AUGMENTATIONS`);
- "fgsm" / "bim" train on the source model's FGSM / BIM images only;
- "all" (model hardening) trains on clean + augmented + FGSM + BIM images together.

Every row is the harness's ``model-hardening`` defense with view weights (a zero weight skips a view);
"fgsm", "bim" and "all" take the trained "normal" model as ``reference_model``, so their adversarial
views are the source model's fixed examples, as the seed's pre-generated datasets were.

Validation sets: clean; augmented (the seven perturbations applied once, seeded); FGSM and BIM (k = 5)
crafted once on the source model and stored as uint8 images inside the budget (the seed's columns);
and, beyond the seed, white-box FGSM and BIM-5 against each model itself.

    python benchmarks/seeds/table1_hardening.py            # digits + small-cnn, a few minutes on 2 cores
    python benchmarks/seeds/table1_hardening.py --quick    # seconds: checks the plumbing
    python benchmarks/seeds/table1_hardening.py --full [--data DIR] [--precision bf16]   # Tiny ImageNet, WRN-50-2
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402

NAME = "table1_hardening"
#: the seed's augmented set (section 2.2): affine (translate, scale, shear), grayscale, horizontal and
#: vertical flips, small rotations, perspective, colour jitter; each applied to an image with probability 0.5
#: (the flips and grayscale at severity 3 change half the images), in this order, as torchvision's Random*
#: transforms in a Compose would
SEED_AUGMENTATIONS = (
    {"name": "affine", "p": 0.5},
    {"name": "grayscale"},
    {"name": "hflip"},
    {"name": "vflip"},
    {"name": "rotation", "p": 0.5},
    {"name": "perspective", "p": 0.5},
    {"name": "color-jitter", "p": 0.5},
)
VIEWS = ("clean", "augmented", "fgsm", "bim")
#: row -> the views it trains on (model-hardening weights 1, the others 0), in the seed's order
MODELS = {
    "normal": ("clean",),
    "augmented": ("augmented",),
    "fgsm": ("fgsm",),
    "bim": ("bim",),
    "all": VIEWS,
}
SOURCE = "normal"
#: the seed's Table 1 (top-1 on Tiny ImageNet val), quoted exactly, and its row labels
SEED_TABLE = {
    "normal": ("Wide ResNet (Trained on Normal Images)", (0.6489, 0.4224, 0.198, 0.1067)),
    "augmented": ("Wide ResNet (Trained on Augmented Images)", (0.6747, 0.596, 0.2898, 0.2166)),
    "fgsm": ("ResNet (Trained on FGSM Attack Adversarial Inputs)", (0.4714, 0.3007, 0.4045, 0.4141)),
    "bim": ("ResNet (Trained on BIM Attack Adversarial Inputs)", (0.4891, 0.3063, 0.4306, 0.4505)),
    "all": ("Wide ResNet (Trained on Normal + Augmented + FGSM Adversarial + BIM Adversarial Images)",
            (0.6189, 0.5494, 0.4768, 0.5205)),
}
SEED_SETS = ("clean", "augmented", "fgsm", "bim")
WHITE_BOX = ("fgsm white-box", "bim white-box")


def train(args, data: common.Data, row: str, reference: Any) -> Any:
    """Model ``row`` trained by the model-hardening defense on its views (attacks on ``reference``)."""
    from harness.registry import create_defense

    weights = {f"{view}_weight": float(view in MODELS[row]) for view in VIEWS}
    model = common.backbone(args, data.num_classes, data.image_shape)
    trainer = create_defense("model-hardening", framework="torch", **common.training_knobs(args), **weights,
                             augmentations=list(SEED_AUGMENTATIONS), eps=args.eps, bim_steps=common.SEED_BIM_STEPS,
                             reference_model=reference)
    out_dir = common.run_dir(args, NAME, row)
    trainer.fit(model, (data.train_images, data.train_labels), None, out_dir=out_dir, resume=out_dir is not None)
    return model


def validation_sets(args, data: common.Data, source: Any) -> dict[str, tuple[Any, Any]]:
    """Set name -> (uint8 images, attack on the evaluated model or None): the seed's four sets and two more."""
    from harness.augment import resolve_augmentations
    from harness.frameworks import quantize_within_budget
    from harness.registry import create_attack
    from harness_torch import runtime

    fgsm = create_attack("fgsm", framework="torch", eps=args.eps)
    bim = create_attack("bim", framework="torch", eps=args.eps, steps=common.SEED_BIM_STEPS)
    augmented = runtime.augment_images(resolve_augmentations(SEED_AUGMENTATIONS, "torch"), data.val_images,
                                       seed=args.seed)

    def crafted_on_source(attack):  # the seed's fixed adversarial validation images, stored as images
        adversarial = runtime.adversarial_images(source, data.val_images, data.val_labels, attack)
        return quantize_within_budget(adversarial, data.val_images, args.eps)

    return {"clean": (data.val_images, None), "augmented": (augmented, None),
            "fgsm": (crafted_on_source(fgsm), None), "bim": (crafted_on_source(bim), None),
            "fgsm white-box": (data.val_images, fgsm), "bim white-box": (data.val_images, bim)}


def evaluate(model: Any, data: common.Data, sets: dict[str, tuple[Any, Any]]) -> dict[str, dict[str, float]]:
    from harness_torch import runtime

    results = {}
    for name, (images, attack) in sets.items():
        metrics = runtime.accuracy(model, images, data.val_labels, attack=attack)
        results[name] = {"top1": metrics["top1"], "top5": metrics["top5"]}
    return results


def run(args) -> dict[str, Any]:
    from harness.progress import stage

    common.setup(args)
    data = common.load_data(args, quick=(300, 150))
    print(data.describe() + f"; eps {args.eps:.4f} ({args.eps * 255:.3g}/255), BIM k={common.SEED_BIM_STEPS}, "
          f"{args.epochs} epochs per model", flush=True)
    models: dict[str, Any] = {}
    results: dict[str, dict[str, dict[str, float]]] = {}
    train_seconds: dict[str, float] = {}
    sets = None
    with stage("table 1", len(MODELS)) as report:
        for row in MODELS:
            started = time.perf_counter()
            reference = None if row == SOURCE else models[SOURCE]
            uses_source = any(view in MODELS[row] for view in ("fgsm", "bim"))
            models[row] = train(args, data, row, reference if uses_source else None)
            train_seconds[row] = round(time.perf_counter() - started, 1)
            if sets is None:  # the source model is trained first: its adversarial sets are crafted once
                sets = validation_sets(args, data, models[SOURCE])
            results[row] = evaluate(models[row], data, sets)
            report.done(f"{row}: " + ", ".join(f"{s} {results[row][s]['top1']:.1%}" for s in sets)
                        + f" ({train_seconds[row]:.0f} s training)")
    return {"data": data.describe(), "eps": args.eps, "eps_over_255": args.eps * 255,
            "bim_steps": common.SEED_BIM_STEPS, "augmentations": list(SEED_AUGMENTATIONS),
            "models": {row: [f"{v}_weight" for v in MODELS[row]] for row in MODELS},
            "results": results, "train_seconds": train_seconds,
            "seed_table": {row: dict(zip(SEED_SETS, figures)) for row, (_, figures) in SEED_TABLE.items()}}


def tables(payload: dict[str, Any]) -> str:
    """Top-1 ours next to the seed's, then top-5 and the white-box columns."""
    results = payload["results"]
    top1 = [[row] + [v for s, seed in zip(SEED_SETS, SEED_TABLE[row][1]) for v in (results[row][s]["top1"], seed)]
            for row in results]
    header = ["model"] + [h for s in SEED_SETS for h in (f"{s} ours", "seed")]
    extra = [[row] + [results[row][s]["top5"] for s in SEED_SETS] + [results[row][s]["top1"] for s in WHITE_BOX]
             for row in results]
    extra_header = ["model"] + [f"{s} top-5" for s in SEED_SETS] + [f"{s} top-1" for s in WHITE_BOX]
    return ("Top-1 (FGSM/BIM crafted on the 'normal' model, as the seed did):\n"
            + common.markdown_table(header, top1) + "\nTop-5, and white-box attacks on each model itself:\n"
            + common.markdown_table(extra_header, extra))


def main(argv=None) -> int:
    return common.torch_main(argv, __doc__.split("\n\n")[0], NAME, run, tables, cpu_epochs=30, full_epochs=10)


if __name__ == "__main__":
    sys.exit(common.run(main))
