"""The augmentation classes, written once over a per-framework :class:`AugmentOps` adapter.

Parameter checking, severity resolution (:mod:`.severity`), the per-image choice
with probability ``p`` and the order in which random parameters are drawn live
here; a framework package supplies an :class:`AugmentOps` object holding only
framework calls (random draws, flips, crops, warps, colour adjustments) and gets
its classes from :func:`augmentation_classes`, as :func:`harness.attacks.attack_classes`
does for attacks. Nothing here imports torch or tensorflow.

Call contract of every class: ``aug(x, *, generator=None)`` on a float batch in
[0, 1] of the framework's layout (torch N,C,H,W, TensorFlow N,H,W,C), returning
a float32 batch of the same shape. Randomness comes from ``generator`` (the
framework's generator), else from the augmentation's own generator (built from
``seed``, advancing between calls), else from the framework's global RNG.
"""

from __future__ import annotations

from typing import Any, Callable, ClassVar, Protocol, Sequence

from ..errors import UsageError
from . import noise as _noise
from .severity import AUGMENTATION_PARAMS, check_augmentation_params, check_number, check_severity, resolve

__all__ = ["AUGMENTATION_CLASS_NAMES", "AugmentOps", "augmentation_classes"]

#: jitter adjustments in drawing order
JITTERS = ("brightness", "contrast", "saturation", "hue")


class AugmentOps(Protocol):
    """The framework calls the augmentation classes need; ``x`` is a float32 batch in the framework's layout.

    Per-image values (``uniform``) come back in whatever form the framework's
    warps and adjustments take; ``choose`` and ``randint`` return Python lists.
    """

    #: framework name ("torch", "tf") and how its errors name the batch layout
    framework: str
    #: interpolation modes the warps support
    interpolations: tuple[str, ...]

    def check_images(self, x: Any, name: str) -> Any:
        """``x`` as a float32 batch of the framework's layout; UsageError naming augmentation ``name`` otherwise."""

    def seeded(self, seed: int) -> Any:
        """A new framework generator seeded with ``seed``."""

    def generator(self, generator: Any, name: str) -> Any:
        """The generator to draw from (``generator`` may be None: the global RNG); UsageError for a wrong kind."""

    def shape(self, x: Any) -> tuple[int, int, int, int]:
        """(images, height, width, channels) of the batch."""

    def choose(self, n: int, p: float, generator: Any) -> list[int]:
        """Indices of the images (out of ``n``) whose uniform draw falls below ``p``."""

    def uniform(self, n: int, low: float, high: float, generator: Any) -> Any:
        """``n`` per-image values uniform in [low, high]."""

    def randint(self, n: int, high: int, generator: Any) -> list[int]:
        """``n`` ints uniform in [0, high)."""

    def replace(self, x: Any, indices: list[int], fn: Callable[[Any], Any]) -> Any:
        """A float32 copy of ``x`` whose images at ``indices`` are replaced by ``fn(those images)``."""

    def clip01(self, x: Any) -> Any:
        """``x`` clipped to [0, 1]."""

    def hflip(self, x: Any) -> Any: ...

    def vflip(self, x: Any) -> Any: ...

    def grayscale(self, x: Any) -> Any:
        """RGB batch -> its luma repeated over 3 channels."""

    def crop(self, x: Any, pad: int, tops: list[int], lefts: list[int], padding_mode: str, fill: float) -> Any:
        """Pad every image by ``pad`` pixels and crop the window at (tops[i], lefts[i]) back to its size."""

    def color_jitter(self, x: Any, names: list[str], factors: dict[str, Any], generator: Any) -> Any:
        """Apply the adjustments ``names`` (factors per image) in a random order per image, drawn from ``generator``."""

    def rotate(self, x: Any, angles: Any, interpolation: str, fill: float) -> Any: ...

    def affine(self, x: Any, tx: Any, ty: Any, scale: Any, shear_x: Any, shear_y: Any, interpolation: str,
               fill: float) -> Any:
        """Translate (pixels), scale and shear (degrees) each image about its centre."""

    def perspective(self, x: Any, dx: list[Any], dy: list[Any], interpolation: str, fill: float) -> Any:
        """Move corners (top-left, top-right, bottom-right, bottom-left) inwards by (dx[k], dy[k]) per image."""

    def noise_ops(self, generator: Any) -> _noise.ArrayOps:
        """The :class:`~harness.perturb.noise.ArrayOps` of this framework drawing from ``generator``."""


