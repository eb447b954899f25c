"""Registers the PyTorch plugins. Factories are lazy paths, so this module never imports torch."""

from __future__ import annotations

from harness import hookimpl
from harness.attacks.art import art_attack_specs
from harness.attacks.autoattack import autoattack_specs
from harness.framework_specs import application_backbone_specs, attack_specs, augmentation_specs, defense_specs
from harness.specs import BackboneSpec

M = "harness_torch"

_TORCHVISION_BACKBONES = {
    "mobilenet_v2": "MobileNetV2 (torchvision), ImageNet-pretrained on request, 512 head",
    "resnet50": "ResNet-50 (torchvision), ImageNet-pretrained on request, 512 head",
    "resnext50_32x4d": "ResNeXt-50 32x4d (torchvision), ImageNet-pretrained on request, 512 head",
    "wide_resnet50_2": "Wide ResNet-50-2 (torchvision): the seed's best Tiny ImageNet model",
    "efficientnet_b0": "EfficientNet-B0 (torchvision), ImageNet-pretrained on request, 512 head",
}


@hookimpl
def harness_register_backbones():
    specs = [
        BackboneSpec(
            name="small-cnn",
            factory=f"{M}.backbones:small_cnn",
            description="Two-conv CNN that trains in seconds on digits",
            framework="torch",
            params={"width": 32, "hidden": 128, "dropout": 0.0},
        )
    ]
    return specs + application_backbone_specs(M, "torch", _TORCHVISION_BACKBONES)


#: Each defense's own knobs and defaults (the trainer knobs come from harness.training.TrainingConfig).
#: harness_torch.defenses reads them from here: one place for every default. eps None: the norm's
#: default budget (8/255 for linf, 0.5 for l2); step sizes None: 2.5 * eps / steps (harness.attacks).
DEFENSE_PARAMS = {
    "standard": {},
    "model-hardening": {
        "clean_weight": 1.0,
        "augmented_weight": 1.0,
        "fgsm_weight": 1.0,
        "bim_weight": 1.0,
        "eps": None,
        "norm": "linf",
        "bim_steps": 10,
        "bim_step_size": None,
        "reference_model": None,
    },
    "pgd-adversarial-training": {
        "eps": None,
        "norm": "linf",
        "steps": 10,
        "step_size": None,
        "random_start": True,
    },
    "trades": {
        "beta": 6.0,
        "eps": None,
        "norm": "linf",
        "steps": 10,
        "step_size": None,
        "random_start": True,
    },
}

_DEFENSES = {
    "standard": ("standard", "Cross-entropy training on (optionally augmented) clean images"),
    "model-hardening": (
        "model_hardening",
        "The seed's model hardening: every batch trains on clean + augmented + FGSM + BIM images",
    ),
    "pgd-adversarial-training": (
        "pgd_adversarial_training",
        "PGD adversarial training (Madry et al. 2018): train on L-inf/L2 PGD examples",
    ),
    "trades": (
        "trades",
        "TRADES (Zhang et al. 2019): cross-entropy + beta * KL(clean || adversarial)",
    ),
}


@hookimpl
def harness_register_defenses():
    return defense_specs(M, "torch", _DEFENSES, DEFENSE_PARAMS)


@hookimpl
def harness_register_augmentations():
    return augmentation_specs(M, "torch")


@hookimpl
def harness_register_attacks():
    """FGSM, BIM, PGD (the shared driver), the native AutoAttack members apgd-ce, apgd-t, square and the ART
    attacks art-apgd-ce, art-apgd-t, art-square."""
    return attack_specs(M, "torch") + autoattack_specs(M, "torch") + art_attack_specs(M, "torch")
