"""Spec lists every framework plugin package registers the same way (one place, not one per framework).

The torch and TensorFlow packages implement the same augmentations and attacks under the same
names and parameters (from :mod:`harness.perturb.severity` and :mod:`harness.attacks`); their
defenses take the shared :class:`harness.training.TrainingConfig` knobs plus their own.
Nothing here imports a framework: factories are lazy ``"module:attribute"`` paths.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping

from .specs import AttackSpec, AugmentationSpec, BackboneSpec, DefenseSpec

#: augmentation name -> class name in each framework package's ``augmentations`` module
AUGMENTATION_CLASSES = {
    "hflip": "HFlip",
    "vflip": "VFlip",
    "random-crop": "RandomCrop",
    "color-jitter": "ColorJitter",
    "grayscale": "Grayscale",
    "rotation": "Rotation",
    "affine": "Affine",
    "perspective": "Perspective",
    "gaussian-noise": "GaussianNoise",
    "shot-noise": "ShotNoise",
    "salt-and-pepper": "SaltAndPepper",
}


def augmentation_specs(package: str, framework: str) -> list[AugmentationSpec]:
    """The shared augmentations, implemented by ``package.augmentations``."""
    from .perturb.severity import AUGMENTATION_DESCRIPTIONS, AUGMENTATION_PARAMS

    return [
        AugmentationSpec(name=name, factory=f"{package}.augmentations:{cls}",
                         description=AUGMENTATION_DESCRIPTIONS[name], framework=framework,
                         params=dict(AUGMENTATION_PARAMS[name]))
        for name, cls in AUGMENTATION_CLASSES.items()
    ]


def attack_specs(package: str, framework: str) -> list[AttackSpec]:
    """FGSM, BIM and PGD with the shared parameters, implemented by ``package.attacks`` (FGSM, BIM, PGD)."""
    from .attacks import ATTACK_DESCRIPTIONS, ATTACK_PARAMS

    return [
        AttackSpec(name=name, factory=f"{package}.attacks:{name.upper()}", description=ATTACK_DESCRIPTIONS[name],
                   framework=framework, params=dict(params))
        for name, params in ATTACK_PARAMS.items()
    ]


def defense_specs(package: str, framework: str, defenses: Mapping[str, tuple[str, str]],
                  defense_params: Mapping[str, Mapping[str, Any]]) -> list[DefenseSpec]:
    """Defenses ``name -> (factory in package.defenses, description)``: training knobs + their own."""
    from .training import TrainingConfig

    trainer_params = TrainingConfig.defaults()
    return [
        DefenseSpec(name=name, factory=f"{package}.defenses:{attribute}", description=description,
                    framework=framework, params={**trainer_params, **defense_params[name]})
        for name, (attribute, description) in defenses.items()
    ]


#: parameters of every ImageNet application backbone (torchvision or Keras) with the seeds' 512 head
APPLICATION_BACKBONE_PARAMS = {"pretrained": False, "weights": None, "head_hidden": 512, "dropout": 0.0,
                               "min_size": 32}


def application_backbone_specs(package: str, framework: str, backbones: Mapping[str, str]) -> list[BackboneSpec]:
    """ImageNet application backbones ``name -> description``, factories ``package.backbones:<name>``."""
    return [
        BackboneSpec(name=name, factory=f"{package}.backbones:{name}", description=description,
                     framework=framework, params=dict(APPLICATION_BACKBONE_PARAMS))
        for name, description in backbones.items()
    ]


def application_factory(arch: str, build: Callable[..., Any], doc: str) -> Callable[..., Any]:
    """The factory of application backbone ``arch``: keyword parameters of :data:`APPLICATION_BACKBONE_PARAMS`
    (their defaults), calling ``build(arch, num_classes, input_shape, pretrained, weights, head_hidden, dropout,
    min_size)``; one signature for every framework's application backbones."""
    defaults = APPLICATION_BACKBONE_PARAMS

    def factory(num_classes: int, input_shape: tuple[int, int, int] = (64, 64, 3),
                pretrained: bool = defaults["pretrained"], weights: Any = defaults["weights"],
                head_hidden: int = defaults["head_hidden"], dropout: float = defaults["dropout"],
                min_size: int = defaults["min_size"]) -> Any:
        return build(arch, num_classes, input_shape, pretrained, weights, head_hidden, dropout, min_size)

    factory.__name__ = factory.__qualname__ = arch
    factory.__doc__ = doc
    return factory
