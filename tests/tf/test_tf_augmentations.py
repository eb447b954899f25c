"""Every registered TF augmentation: the torch contract (shape, range, severity, per-image randomness,
determinism), the same parameter checks, and the shared noise maths."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from harness import registry
from harness.errors import UsageError
from harness_tf import augmentations as A

NAMES = sorted(A.AUGMENTATIONS)


def smooth_images(n=32, channels=3, size=16, seed=0) -> tf.Tensor:
    """Random smooth colour images in (0, 1), N,H,W,C."""
    low = tf.random.stateless_uniform([n, 4, 4, channels], seed=[seed, 1])
    return tf.clip_by_value(tf.image.resize(low, [size, size], method="bilinear"), 0.02, 0.98)


def rng(seed=0) -> tf.random.Generator:
    return tf.random.Generator.from_seed(seed)


def create(name, **params):
    return registry.create_augmentation(name, framework="tf", **params)


def change(aug, x, seed=0) -> float:
    return float(tf.reduce_mean(tf.abs(aug(x, generator=rng(seed)) - x)))


@pytest.mark.parametrize("name", NAMES)
def test_contract_severity_randomness_and_determinism(name):
    for channels in (3, 1):
        x = smooth_images(channels=channels)
        for inputs in (x, tf.cast(x, tf.float64), tf.zeros_like(x), tf.ones_like(x)):
            out = create(name, severity=5, seed=0)(inputs)
            assert out.shape == x.shape and out.dtype == tf.float32
            assert float(tf.reduce_min(out)) >= 0.0 and float(tf.reduce_max(out)) <= 1.0
    x = smooth_images(n=64)
    mild, strong = change(create(name, severity=1), x), change(create(name, severity=5), x)
    assert strong > mild and strong > 0.005, (mild, strong)
    same = tf.repeat(smooth_images(n=1), 32, axis=0)
    out = create(name, severity=4)(same, generator=rng(0)).numpy()
    assert len({image.tobytes() for image in out}) > 1  # each image gets its own randomness
    aug = create(name, severity=4)
    assert np.array_equal(aug(x, generator=rng(3)), aug(x, generator=rng(3)))
    seeded_1, seeded_2 = create(name, severity=4, seed=9), create(name, severity=4, seed=9)
    first = seeded_1(x)
    assert np.array_equal(first, seeded_2(x)) and not np.array_equal(first, seeded_1(x))
    assert np.array_equal(create(name, severity=5, p=0.0)(x), x)


def test_flips_grayscale_and_severity_share_are_exact():
    x = smooth_images()
    assert np.array_equal(A.HFlip(p=1.0)(x), x.numpy()[:, :, ::-1])
    assert np.array_equal(A.VFlip(p=1.0)(x), x.numpy()[:, ::-1])
    gray = A.Grayscale(p=1.0)(x).numpy()
    expected = 0.2989 * x[..., 0] + 0.587 * x[..., 1] + 0.114 * x[..., 2]
    assert np.allclose(gray[..., 0], expected, atol=1e-5) and np.array_equal(gray[..., 0], gray[..., 2])
    many = smooth_images(n=400)
    for severity, share in zip((1, 3, 5), (0.1, 0.5, 0.9)):
        out = A.HFlip(severity=severity)(many, generator=rng(0))
        assert abs(float(np.mean(np.any(out.numpy() != many.numpy(), axis=(1, 2, 3)))) - share) < 0.08


def test_explicit_parameters_override_severity_and_zero_strength_is_the_identity():
    assert A.Rotation(severity=1, degrees=30.0).params["degrees"] == 30.0
    assert A.GaussianNoise(severity=2).params["sigma"] == 0.08
    x = smooth_images()
    assert np.array_equal(A.GaussianNoise(severity=5, sigma=0.0)(x), x)
    assert np.array_equal(A.RandomCrop(severity=5, padding=0)(x), x)
    assert np.allclose(A.ColorJitter(severity=5, brightness=0.0, contrast=0.0, saturation=0.0, hue=0.0)(x), x)
    assert np.allclose(A.Rotation(degrees=0.0)(x), x, atol=1e-6)
    assert np.allclose(A.Affine(translate=0.0, scale=0.0, shear=0.0)(x), x, atol=1e-6)
    assert np.allclose(A.Perspective(distortion=0.0)(x), x, atol=1e-5)


def test_rotation_is_counter_clockwise_like_torchvision(monkeypatch):
    monkeypatch.setattr(A, "_draw", lambda n, low, high, rng: np.full(n, float(high)))  # always the largest angle
    image = np.zeros((1, 5, 5, 1), np.float32)
    image[0, 0, 4, 0] = 1.0  # top right
    rotated = A.Rotation(degrees=90.0, interpolation="nearest")(tf.constant(image)).numpy()[0, ..., 0]
    assert rotated[0, 0] == 1.0 and rotated.sum() == 1.0  # +90 degrees: to the top left


@pytest.mark.parametrize("mode", ["constant", "edge", "reflect", "symmetric"])
def test_random_crop_is_a_window_of_the_padded_image(mode):
    x = smooth_images(n=8, size=16)
    out = A.RandomCrop(padding=2, padding_mode=mode, fill=0.5)(x, generator=rng(1)).numpy()
    np_mode = {"constant": "constant", "edge": "edge", "reflect": "reflect", "symmetric": "symmetric"}[mode]
    extra = {"constant_values": 0.5} if mode == "constant" else {}
    padded = np.pad(x.numpy(), [(0, 0), (2, 2), (2, 2), (0, 0)], mode=np_mode, **extra)
    for image, source in zip(out, padded):
        assert any(np.array_equal(source[i:i + 16, j:j + 16], image) for i in range(5) for j in range(5))


def test_color_jitter_on_one_channel_uses_brightness_and_contrast_only():
    x = smooth_images(channels=1)
    assert np.array_equal(A.ColorJitter(severity=5, brightness=0.0, contrast=0.0)(x), x)
    assert not np.array_equal(A.ColorJitter(severity=5)(x), x)


@pytest.mark.parametrize(
    "make, word",
    [(lambda: A.Rotation(severity=6), "severity"), (lambda: A.HFlip(p=1.5), "p"),
     (lambda: A.Rotation(degrees=-1.0), "degrees"), (lambda: A.GaussianNoise(sigma=-0.1), "sigma"),
     (lambda: A.ShotNoise(lam=0.0), "lam"), (lambda: A.SaltAndPepper(amount=2.0), "amount"),
     (lambda: A.RandomCrop(padding=-1), "padding"), (lambda: A.Affine(scale=1.0), "scale"),
     (lambda: A.Perspective(interpolation="cubicle"), "interpolation"), (lambda: A.HFlip(seed="a"), "seed"),
     (lambda: A.Rotation(interpolation="bicubic"), "bicubic")],
)
def test_invalid_parameters_are_usage_errors(make, word):
    with pytest.raises(UsageError, match=word):
        make()


def test_parameter_errors_read_as_in_torch():
    torch_aug = pytest.importorskip("harness_torch.augmentations")
    for name, params in [("rotation", {"degrees": 200.0}), ("affine", {"scale": 1.0}),
                         ("random-crop", {"padding_mode": "wrap"}), ("color-jitter", {"hue": 0.9})]:
        with pytest.raises(UsageError) as tf_error:
            A.AUGMENTATIONS[name](**params)
        with pytest.raises(UsageError) as torch_error:
            torch_aug.AUGMENTATIONS[name](**params)
        assert tf_error.value.message == torch_error.value.message


def test_invalid_inputs_are_usage_errors():
    with pytest.raises(UsageError, match="N, H, W, C"):
        A.HFlip()(tf.zeros([3, 8, 8]))
    with pytest.raises(UsageError, match="float"):
        A.HFlip()(tf.zeros([2, 8, 8, 3], tf.uint8))
    with pytest.raises(UsageError, match="tf.Tensor"):
        A.HFlip()([[1.0]])
    with pytest.raises(UsageError, match="1 or 3 channels"):
        A.Grayscale(p=1.0)(tf.zeros([2, 4, 4, 2]))