class Augmentation:
    """Base class: applies :meth:`apply` to a random subset (probability ``p``) of the batch."""

    name: ClassVar[str] = ""
    ops: ClassVar[AugmentOps]
    #: the layout it takes (see :mod:`harness.augment`): the framework of its ops
    layout: ClassVar[str]
    #: registered name -> class, of this framework (set by :func:`augmentation_classes`)
    table: ClassVar[dict[str, type]] = {}

    def __init__(self, severity: int = 3, p: float | None = 1.0, seed: int | None = None, **params: Any):
        self.severity = check_severity(severity)
        self.params = self.check_params(resolve(self.name, self.severity, **params))
        table_p = self.params.pop("p", None)
        p = table_p if p is None else p
        self.p = check_number("p", 1.0 if p is None else p, 0.0, 1.0)
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise UsageError(f"seed must be an integer or None, got {seed!r}")
        self.seed = seed
        self._generator = self.ops.seeded(seed) if seed is not None else None

    def check_params(self, params: dict[str, Any]) -> dict[str, Any]:
        """Validate and normalise the resolved parameters (the checks every framework shares)."""
        return check_augmentation_params(self.name, self.severity, params)

    @classmethod
    def make(cls, name: str, severity: int = 3, **params: Any) -> "Augmentation":
        """Build augmentation ``name`` (a registered name, e.g. ``"rotation"``) of this framework."""
        if name not in cls.table:
            raise UsageError(f"Unknown augmentation '{name}'. Available: {', '.join(cls.table)}")
        return cls.table[name](severity=severity, **params)

    def apply(self, x: Any, generator: Any) -> Any:
        """Augment every image of ``x`` (already selected), each with its own random parameters."""
        raise NotImplementedError

    def __call__(self, x: Any, *, generator: Any = None) -> Any:
        x = self.ops.check_images(x, self.name)
        generator = self.ops.generator(generator if generator is not None else self._generator, self.name)
        n = self.ops.shape(x)[0]
        if n == 0:
            return self.ops.replace(x, [], None)
        chosen = self.ops.choose(n, self.p, generator)
        return self.ops.clip01(self.ops.replace(x, chosen, lambda images: self.apply(images, generator)))

    def __repr__(self) -> str:
        params = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"{type(self).__name__}(severity={self.severity}, p={self.p:g}{', ' if params else ''}{params})"


class _Flip(Augmentation):
    def __init__(self, severity: int = 3, p: float | None = None, seed: int | None = None):
        super().__init__(severity, p, seed)


class HFlip(_Flip):
    """Horizontal flip; severity sets the share of images flipped (p 0.1 ... 0.9)."""

    name = "hflip"

    def apply(self, x, generator):
        return self.ops.hflip(x)


class VFlip(_Flip):
    """Vertical flip; severity sets the share of images flipped (p 0.1 ... 0.9)."""

    name = "vflip"

    def apply(self, x, generator):
        return self.ops.vflip(x)


class Grayscale(_Flip):
    """Grayscale that keeps the channel count; 1-channel images are left as they are."""

    name = "grayscale"

    def apply(self, x, generator):
        channels = self.ops.shape(x)[3]
        if channels == 1:
            return x
        if channels != 3:
            raise UsageError(f"grayscale needs 1 or 3 channels, got {channels}")
        return self.ops.grayscale(x)


class RandomCrop(Augmentation):
    """Pad by ``padding`` pixels (default: a severity-scaled share of the image side), crop back at random."""

    name = "random-crop"

    def __init__(self, severity: int = 3, p: float = 1.0, padding: int | None = None,
                 padding_mode: str = "constant", fill: float = 0.0, seed: int | None = None):
        super().__init__(severity, p, seed, padding=padding, padding_mode=padding_mode, fill=fill)

    def padding_for(self, height: int, width: int) -> int:
        """Padding in pixels for an image of this size."""
        if "padding" in self.params:
            return self.params["padding"]
        return max(1, round(self.params["padding_fraction"] * min(height, width)))

    def apply(self, x, generator):
        n, height, width, _ = self.ops.shape(x)
        pad = self.padding_for(height, width)
        if pad == 0:
            return x
        tops, lefts = self.ops.randint(n, 2 * pad + 1, generator), self.ops.randint(n, 2 * pad + 1, generator)
        return self.ops.crop(x, pad, tops, lefts, self.params["padding_mode"], self.params["fill"])


