"""Every registered torch augmentation: contract, severity, per-sample randomness, determinism."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from harness import registry  # noqa: E402
from harness.errors import UsageError  # noqa: E402
from harness_torch import augmentations as A  # noqa: E402
from harness_torch.plugin import harness_register_augmentations  # noqa: E402

SPECS = {spec.name: spec for spec in harness_register_augmentations()}
NAMES = sorted(SPECS)


def smooth_images(n=32, channels=3, size=16, seed=0) -> torch.Tensor:
    """Random smooth colour images in (0, 1): structure for geometry, colour for jitter."""
    generator = torch.Generator().manual_seed(seed)
    low = torch.rand(n, channels, 4, 4, generator=generator)
    return torch.nn.functional.interpolate(low, size=size, mode="bilinear", align_corners=False).clamp(0.02, 0.98)


def change(aug, x, seed=0) -> float:
    return (aug(x, generator=torch.Generator().manual_seed(seed)) - x).abs().mean().item()


def test_every_expected_augmentation_is_registered():
    expected = {"hflip", "vflip", "random-crop", "color-jitter", "grayscale", "rotation", "affine",
                "perspective", "gaussian-noise", "shot-noise", "salt-and-pepper"}
    assert set(NAMES) == expected
    assert set(registry.list_augmentations(framework="torch")) >= expected
    for spec in SPECS.values():
        assert spec.framework == "torch" and spec.description and "severity" in spec.params


@pytest.mark.parametrize("channels", [3, 1])
@pytest.mark.parametrize("name", NAMES)
def test_keeps_shape_dtype_and_range(name, channels):
    x = smooth_images(channels=channels)
    for severity in (1, 3, 5):
        aug = SPECS[name].create(severity=severity, seed=0)
        for inputs in (x, x.double(), torch.zeros_like(x), torch.ones_like(x)):
            out = aug(inputs)
            assert out.shape == x.shape and out.dtype == torch.float32
            assert out.min() >= 0.0 and out.max() <= 1.0
            assert torch.isfinite(out).all()


@pytest.mark.parametrize("name", NAMES)
def test_severity_5_changes_images_more_than_severity_1(name):
    x = smooth_images(n=64)
    mild, strong = (change(SPECS[name].create(severity=s), x) for s in (1, 5))
    assert strong > mild, (mild, strong)
    assert strong > 0.005


@pytest.mark.parametrize("name", NAMES)
def test_each_image_gets_its_own_randomness(name):
    x = smooth_images(n=1).repeat(32, 1, 1, 1)
    out = SPECS[name].create(severity=4)(x, generator=torch.Generator().manual_seed(0))
    distinct = {tuple(image.flatten().tolist()) for image in out}
    assert len(distinct) > 1


@pytest.mark.parametrize("name", NAMES)
def test_deterministic_given_generator_or_seed(name):
    x = smooth_images()
    aug = SPECS[name].create(severity=4)
    a = aug(x, generator=torch.Generator().manual_seed(3))
    b = aug(x, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    seeded_1, seeded_2 = SPECS[name].create(severity=4, seed=9), SPECS[name].create(severity=4, seed=9)
    first = seeded_1(x)
    assert torch.equal(first, seeded_2(x))
    assert not torch.equal(first, seeded_1(x))  # the seeded stream advances between batches


@pytest.mark.parametrize("name", NAMES)
def test_p_zero_is_the_identity(name):
    x = smooth_images()
    assert torch.equal(SPECS[name].create(severity=5, p=0.0)(x), x)


def test_flips_and_grayscale_are_exact():
    x = smooth_images()
    assert torch.equal(A.HFlip(p=1.0)(x), x.flip(-1))
    assert torch.equal(A.VFlip(p=1.0)(x), x.flip(-2))
    gray = A.Grayscale(p=1.0)(x)
    assert gray.shape[1] == 3 and torch.equal(gray[:, 0], gray[:, 1]) and torch.equal(gray[:, 1], gray[:, 2])
    expected = (0.2989 * x[:, 0] + 0.587 * x[:, 1] + 0.114 * x[:, 2])
    assert torch.allclose(gray[:, 0], expected, atol=1e-3)
    single = smooth_images(channels=1)
    assert torch.equal(A.Grayscale(p=1.0)(single), single)


def test_severity_sets_flip_share():
    x = smooth_images(n=400)
    for severity, share in zip((1, 3, 5), (0.1, 0.5, 0.9)):
        out = A.HFlip(severity=severity)(x, generator=torch.Generator().manual_seed(0))
        flipped = (out != x).flatten(1).any(1).float().mean().item()
        assert abs(flipped - share) < 0.08


def test_explicit_parameters_override_severity():
    assert A.Rotation(severity=1, degrees=30.0).params["degrees"] == 30.0
    assert A.Rotation(severity=5).params["degrees"] == 20.0
    assert A.GaussianNoise(severity=2).params["sigma"] == 0.08
    x = smooth_images()
    assert torch.equal(A.GaussianNoise(severity=5, sigma=0.0)(x), x)
    assert torch.equal(A.RandomCrop(severity=5, padding=0)(x), x)
    assert torch.equal(A.ColorJitter(severity=5, brightness=0.0, contrast=0.0, saturation=0.0, hue=0.0)(x), x)
    assert torch.allclose(A.Rotation(degrees=0.0)(x), x, atol=1e-6)


def test_random_crop_shifts_content():
    x = smooth_images(n=8, size=16)
    out = A.RandomCrop(padding=2, padding_mode="reflect")(x, generator=torch.Generator().manual_seed(1))
    # every output is a window of the reflect-padded image
    padded = torch.nn.functional.pad(x, [2, 2, 2, 2], mode="reflect")
    for image, source in zip(out, padded):
        windows = source.unfold(1, 16, 1).unfold(2, 16, 1)  # C, 5, 5, 16, 16
        assert any(torch.equal(windows[:, i, j], image) for i in range(5) for j in range(5))


def test_color_jitter_on_one_channel_uses_brightness_and_contrast_only():
    x = smooth_images(channels=1)
    out = A.ColorJitter(severity=5, brightness=0.0, contrast=0.0)(x)  # saturation/hue alone: skipped
    assert torch.equal(out, x)
    assert not torch.equal(A.ColorJitter(severity=5)(x), x)


def test_compose_and_one_of():
    x = smooth_images()
    assert torch.equal(A.Compose([A.HFlip(p=1.0), A.HFlip(p=1.0)])(x), x)
    chain = A.Compose([A.make("rotation"), A.make("gaussian-noise")])
    a = chain(x, generator=torch.Generator().manual_seed(0))
    assert torch.equal(a, chain(x, generator=torch.Generator().manual_seed(0)))
    one_of = A.OneOf([A.HFlip(p=1.0), A.VFlip(p=1.0)], seed=0)
    out = one_of(x)
    hflipped = (out == x.flip(-1)).flatten(1).all(1)
    vflipped = (out == x.flip(-2)).flatten(1).all(1)
    assert bool((hflipped | vflipped).all()) and hflipped.any() and vflipped.any()


@pytest.mark.parametrize(
    "make, word",
    [(lambda: A.Rotation(severity=6), "severity"), (lambda: A.HFlip(p=1.5), "p"),
     (lambda: A.Rotation(degrees=-1.0), "degrees"), (lambda: A.GaussianNoise(sigma=-0.1), "sigma"),
     (lambda: A.ShotNoise(lam=0.0), "lam"), (lambda: A.SaltAndPepper(amount=2.0), "amount"),
     (lambda: A.RandomCrop(padding=-1), "padding"), (lambda: A.Affine(scale=1.0), "scale"),
     (lambda: A.Perspective(interpolation="cubicle"), "interpolation"), (lambda: A.HFlip(seed="a"), "seed")],
)
def test_invalid_parameters_are_usage_errors(make, word):
    with pytest.raises(UsageError, match=word):
        make()


def test_invalid_inputs_are_usage_errors():
    aug = A.HFlip()
    with pytest.raises(UsageError, match="N, C, H, W"):
        aug(torch.rand(3, 8, 8))
    with pytest.raises(UsageError, match="float"):
        aug(torch.zeros(2, 3, 8, 8, dtype=torch.uint8))
    with pytest.raises(UsageError, match="Unknown augmentation"):
        A.make("hflipp")


def test_registry_create_rejects_unknown_parameters():
    with pytest.raises(UsageError, match="degree"):
        registry.create_augmentation("rotation", degree=3)
    assert isinstance(registry.create_augmentation("rotation", degrees=5.0), A.Rotation)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", NAMES)
def test_runs_on_the_tensor_device(name):
    x = smooth_images().cuda()
    out = SPECS[name].create(severity=5)(x, generator=torch.Generator().manual_seed(0))
    assert out.device == x.device and out.shape == x.shape
    cpu = SPECS[name].create(severity=5)(x.cpu(), generator=torch.Generator().manual_seed(0))
    assert torch.allclose(out.cpu(), cpu, atol=1e-3)
