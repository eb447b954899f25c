"""The corruption plugins: registry names, contract, determinism, severity, noise statistics, JPEG levels."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from harness import registry
from harness.errors import UsageError
from harness.robustness.corruption import ALL_CORRUPTIONS, CORRUPTIONS, HOLDOUT_CORRUPTIONS, registry_name
from harness_corruptions.corruptions import FUNCTIONS, Corruption, default_size_scale
from harness_corruptions.tables import SEVERITY

#: corruptions that draw no random numbers
DETERMINISTIC = {"defocus-blur", "zoom-blur", "brightness", "contrast", "pixelate", "jpeg-compression",
                 "gaussian-blur", "saturate"}
#: Tiny-ImageNet-C's own tables do not raise the mean pixel distance with every severity step for these
#: (measured on 256 images; see docs/robustness.md): elastic's severity 1 is a pure +-8% affine jitter,
#: frost trades image weight for frost weight, glass blur's larger blur smooths its own shuffling,
#: saturate lowers saturation at 1-2 and raises it at 3-5; pixelate's box resampling at non-integer ratios
#: (57, 51, 44 ... px at 64; 7, 6, 5, 4, 4 at 8) moves edges by uneven amounts; spatter is water at 1-3
#: and mud at 4-5, two different effects.
NOT_MONOTONE = {
    (64, 3): {"elastic-transform", "frost", "glass-blur", "saturate", "pixelate", "spatter"},
    (8, 1): {"elastic-transform", "glass-blur", "pixelate", "spatter"},
}


def rng(seed: int) -> np.random.Generator:
    """The generator a corruption draws from (the call contract: ``aug(images, *, generator)``)."""
    return np.random.default_rng(seed)


def scenes(n: int = 8, size: int = 64, seed: int = 0) -> np.ndarray:
    """Smooth colour images (random 4x4 colours, bilinear up-sampling) with some hard edges."""
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    low = rng.random((n, 4, 4, 3))
    images = ndimage.zoom(low, (1, size / 4, size / 4, 1), order=1)
    images[:, size // 3 : size // 3 + 2] = 0.95  # a bright bar: edges for the blurs
    return np.clip(images * 255, 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def images() -> dict[tuple[int, int], np.ndarray]:
    from harness.data import load_dataset

    digits = np.array(load_dataset("digits").split("test").images[:32])
    return {(64, 3): scenes(), (8, 1): digits}


def test_every_corruption_is_registered_as_any_framework_augmentation():
    assert len(CORRUPTIONS) == 15 and len(HOLDOUT_CORRUPTIONS) == 4
    assert set(ALL_CORRUPTIONS) == set(FUNCTIONS) == set(SEVERITY)
    assert registry.list_augmentations("corruption/*") == sorted(f"corruption/{n}" for n in CORRUPTIONS)
    assert registry.list_augmentations("corruption-holdout/*") == sorted(
        f"corruption-holdout/{n}" for n in HOLDOUT_CORRUPTIONS)
    for name in ALL_CORRUPTIONS:
        spec = registry.get_augmentation(registry_name(name))
        assert spec.framework == "any" and spec.description
        assert set(spec.params) == {"severity", "seed", "size_scale"}
        assert registry_name(name) in registry.list_augmentations(framework="torch")
    # the torch noise augmentations keep their names
    assert registry.get_augmentation("gaussian-noise").framework == "torch"


def test_tiny_imagenet_c_tables():
    assert [row[0] for row in SEVERITY["gaussian-noise"][1]] == [0.04, 0.08, 0.12, 0.15, 0.18]
    assert [row[0] for row in SEVERITY["shot-noise"][1]] == [250, 100, 50, 30, 15]
    assert [row[0] for row in SEVERITY["jpeg-compression"][1]] == [65, 58, 50, 40, 25]
    assert default_size_scale(64, 64) == 1.0
    assert Corruption("defocus-blur", 5).parameters(64, 64) == {"radius": 3, "alias_blur": 0.1}
    small = Corruption("defocus-blur", 5).parameters(16, 16)
    assert small["radius"] == pytest.approx(1.5) and small["alias_blur"] == pytest.approx(0.05)
    assert Corruption("elastic-transform", 5).parameters(64, 64)["alpha"] == pytest.approx(64 * 0.16)


@pytest.mark.parametrize("shape", [(64, 3), (8, 1)], ids=["64x64x3", "8x8x1"])
@pytest.mark.parametrize("name", ALL_CORRUPTIONS)
def test_contract_determinism_and_severity(images, name, shape):
    x = images[shape]
    distances = []
    for severity in range(1, 6):
        corrupt = registry.create_augmentation(registry_name(name), severity=severity)
        out = corrupt(x, generator=rng(7))
        assert out.shape == x.shape and out.dtype == np.uint8
        np.testing.assert_array_equal(out, corrupt(x, generator=rng(7)))
        np.testing.assert_array_equal(out, Corruption(name, severity, seed=7)(x))  # factory seed = call seed
        if name not in DETERMINISTIC and severity == 3:
            assert not np.array_equal(out, corrupt(x, generator=rng(8))), "a new seed must give new noise"
        distances.append(float(np.abs(out.astype(np.float64) - x).mean()))
    assert distances[-1] > 0.1, distances
    if name not in NOT_MONOTONE[shape]:
        assert all(b >= a - 1e-9 for a, b in zip(distances, distances[1:])), distances


def test_batches_give_the_same_images_as_one_call(images):
    x = images[(8, 1)]
    corrupt = Corruption("snow", 4)
    whole = corrupt(x, generator=rng(3))
    assert whole.shape == x.shape
    np.testing.assert_array_equal(corrupt(x[:0], generator=rng(3)), x[:0])
    odd = np.ones((1, 5, 7, 3), np.uint8) * 128  # odd, non-square sizes
    assert corrupt(odd, generator=rng(0)).shape == (1, 5, 7, 3)


@pytest.mark.parametrize("severity", range(1, 6))
def test_gaussian_and_speckle_noise_statistics(severity):
    grey = np.full((4, 64, 64, 3), 128, np.uint8)
    x = grey.astype(np.float64) / 255
    sigma = SEVERITY["gaussian-noise"][1][severity - 1][0]
    delta = Corruption("gaussian-noise", severity)(grey, generator=rng(0)) / 255.0 - x
    assert abs(delta.mean()) < 0.003
    assert delta.std() == pytest.approx(sigma, rel=0.05)  # clipping at 0 and 1 is rare at mid-grey
    speckle = SEVERITY["speckle-noise"][1][severity - 1][0]
    delta = Corruption("speckle-noise", severity)(grey, generator=rng(0)) / 255.0 - x
    assert delta.std() == pytest.approx(speckle * x.mean(), rel=0.05)


@pytest.mark.parametrize("severity", range(1, 6))
def test_shot_noise_is_poisson(severity):
    lam = SEVERITY["shot-noise"][1][severity - 1][0]
    grey = np.full((4, 64, 64, 3), 128, np.uint8)
    x = 128 / 255
    out = Corruption("shot-noise", severity)(grey, generator=rng(0)) / 255.0
    assert out.mean() == pytest.approx(x, abs=0.004)
    assert out.var() == pytest.approx(x / lam, rel=0.08)  # Poisson: variance = mean / lam in [0, 1] units


@pytest.mark.parametrize("severity", range(1, 6))
def test_impulse_noise_amount(severity):
    amount = SEVERITY["impulse-noise"][1][severity - 1][0]
    grey = np.full((4, 64, 64, 3), 128, np.uint8)
    out = Corruption("impulse-noise", severity)(grey, generator=rng(0))
    salt, pepper = np.mean(out == 255), np.mean(out == 0)
    assert salt + pepper == pytest.approx(amount, rel=0.1)
    assert salt == pytest.approx(pepper, rel=0.25)
    assert np.all((out == 0) | (out == 255) | (out == 128))


@pytest.mark.parametrize("channels", [3, 1])
def test_jpeg_quality_levels_match_pillow(channels):
    x = scenes(4)
    x = x if channels == 3 else x[..., :1]
    sizes = []
    for severity, quality in enumerate((65, 58, 50, 40, 25), start=1):
        out = Corruption("jpeg-compression", severity)(x)
        for image, got in zip(x, out):
            mode = "RGB" if channels == 3 else "L"
            buffer = io.BytesIO()
            Image.fromarray(image if channels == 3 else image[..., 0], mode).save(buffer, "JPEG", quality=quality)
            expected = np.asarray(Image.open(buffer))
            np.testing.assert_array_equal(got, expected if channels == 3 else expected[..., None])
        sizes.append(len(buffer.getvalue()))
    assert sizes == sorted(sizes, reverse=True)  # lower quality, smaller file


def test_brightness_and_contrast_formulas():
    x = scenes(2)
    f = x.astype(np.float64) / 255
    value = f.max(axis=-1, keepdims=True)
    expected = f * np.clip(value + 0.3, 0, 1) / value  # HSV value + 0.3, hue and saturation kept
    np.testing.assert_allclose(Corruption("brightness", 3)(x) / 255.0, expected, atol=0.5 / 255 + 1e-6)
    means = f.mean(axis=(1, 2), keepdims=True)
    np.testing.assert_allclose(Corruption("contrast", 5)(x) / 255.0, (f - means) * 0.05 + means,
                               atol=0.5 / 255 + 1e-6)


def test_grey_images_get_colour_corruptions_as_luma():
    grey = np.full((2, 16, 16, 1), 100, np.uint8)
    out = Corruption("saturate", 5)(grey)  # grey has hue 0: saturation 0.2 tints it red, luma falls
    assert out.shape == grey.shape and np.all(out < 100)
    assert np.array_equal(Corruption("saturate", 1)(grey), grey)


def test_bad_input_is_a_usage_error():
    with pytest.raises(UsageError, match="uint8 images shaped"):
        Corruption("fog")(np.zeros((2, 8, 8, 1), np.float32))
    with pytest.raises(UsageError, match="C = 1 or 3"):
        Corruption("fog")(np.zeros((2, 8, 8, 4), np.uint8))
    with pytest.raises(UsageError, match="severity"):
        registry.create_augmentation("corruption/fog", severity=6)
    with pytest.raises(UsageError, match="size_scale"):
        Corruption("fog", size_scale=0)
    with pytest.raises(UsageError, match="Unknown corruption 'fgo'"):
        Corruption("fgo")


def test_wrong_calls_name_the_corruption_and_the_contract():
    images = np.zeros((2, 8, 8, 3), np.uint8)
    with pytest.raises(UsageError, match="corruption 'fog' takes a numpy array"):
        Corruption("fog")(images.tolist())
    with pytest.raises(UsageError, match="corruption 'fog' draws from a numpy.random.Generator, got int"):
        Corruption("fog")(images, generator=3)
    with pytest.raises(TypeError):
        Corruption("fog")(images, seed=3)  # seed= is no longer the call contract: generator= is
    with pytest.raises(TypeError):
        Corruption("fog")(images, rng(0))  # the generator is keyword-only
    seeded = Corruption("gaussian-noise", 3, seed=5)
    np.testing.assert_array_equal(seeded(images), seeded(images))  # no generator: the factory seed, each call
    np.testing.assert_array_equal(seeded(images), Corruption("gaussian-noise", 3)(images, generator=rng(5)))


def test_size_scale_overrides_the_default():
    digits = scenes(2, size=8)
    default = Corruption("gaussian-blur", 5)(digits)
    as_64 = Corruption("gaussian-blur", 5, size_scale=1.0)(digits)
    assert np.abs(as_64.astype(int) - digits).mean() > np.abs(default.astype(int) - digits).mean()


def test_reference_implementation_where_it_still_runs():
    """imagecorruptions 1.1.2 (not a dependency) shares these formulas and ImageNet-C tables."""
    ic = pytest.importorskip("imagecorruptions.corruptions")
    x = scenes(2)
    for severity in range(1, 6):  # same tables in ImageNet-C and Tiny-ImageNet-C
        pairs = [("brightness", ic.brightness), ("contrast", ic.contrast)]
        if severity <= 4:  # ImageNet-C's saturate differs from Tiny-ImageNet-C's at 5 only
            pairs.append(("saturate", ic.saturate))
        for name, theirs in pairs:
            ours = Corruption(name, severity)(x).astype(int)
            reference = np.stack([np.uint8(theirs(image, severity)) for image in x]).astype(int)
            assert np.abs(ours - reference).max() <= 1, (name, severity)
    from harness_corruptions import filters

    f = x.astype(np.float32) / 255
    for factor in (1.06, 1.16, 1.31):
        zoomed = [ic.clipped_zoom(image, factor) for image in f]  # untrimmed there; trimmed by its callers
        top = [(z.shape[0] - 64) // 2 for z in zoomed]
        reference = np.stack([z[t : t + 64, t : t + 64] for z, t in zip(zoomed, top)])
        np.testing.assert_allclose(filters.clipped_zoom(f, factor), reference, atol=1e-5)
    np.testing.assert_allclose(filters.disk(3, 0.1), ic.disk(3, 0.1), atol=1e-6)
    for angle in (-40.0, 10.0):  # its numpy port of ImageMagick's motion blur
        reference = np.stack([ic._motion_blur(image * 255, radius=10, sigma=3, angle=angle) for image in f]) / 255
        np.testing.assert_allclose(filters.motion_blur(f, 10, 3, np.full(2, angle)), reference, atol=1e-5)
    cv2 = pytest.importorskip("cv2")  # imagecorruptions brings OpenCV: check our ports of its calls
    grey = (f[..., 0] * 255).astype(np.uint8)
    for low, high in ((50, 150), (20, 60)):
        np.testing.assert_array_equal(filters.canny(grey, low, high),
                                      np.stack([cv2.Canny(image, low, high) > 0 for image in grey]))
    np.testing.assert_array_equal(filters.equalize_hist(grey), np.stack([cv2.equalizeHist(i) for i in grey]))
    kernel = filters.disk(2.5, 0.01).astype(np.float32)
    np.testing.assert_allclose(filters.filter2d(f, kernel), np.stack([cv2.filter2D(i, -1, kernel) for i in f]),
                               atol=1e-5)


@pytest.mark.parametrize("mode", ["reflect", "mirror"])
def test_bilinear_matches_scipy_map_coordinates(mode):
    """Coordinates inside, just outside and far outside (borders wider than the image), other output sizes."""
    from scipy import ndimage

    from harness_corruptions import filters

    rng = np.random.default_rng(0)
    for shape, spread, out in [((3, 7, 5, 3), 0.5, (7, 5)), ((2, 6, 9, 1), 3.0, (4, 11)), ((2, 5, 4, 3), 12.0, (5, 4)),
                               ((2, 1, 6, 1), 4.0, (3, 6))]:
        x = rng.random(shape).astype(np.float32)
        rows = rng.uniform(-spread, shape[1] - 1 + spread, (shape[0],) + out)
        cols = rng.uniform(-spread, shape[2] - 1 + spread, (shape[0],) + out)
        expected = np.stack([
            np.stack([ndimage.map_coordinates(image[..., c], [r, q], order=1, mode=mode)
                      for c in range(shape[3])], axis=-1)
            for image, r, q in zip(x.astype(np.float64), rows, cols)])
        np.testing.assert_allclose(filters.bilinear(x, rows, cols, mode), expected, atol=1e-5)


def test_truncated_distance_is_scipys_exact_distance():
    from scipy import ndimage

    from harness_corruptions import filters

    rng = np.random.default_rng(0)
    for shape, share in [((6, 64, 64), 0.01), ((4, 30, 70), 0.001), ((4, 7, 3), 0.2)]:
        edges = rng.random(shape) < share
        edges[0] = False  # no edge at all: the limit everywhere
        expected = [np.minimum(ndimage.distance_transform_edt(~e), 20) if e.any() else np.full(e.shape, 20.0)
                    for e in edges]
        np.testing.assert_allclose(filters.truncated_distance(edges, 20), np.stack(expected), rtol=1e-6)


def test_listing_plugins_loads_no_corruption_code():
    import subprocess
    import sys

    code = ("import sys; from harness import registry; registry.list_augmentations('corruption*'); "
            "assert 'scipy' not in sys.modules and 'harness_corruptions.corruptions' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True)