class ColorJitter(Augmentation):
    """Random brightness, contrast, saturation and hue, in a random order per image.

    Factors are drawn from [1 - b, 1 + b] (hue: [-h, h], in turns); saturation and
    hue are skipped on 1-channel images. Brightness, contrast and saturation blend
    as torchvision does (with black, the mean grey level, the grey image).
    """

    name = "color-jitter"

    def __init__(self, severity: int = 3, p: float = 1.0, brightness: float | None = None,
                 contrast: float | None = None, saturation: float | None = None, hue: float | None = None,
                 seed: int | None = None):
        super().__init__(severity, p, seed, brightness=brightness, contrast=contrast,
                         saturation=saturation, hue=hue)

    def apply(self, x, generator):
        n, _, _, channels = self.ops.shape(x)
        if channels not in (1, 3):
            raise UsageError(f"color-jitter needs 1 or 3 channels, got {channels}")
        p = self.params
        factors = {name: (self.ops.uniform(n, -p[name], p[name], generator) if name == "hue" else
                          self.ops.uniform(n, max(0.0, 1 - p[name]), 1 + p[name], generator))
                   for name in JITTERS}
        names = [name for name in (JITTERS if channels == 3 else JITTERS[:2]) if p[name] > 0]
        return self.ops.color_jitter(x, names, factors, generator)


class _Geometric(Augmentation):
    def check_params(self, params):
        params = super().check_params(params)
        if params["interpolation"] not in self.ops.interpolations:
            raise UsageError(f"interpolation {params['interpolation']!r} is not available in "
                             f"{self.ops.framework}'s image warps",
                             hint=f"use {' or '.join(map(repr, self.ops.interpolations))}")
        return params

    def _warp_args(self) -> tuple[str, float]:
        return self.params["interpolation"], self.params["fill"]


class Rotation(_Geometric):
    """Rotation by an angle drawn from [-degrees, degrees] (3 ... 20 degrees by severity)."""

    name = "rotation"

    def __init__(self, severity: int = 3, p: float = 1.0, degrees: float | None = None,
                 interpolation: str = "bilinear", fill: float = 0.0, seed: int | None = None):
        super().__init__(severity, p, seed, degrees=degrees, interpolation=interpolation, fill=fill)

    def apply(self, x, generator):
        angles = self.ops.uniform(self.ops.shape(x)[0], -self.params["degrees"], self.params["degrees"], generator)
        return self.ops.rotate(x, angles, *self._warp_args())


class Affine(_Geometric):
    """Random translation (share of the size), scale (1 +- scale) and x/y shear (+- degrees)."""

    name = "affine"

    def __init__(self, severity: int = 3, p: float = 1.0, translate: float | None = None,
                 scale: float | None = None, shear: float | None = None, interpolation: str = "bilinear",
                 fill: float = 0.0, seed: int | None = None):
        super().__init__(severity, p, seed, translate=translate, scale=scale, shear=shear,
                         interpolation=interpolation, fill=fill)

    def apply(self, x, generator):
        n, height, width, _ = self.ops.shape(x)
        p = self.params
        uniform = self.ops.uniform
        tx = uniform(n, -p["translate"] * width, p["translate"] * width, generator)
        ty = uniform(n, -p["translate"] * height, p["translate"] * height, generator)
        scale = uniform(n, 1 - p["scale"], 1 + p["scale"], generator)
        sx = uniform(n, -p["shear"], p["shear"], generator)
        sy = uniform(n, -p["shear"], p["shear"], generator)
        return self.ops.affine(x, tx, ty, scale, sx, sy, *self._warp_args())


class Perspective(_Geometric):
    """Perspective warp moving each corner by up to ``distortion`` x half the image side."""

    name = "perspective"

    def __init__(self, severity: int = 3, p: float = 1.0, distortion: float | None = None,
                 interpolation: str = "bilinear", fill: float = 0.0, seed: int | None = None):
        super().__init__(severity, p, seed, distortion=distortion, interpolation=interpolation, fill=fill)

    def apply(self, x, generator):
        n, height, width, _ = self.ops.shape(x)
        # like v2.RandomPerspective, but with sub-pixel offsets so small images still move
        bound_w, bound_h = self.params["distortion"] * (width / 2), self.params["distortion"] * (height / 2)
        dx = [self.ops.uniform(n, 0.0, bound_w, generator) for _ in range(4)]
        dy = [self.ops.uniform(n, 0.0, bound_h, generator) for _ in range(4)]
        return self.ops.perspective(x, dx, dy, *self._warp_args())


class _Noise(Augmentation):
    def apply(self, x, generator):
        return _noise.NOISES[self.name](x, self.ops.noise_ops(generator), **self.params)


