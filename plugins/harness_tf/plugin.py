"""Registers the TensorFlow plugins. Factories are lazy paths, so this module never imports tensorflow."""

from __future__ import annotations

from harness import hookimpl
from harness.attacks.art import art_attack_specs
from harness.framework_specs import application_backbone_specs, attack_specs, augmentation_specs, defense_specs
from harness.specs import AttackSpec, BackboneSpec

M = "harness_tf"

_KERAS_BACKBONES = {
    "mobilenet_v2": "MobileNetV2 (Keras), ImageNet-pretrained on request, 512 head; the seed's Tiny ImageNet choice",
    "efficientnet_b0": "EfficientNetB0 (Keras), ImageNet-pretrained on request, 512 head",
    "densenet121": "DenseNet121 (Keras), ImageNet-pretrained on request, 512 head",
    "nasnet_mobile": "NASNetMobile (Keras), ImageNet-pretrained on request, 512 head",
}


@hookimpl
def harness_register_backbones():
    specs = [
        BackboneSpec(
            name="nsl-cnn",
            factory=f"{M}.backbones:nsl_cnn",
            description="The NSL tutorial CNN (conv 16-32-32, max-pooling, dense 64), logits out",
            framework="tf",
            params={"filters": [16, 32, 32], "kernel_size": 3, "pool_size": 2, "hidden": 64, "dropout": 0.0},
        )
    ]
    return specs + application_backbone_specs(M, "tf", _KERAS_BACKBONES)


#: Each defense's own knobs and defaults (the trainer knobs come from harness.training.TrainingConfig).
#: harness_tf.defenses reads them from here: one place for every default. The NSL knobs are
#: nsl.configs.make_adv_reg_config's (feature_mask aside); defaults follow the seeds.
DEFENSE_PARAMS = {
    "standard": {},
    "nsl-adversarial-regularization": {
        "multiplier": 0.2,
        "adv_step_size": 0.2,
        "adv_grad_norm": "infinity",
        "pgd_iterations": 1,
        "pgd_epsilon": None,
        "clip_value_min": 0.0,
        "clip_value_max": 1.0,
        "random_init": False,
    },
}

_DEFENSES = {
    "standard": ("standard", "Cross-entropy training on (optionally augmented) clean images (Keras)"),
    "nsl-adversarial-regularization": (
        "nsl_adversarial_regularization",
        "NSL adversarial regularization: cross-entropy + multiplier * loss on adversarial neighbours",
    ),
}


@hookimpl
def harness_register_defenses():
    return defense_specs(M, "tf", _DEFENSES, DEFENSE_PARAMS)


@hookimpl
def harness_register_augmentations():
    return augmentation_specs(M, "tf")


#: nsl-perturb's knobs (NSL's adversarial-neighbour config; neighbours are always clipped to [0, 1])
NSL_PERTURB_PARAMS = {
    "reference_model": None,
    "adv_step_size": 0.2,
    "adv_grad_norm": "infinity",
    "pgd_iterations": 1,
    "pgd_epsilon": None,
    "random_init": False,
    "mode": "true-label",
}


@hookimpl
def harness_register_attacks():
    """FGSM, BIM, PGD (the shared driver), the ART attacks apgd-ce, apgd-t, square (no native ones for TensorFlow
    yet) and nsl-perturb."""
    specs = attack_specs(M, "tf") + art_attack_specs(M, "tf", prefix="")
    specs.append(
        AttackSpec(
            name="nsl-perturb",
            factory=f"{M}.attacks:NSLPerturb",
            description="NSL adversarial neighbours (perturb_on_batch) from a reference model, clipped to [0, 1]",
            framework="tf",
            params=dict(NSL_PERTURB_PARAMS),
        )
    )
    return specs
