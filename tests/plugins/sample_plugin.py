"""A sample third-party plugin: a framework-neutral (numpy) attack, augmentation and dataset, and a
torch backbone and defense (torch imported only when they are created)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np

from harness import hookimpl
from harness.specs import AttackSpec, AugmentationSpec


class UniformNoiseAttack:
    """Adds uniform noise of size eps (a weak, model-free 'attack')."""

    def __init__(self, eps: float = 0.1, seed: int = 0):
        self.eps = eps
        self.config = SimpleNamespace(eps=eps, norm="linf")
        self.rng = np.random.default_rng(seed)

    def __call__(self, model, x, y=None, target=None):
        noise = self.rng.uniform(-self.eps, self.eps, size=x.shape)
        return np.clip(x + noise, 0.0, 1.0)


def invert(severity: int = 1):
    return lambda x, *, generator=None: 1.0 - x


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
    return [AugmentationSpec(name="sample-invert", factory=invert, description="Sample plugin: invert",
                             params={"severity": 1})]


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


def centroid_model(num_classes: int, input_shape=(6, 6, 1)):
    """Nearest-centroid classifier over flattened pixels, as a torch module (logits: minus squared distances)."""
    import torch

    class CentroidModel(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.register_buffer("centroids", torch.zeros(num_classes, int(np.prod(input_shape))))

        def forward(self, x):
            return -((x.flatten(1)[:, None, :] - self.centroids[None]) ** 2).sum(-1)

    return CentroidModel()


class CentroidTrainer:
    def fit(self, model, train, val=None, out_dir=None, *, resume=False):
        import torch

        images = torch.as_tensor(np.array(train.images), dtype=torch.float32).permute(0, 3, 1, 2) / 255.0
        labels = torch.as_tensor(np.asarray(train.labels))
        model.centroids.copy_(torch.stack([images[labels == c].flatten(1).mean(0)
                                           for c in range(len(model.centroids))]))
        return []


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
            factory=centroid_model,
            framework="torch",
            description="Sample plugin: nearest centroid",
        )
    ]


@hookimpl
def harness_register_defenses():
    from harness.specs import DefenseSpec

    return [DefenseSpec(name="sample-centroid-fit", factory=CentroidTrainer, description="Sample plugin: fit centroids",
                        framework="torch")]