class GaussianNoise(_Noise):
    """Additive Gaussian noise, sigma 0.04 ... 0.18 by severity (Tiny-ImageNet-C)."""

    name = "gaussian-noise"

    def __init__(self, severity: int = 3, p: float = 1.0, sigma: float | None = None, seed: int | None = None):
        super().__init__(severity, p, seed, sigma=sigma)


class ShotNoise(_Noise):
    """Poisson shot noise, lam 500 ... 50 photons by severity (Tiny-ImageNet-C)."""

    name = "shot-noise"

    def __init__(self, severity: int = 3, p: float = 1.0, lam: float | None = None, seed: int | None = None):
        super().__init__(severity, p, seed, lam=lam)


class SaltAndPepper(_Noise):
    """Salt-and-pepper noise on a share ``amount`` (0.01 ... 0.07) of the pixel values."""

    name = "salt-and-pepper"

    def __init__(self, severity: int = 3, p: float = 1.0, amount: float | None = None,
                 salt_vs_pepper: float = 0.5, seed: int | None = None):
        super().__init__(severity, p, seed, amount=amount, salt_vs_pepper=salt_vs_pepper)


class Compose:
    """Apply augmentations one after the other, sharing the generator."""

    ops: ClassVar[AugmentOps]

    def __init__(self, augmentations: Sequence[Callable[..., Any]]):
        self.augmentations = list(augmentations)

    def __call__(self, x: Any, *, generator: Any = None) -> Any:
        x = self.ops.check_images(x, "Compose")
        for augmentation in self.augmentations:
            x = augmentation(x, generator=generator)
        return x

    def __repr__(self) -> str:
        return f"Compose({self.augmentations!r})"


class OneOf:
    """Apply one augmentation per image, picked uniformly at random (the seed's augmented set)."""

    ops: ClassVar[AugmentOps]

    def __init__(self, augmentations: Sequence[Callable[..., Any]], seed: int | None = None):
        if not augmentations:
            raise UsageError("OneOf needs at least one augmentation")
        self.augmentations = list(augmentations)
        self._generator = self.ops.seeded(seed) if seed is not None else None

    def __call__(self, x: Any, *, generator: Any = None) -> Any:
        x = self.ops.check_images(x, "OneOf")
        generator = self.ops.generator(generator if generator is not None else self._generator, "OneOf")
        n = self.ops.shape(x)[0]
        if n == 0:
            return self.ops.replace(x, [], None)
        picks = self.ops.randint(n, len(self.augmentations), generator)
        out = x
        for k, augmentation in enumerate(self.augmentations):
            index = [i for i, pick in enumerate(picks) if pick == k]
            out = self.ops.replace(out, index, lambda images: augmentation(images, generator=generator))
        return out

    def __repr__(self) -> str:
        return f"OneOf({self.augmentations!r})"


#: the classes :func:`augmentation_classes` returns, in order
AUGMENTATION_CLASS_NAMES = ("Augmentation", "HFlip", "VFlip", "Grayscale", "RandomCrop", "ColorJitter", "Rotation",
                            "Affine", "Perspective", "GaussianNoise", "ShotNoise", "SaltAndPepper", "Compose",
                            "OneOf")
_GENERIC = {cls.__name__: cls for cls in (Augmentation, HFlip, VFlip, Grayscale, RandomCrop, ColorJitter, Rotation,
                                          Affine, Perspective, GaussianNoise, ShotNoise, SaltAndPepper, Compose,
                                          OneOf)}


def augmentation_classes(ops: AugmentOps, module: str) -> tuple[type, ...]:
    """Every class of :data:`AUGMENTATION_CLASS_NAMES` bound to ``ops``, living in ``module``.

    The first is the framework's ``Augmentation`` base; every augmentation class derives
    from it (``isinstance(aug, <framework>.Augmentation)`` holds) and from its generic class.
    ``base.table`` maps registered names to classes and ``base.make(name, ...)`` builds one.
    """
    members = {"ops": ops, "layout": ops.framework, "__module__": module}
    base = type("Augmentation", (Augmentation,), {**members, "__doc__": Augmentation.__doc__})
    classes: list[type] = [base]
    for class_name in AUGMENTATION_CLASS_NAMES[1:]:
        generic = _GENERIC[class_name]
        bases = (generic, base) if issubclass(generic, Augmentation) else (generic,)
        classes.append(type(class_name, bases, {**members, "__doc__": generic.__doc__}))
    base.table = {cls.name: cls for cls in classes if issubclass(cls, Augmentation) and cls.name}
    assert set(base.table) == set(AUGMENTATION_PARAMS), "severity tables and classes disagree"
    return tuple(classes)
