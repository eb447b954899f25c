"""Any augmentation in any framework's training batches and in split recipes, through one call contract.

Every augmentation is called ``aug(x, *, generator)`` and returns the same type,
shape and dtype. The layout follows the framework of its registry spec:

======  =================================================  ==========================
layout  ``x``                                              ``generator``
======  =================================================  ==========================
any     uint8 numpy (N, H, W, C), C = 1 or 3               ``numpy.random.Generator``
torch   float32 ``torch.Tensor`` (N, C, H, W) in [0, 1]    ``torch.Generator``
tf      float32 ``tf.Tensor`` (N, H, W, C) in [0, 1]       ``tf.random.Generator``
======  =================================================  ==========================

:func:`resolve_augmentations` binds names, ``{"name": ..., **params}`` tables or
callables to their layout (:class:`BoundAugmentation`); :func:`augment_batch`
applies them to a framework's training batch, converting for framework-neutral
ones (float batch -> uint8 N,H,W,C numpy -> the augmentation with a numpy generator
seeded from the framework generator -> back); :func:`augment_images` applies them to
uint8 images with a seed (what split recipes do), :class:`AugmentStream` chunk by chunk with one
random stream (bounded memory, the same images). Nothing here imports torch or
tensorflow until a framework batch is converted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from .errors import PluginError, UsageError

__all__ = ["LAYOUTS", "AugmentStream", "BoundAugmentation", "augment_batch", "augment_images", "resolve_augmentations"]

#: layout (a spec's framework) -> what its augmentations take
LAYOUTS = {
    "any": "uint8 numpy (N, H, W, C) with a numpy.random.Generator",
    "torch": "float32 torch.Tensor (N, C, H, W) in [0, 1] with a torch.Generator",
    "tf": "float32 tf.Tensor (N, H, W, C) in [0, 1] with a tf.random.Generator",
}


@dataclass(frozen=True)
class BoundAugmentation:
    """An augmentation with its layout ("any", "torch" or "tf") and its name (for errors)."""

    augmentation: Callable[..., Any]
    layout: str
    name: str

    def __post_init__(self) -> None:
        if self.layout not in LAYOUTS:
            raise PluginError(f"augmentation '{self.name}': layout must be one of {', '.join(LAYOUTS)}, "
                              f"got {self.layout!r}")

    def __call__(self, x: Any, *, generator: Any) -> Any:
        """``augmentation(x, generator=generator)``; PluginError when it returns another type, shape or dtype."""
        out = self.augmentation(x, generator=generator)
        _check_output(self.name, x, out)
        return out

    def __repr__(self) -> str:
        return repr(self.augmentation)


def _describe(x: Any) -> str:
    return f"{type(x).__name__} {tuple(getattr(x, 'shape', ()))} {getattr(x, 'dtype', '?')}"


def _check_output(name: str, x: Any, out: Any) -> None:
    same_type = isinstance(out, np.ndarray) if isinstance(x, np.ndarray) else type(out) is type(x)
    same = (same_type and tuple(getattr(out, "shape", ())) == tuple(getattr(x, "shape", ()))
            and getattr(out, "dtype", None) == getattr(x, "dtype", None))
    if not same:
        raise PluginError(f"augmentation '{name}' broke its contract: it returned {_describe(out)} for "
                          f"{_describe(x)} (an augmentation returns the same type, shape and dtype)")


def _bind(spec: Any, framework: str | None) -> BoundAugmentation:
    from .registry import get_augmentation

    if isinstance(spec, str):
        name, params = spec, {}
    elif isinstance(spec, Mapping) and "name" in spec:
        name, params = spec["name"], {k: v for k, v in spec.items() if k != "name"}
    else:
        raise UsageError(f"an augmentation is a name, a {{'name': ..., **params}} table or a callable; got {spec!r}")
    plugin = get_augmentation(name, framework=framework)
    return BoundAugmentation(plugin.create(**params), plugin.framework, name)


def resolve_augmentations(specs: Sequence[Any], framework: str) -> list[BoundAugmentation]:
    """Bound augmentations for ``framework``'s training from names, ``{"name": ..., **params}`` tables or callables.

    A name takes the plugin registered for ``framework`` when there is one, else the
    framework-neutral ("any") one; a callable uses its ``layout`` attribute when it has one
    (the built-in augmentations and corruptions do), else ``framework``'s layout.
    """
    bound = []
    for spec in specs:
        if isinstance(spec, BoundAugmentation):
            bound.append(spec)
        elif callable(spec):
            name = getattr(spec, "name", None) or type(spec).__name__
            bound.append(BoundAugmentation(spec, getattr(spec, "layout", None) or framework, str(name)))
        else:
            bound.append(_bind(spec, framework))
    return bound


def _neutral_in_batch(augmentation: BoundAugmentation, x: Any, framework: str, generator: Any) -> Any:
    """A framework-neutral augmentation on a float framework batch: through uint8 N,H,W,C numpy and back."""
    from .frameworks import get_runtime

    runtime = get_runtime(framework).RUNTIME
    rng = None if generator is None else np.random.default_rng(runtime.numpy_seed(generator))
    return runtime.from_uint8(augmentation(runtime.to_uint8(x), generator=rng), x)


def augment_batch(augmentations: Sequence[Any], x: Any, *, framework: str, generator: Any) -> Any:
    """``augmentations`` applied in order to a training batch ``x`` of ``framework`` ("torch" or "tf"),
    drawing from the framework ``generator`` (the trainer's); callables are bound as by
    :func:`resolve_augmentations`."""
    for augmentation in resolve_augmentations(augmentations, framework):
        if augmentation.layout == framework:
            x = augmentation(x, generator=generator)
        elif augmentation.layout == "any":
            x = _neutral_in_batch(augmentation, x, framework, generator)
        else:
            raise UsageError(f"augmentation '{augmentation.name}' is a {augmentation.layout} augmentation; "
                             f"it cannot augment {framework} batches",
                             hint=f"use the {framework} version of '{augmentation.name}' or a framework-neutral one")
    return x


def augment_images(augmentations: Sequence[BoundAugmentation], images: np.ndarray, seed: int,
                   batch_size: int = 256) -> np.ndarray:
    """uint8 N,H,W,C ``images`` after ``augmentations`` (bound ones, applied in order), reproducible from ``seed``.

    Framework-neutral ones alone get a ``numpy.random.default_rng(seed)`` shared in order;
    with a framework's augmentations among them, the list runs through that framework's
    runtime (``augment_images``, one framework generator seeded with ``seed``; the neutral
    ones are converted as in training). Mixing torch and tf augmentations is a UsageError.
    """
    return AugmentStream(augmentations, seed, batch_size)(images)


class AugmentStream:
    """:func:`augment_images` over consecutive chunks of one image sequence, one random stream running on.

    ``stream = AugmentStream(augmentations, seed)``; ``stream(chunk)`` for each chunk in order. With a
    framework's augmentations (batches of ``batch_size`` from one framework generator) or a single
    framework-neutral one that draws per block of :data:`harness.chunks.BATCH` images (the corruptions),
    chunks holding whole batches give the images of one :func:`augment_images` call on the whole sequence:
    what split building and evaluation rely on to stream without changing a result. Several neutral ones run
    in order on each chunk.
    """

    def __init__(self, augmentations: Sequence[BoundAugmentation], seed: int, batch_size: int = 256):
        self.augmentations = list(augmentations)
        self.seed = int(seed)
        self.batch_size = batch_size
        frameworks = sorted({a.layout for a in self.augmentations} - {"any"})
        if len(frameworks) > 1:
            raise UsageError("one augmentation list cannot mix torch and tf augmentations: "
                             + ", ".join(f"{a.name} ({a.layout})" for a in self.augmentations))
        self.runtime = None
        if frameworks:
            from .frameworks import get_runtime

            self.runtime = get_runtime(frameworks[0])
            self.generator = self.runtime.RUNTIME.seeded_generator(self.seed)
        else:
            self.generator = np.random.default_rng(self.seed)

    def __call__(self, images: np.ndarray) -> np.ndarray:
        """The next chunk of uint8 N,H,W,C ``images``, augmented."""
        images = np.asarray(images)
        if self.runtime is not None:
            return self.runtime.augment_images(self.augmentations, images, seed=self.seed,
                                               batch_size=self.batch_size, generator=self.generator)
        for augmentation in self.augmentations:
            images = augmentation(images, generator=self.generator)
        return images
