"""A sample third-party plugin: one attack and one augmentation, framework-neutral (numpy)."""

from __future__ import annotations

import numpy as np

from harness import hookimpl
from harness.specs import AttackSpec, AugmentationSpec


class UniformNoiseAttack:
    """Adds uniform noise of size eps (a weak, model-free 'attack')."""

    def __init__(self, eps: float = 0.1, seed: int = 0):
        self.eps = eps
        self.rng = np.random.default_rng(seed)

    def __call__(self, model, x, y=None):
        noise = self.rng.uniform(-self.eps, self.eps, size=x.shape)
        return np.clip(x + noise, 0.0, 1.0)


def invert(severity: int = 1):
    return lambda x: 1.0 - x


@hookimpl
def harness_register_attacks():
    return [
        AttackSpec(
            name="sample-uniform",
            factory=UniformNoiseAttack,
            description="Sample plugin: uniform noise",
            params={"eps": 0.1, "seed": 0},
        )
    ]


@hookimpl
def harness_register_augmentations():
    return [AugmentationSpec(name="sample-invert", factory=invert, description="Sample plugin: invert", params={"severity": 1})]


class StripesSource:
    """Two classes of 6x6 grey images: horizontal vs vertical stripes."""

    params = {"n": 20}

    def plan(self, *, skip_bad=False):
        from harness.data import ArraySplit, DatasetPlan

        horizontal = np.zeros((6, 6, 1), np.uint8)
        horizontal[::2] = 255
        images = np.stack([horizontal if i % 2 == 0 else horizontal.transpose(1, 0, 2) for i in range(20)])
        labels = np.arange(20) % 2
        return DatasetPlan(["h", "v"], ["horizontal", "vertical"], (6, 6), 1, {"train": ArraySplit(images, labels)})


class CentroidModel:
    """Nearest-centroid classifier over flattened pixels."""

    def __init__(self, num_classes: int, input_shape=(6, 6, 1)):
        self.centroids = np.zeros((num_classes, int(np.prod(input_shape))))

    def predict(self, images):
        flat = images.reshape(len(images), -1) / 255.0
        return np.argmin(((flat[:, None, :] - self.centroids[None]) ** 2).sum(-1), axis=1)


class CentroidTrainer:
    def fit(self, model, images, labels):
        flat = images.reshape(len(images), -1) / 255.0
        model.centroids = np.stack([flat[labels == c].mean(0) for c in range(len(model.centroids))])
        return model


@hookimpl
def harness_register_datasets():
    from harness.specs import DatasetSpec

    return [DatasetSpec(name="sample-stripes", factory=StripesSource, description="Sample plugin: stripes")]


@hookimpl
def harness_register_backbones():
    from harness.specs import BackboneSpec

    return [
        BackboneSpec(
            name="sample-centroid",
            factory=CentroidModel,
            description="Sample plugin: nearest centroid",
        )
    ]


@hookimpl
def harness_register_defenses():
    from harness.specs import DefenseSpec

    return [DefenseSpec(name="sample-centroid-fit", factory=CentroidTrainer, description="Sample plugin: fit centroids")]
