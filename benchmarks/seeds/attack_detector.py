"""The Robust Image Classification seed's attack-type detector: a classifier telling clean, FGSM and BIM apart.

The seed (/work/shared/seeds/003, section 4) trained a ResNet on "an equally partitioned dataset of normal
images, FGSM-generated images, and BIM-generated images" and found it "no better than random (33 percent
accuracy)", with "effectively all images ... predicted as benign". Here:

1. a *source* classifier is trained on the train split (the harness's ``standard`` defense): the model whose
   gradients craft the attacks, as the seed's Wide ResNet-50 did;
2. the train and val splits become detection sets: each split is shuffled (seeded) and cut into equal
   thirds, kept clean, attacked with FGSM, attacked with BIM (k = 5; eps as in Table 1), all crafted on the
   source and stored as uint8 images inside the budget; the label is the third (0 clean, 1 FGSM, 2 BIM).
   The thirds are disjoint, so no image's content appears under two labels;
3. detectors, each trained with the ``standard`` defense on the detection train set and scored on the
   detection val set (top-1, its 95% Wilson interval, the confusion matrix):

   - ``pixels``: a fresh backbone on the images themselves (the seed's setup as it describes it);
   - ``jpeg-75``: the same after every image of all three thirds went through JPEG at quality 75 (Pillow's
     default; ``harness_corruptions``' jpeg-compression): the hypothesis that the seed's generated
     datasets were written to disk as JPEG files, like Tiny ImageNet's own, and the compression removed
     the perturbation's pixel-level pattern;
   - ``frozen-features``: the source classifier's body frozen, only a new three-way head trained
     (``unfreeze="progressive"`` with one stage): the hypothesis that the detector was a transfer-learned
     classifier whose features, trained for object classes, do not keep the perturbation.

    python benchmarks/seeds/attack_detector.py            # digits + small-cnn, a few minutes on 2 cores
    python benchmarks/seeds/attack_detector.py --quick    # seconds: checks the plumbing
    python benchmarks/seeds/attack_detector.py --full [--data DIR] [--precision bf16]   # Tiny ImageNet, WRN-50-2
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

import common  # noqa: E402

NAME = "attack_detector"
CLASSES = ("clean", "fgsm", "bim")
JPEG_QUALITY = 75
#: the seed's reported detector accuracy (three balanced classes: chance)
SEED_ACCURACY = 1 / 3


def detection_set(args, source: Any, images: np.ndarray, labels: np.ndarray, seed: int
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, dict[str, float]]]:
    """(uint8 images, detection labels, class labels, how each attack's perturbations look): disjoint thirds
    kept clean / FGSM / BIM-5 on ``source``, in shuffled order."""
    from harness.frameworks import quantize_within_budget
    from harness.registry import create_attack
    from harness_torch import runtime

    attacks = {1: create_attack("fgsm", framework="torch", eps=args.eps),
               2: create_attack("bim", framework="torch", eps=args.eps, steps=common.SEED_BIM_STEPS)}
    order = np.random.default_rng(seed).permutation(len(labels))
    kind = np.arange(len(order)) % len(CLASSES)  # equal thirds (up to one image)
    out = np.array(images[order])
    shapes = {}
    for k, attack in attacks.items():
        chosen = kind == k
        adversarial = runtime.adversarial_images(source, out[chosen], labels[order][chosen], attack)
        attacked = quantize_within_budget(adversarial, out[chosen], args.eps)
        shapes[CLASSES[k]] = perturbation_shape(out[chosen], attacked, args.eps)
        out[chosen] = attacked
    return out, kind.astype(np.int64), labels[order], shapes


def perturbation_shape(clean: np.ndarray, attacked: np.ndarray, eps: float) -> dict[str, float]:
    """Share of pixel values changed, share at the budget's edge (|delta| = the whole budget in grey levels),
    and the mean |delta| over the budget: FGSM puts every unclipped value at the edge; BIM's iterates may not."""
    delta = np.abs(attacked.astype(np.int16) - clean.astype(np.int16))
    budget = np.floor(eps * 255.0 + 1e-6)
    return {"changed": float((delta > 0).mean()), "at_edge": float((delta == budget).mean()),
            "mean_abs_over_eps": float(delta.mean() / budget)}


def jpeg(images: np.ndarray) -> np.ndarray:
    """Every image through JPEG at :data:`JPEG_QUALITY` and back (uint8 N,H,W,C)."""
    from harness_corruptions.corruptions import jpeg_compression

    return jpeg_compression(images, None, JPEG_QUALITY)


def train_detector(args, data: common.Data, train: tuple[np.ndarray, np.ndarray], source: Any | None) -> Any:
    """A three-way detector: a fresh backbone (``source`` None), or ``source``'s frozen body with a new head."""
    from harness.registry import create_defense

    knobs = common.training_knobs(args)
    if source is None:
        detector = common.backbone(args, len(CLASSES), data.image_shape)
    else:  # transfer learning: the classifier's features, only the head trains
        detector = common.backbone(args, len(CLASSES), data.image_shape, pretrained=False)
        detector.body.load_state_dict(source.body.state_dict())
        knobs.update(unfreeze="progressive", stage_lrs=[(knobs["lr"], knobs["lr"] / 10)])
    create_defense("standard", framework="torch", **knobs).fit(detector, train, None)
    return detector


def score(detector: Any, images: np.ndarray, kinds: np.ndarray) -> dict[str, Any]:
    """Top-1 with its 95% Wilson interval, the confusion matrix (rows: truth) and the share predicted clean."""
    from harness.scoring.stats import wilson_interval
    from harness_torch import runtime

    predicted = runtime.predict_logits(detector, images).argmax(axis=1)
    correct = int((predicted == kinds).sum())
    attacked_right = int(((predicted > 0) == (kinds > 0)).sum())  # clean vs attacked, whichever attack
    confusion = np.zeros((len(CLASSES), len(CLASSES)), dtype=int)
    np.add.at(confusion, (kinds, predicted), 1)
    return {"accuracy": correct / len(kinds), "correct": correct, "count": int(len(kinds)),
            "ci95": list(wilson_interval(correct, len(kinds))),
            "clean_vs_attacked": attacked_right / len(kinds),
            "clean_vs_attacked_ci95": list(wilson_interval(attacked_right, len(kinds))),
            "predicted_clean": float((predicted == 0).mean()), "confusion": confusion.tolist()}


def run(args) -> dict[str, Any]:
    from harness.progress import stage
    from harness.registry import create_defense
    from harness_torch import runtime

    common.setup(args)
    data = common.load_data(args, quick=(300, 150))
    print(data.describe() + f"; eps {args.eps:.4f} ({args.eps * 255:.3g}/255), BIM k={common.SEED_BIM_STEPS}, "
          f"{args.epochs} epochs per model", flush=True)
    variants: dict[str, tuple[Callable[[np.ndarray], np.ndarray], bool]] = {
        "pixels": (lambda images: images, False),
        f"jpeg-{JPEG_QUALITY}": (jpeg, False),
        "frozen-features": (lambda images: images, True),
    }
    results: dict[str, Any] = {}
    with stage("attack detector", 1 + len(variants)) as report:
        source = common.backbone(args, data.num_classes, data.image_shape)
        create_defense("standard", framework="torch", **common.training_knobs(args)).fit(
            source, (data.train_images, data.train_labels), None, out_dir=common.run_dir(args, NAME, "source"),
            resume=args.full)
        source_top1 = runtime.accuracy(source, data.val_images, data.val_labels)["top1"]
        train = detection_set(args, source, data.train_images, data.train_labels, args.seed)
        val = detection_set(args, source, data.val_images, data.val_labels, args.seed + 1)
        source_attacked = {name: runtime.accuracy(source, val[0][val[1] == k], val[2][val[1] == k])["top1"]
                           for k, name in enumerate(CLASSES)}
        report.done(f"source classifier: val top-1 {source_top1:.1%}; on the detection val thirds "
                    + ", ".join(f"{k} {v:.1%}" for k, v in source_attacked.items()))
        for name, (transform, frozen) in variants.items():
            started = time.perf_counter()
            detector = train_detector(args, data, (transform(train[0]), train[1]), source if frozen else None)
            results[name] = {**score(detector, transform(val[0]), val[1]),
                             "train_seconds": round(time.perf_counter() - started, 1)}
            r = results[name]
            report.done(f"{name}: {r['accuracy']:.1%} [{r['ci95'][0]:.1%}, {r['ci95'][1]:.1%}], "
                        f"predicted clean {r['predicted_clean']:.1%}")
    return {"data": data.describe(), "eps": args.eps, "eps_over_255": args.eps * 255,
            "bim_steps": common.SEED_BIM_STEPS, "classes": list(CLASSES), "source_val_top1": source_top1,
            "perturbations_val": val[3],
            "source_top1_on_detection_val": source_attacked, "detection_train_images": int(len(train[1])),
            "seed_accuracy": SEED_ACCURACY, "detectors": results}


def tables(payload: dict[str, Any]) -> str:
    def interval(pair):
        return f"[{pair[0]:.1%}, {pair[1]:.1%}]"

    rows = [[name, r["accuracy"], interval(r["ci95"]), r["clean_vs_attacked"], interval(r["clean_vs_attacked_ci95"]),
             r["predicted_clean"], " / ".join(" ".join(str(v) for v in row) for row in r["confusion"])]
            for name, r in payload["detectors"].items()]
    rows.append(["seed (ResNet, Tiny ImageNet)", SEED_ACCURACY, "-", "-", "-", "~100% (\"effectively all\")", "-"])
    shapes = [[name, v["changed"], v["at_edge"], v["mean_abs_over_eps"]]
              for name, v in payload["perturbations_val"].items()]
    return (common.markdown_table(["detector", "3-way accuracy", "95% interval", "clean vs attacked", "95% interval",
                                   "predicted clean", "confusion (rows clean / fgsm / bim)"], rows)
            + f"\nPerturbations of the val thirds ({payload['data']}):\n"
            + common.markdown_table(["attack", "values changed", "at the budget's edge", "mean |delta| / eps"], shapes))


def main(argv=None) -> int:
    return common.torch_main(argv, __doc__.split("\n\n")[0], NAME, run, tables, cpu_epochs=30, full_epochs=5)


if __name__ == "__main__":
    sys.exit(common.run(main))
