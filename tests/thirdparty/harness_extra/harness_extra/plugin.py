"""The package's hooks. Factories are lazy paths: listing plugins imports neither torch nor the plugins."""

from harness import hookimpl
from harness.specs import AttackSpec, AugmentationSpec


@hookimpl
def harness_register_attacks():
    return [AttackSpec(name="extra-rfgsm", factory="harness_extra.attack:RandomStepFGSM", framework="torch",
                       description="R+FGSM: a random sign step of alpha, then one gradient-sign step of eps - alpha",
                       params={"eps": 8 / 255, "alpha": None, "seed": 0})]


@hookimpl
def harness_register_augmentations():
    return [AugmentationSpec(name="extra-invert-patch", factory="harness_extra.augmentation:InvertPatch",
                             framework="any", description="Inverts a random square patch of each image (probability p)",
                             params={"severity": 3, "p": 1.0})]
