"""harness.augment: one call contract; neutral augmentations in torch and TF training batches,
framework augmentations in split recipes, and the errors for augmentations used or written wrongly."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from harness.augment import BoundAugmentation, augment_batch, augment_images, resolve_augmentations
from harness.errors import PluginError, UsageError
from harness.scoring.split import Perturbation, _augmenter

needs_torch = pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="needs torch")
needs_tf = pytest.mark.skipif(importlib.util.find_spec("tensorflow") is None, reason="needs tensorflow")


def images(n=6, size=12, channels=3, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, channels), dtype=np.uint8)


def test_resolve_binds_names_tables_and_callables_to_their_layout():
    pytest.importorskip("torch")
    hflip, fog, table, own = resolve_augmentations(
        ["hflip", "corruption/fog", {"name": "rotation", "degrees": 5.0}, lambda x, *, generator: x], "torch")
    assert (hflip.layout, fog.layout, table.layout, own.layout) == ("torch", "any", "torch", "torch")
    assert table.augmentation.params["degrees"] == 5.0 and fog.name == "corruption/fog"
    assert resolve_augmentations([hflip], "torch") == [hflip]
    with pytest.raises(UsageError, match="a name, a {'name': ..., \\*\\*params} table or a callable; got 3"):
        resolve_augmentations([3], "torch")


def test_neutral_augmentations_alone_use_one_numpy_generator_from_the_seed():
    fog = resolve_augmentations(["corruption/gaussian-noise"], "torch")[0]
    x = images()
    out = augment_images([fog], x, seed=7)
    assert out.dtype == np.uint8 and out.shape == x.shape
    np.testing.assert_array_equal(out, fog.augmentation(x, generator=np.random.default_rng(7)))


@needs_torch
def test_a_neutral_augmentation_in_a_torch_training_batch():
    import torch

    noise = resolve_augmentations([{"name": "corruption/gaussian-noise", "severity": 5}], "torch")[0]
    x = torch.from_numpy(images()).permute(0, 3, 1, 2).float() / 255.0
    generator = torch.Generator().manual_seed(3)
    out = augment_batch([noise], x, framework="torch", generator=generator)
    assert isinstance(out, torch.Tensor) and out.shape == x.shape and out.dtype == torch.float32
    # the numpy generator is seeded from the trainer's generator, which advances
    seed = int(torch.randint(0, 2**62, (1,), generator=torch.Generator().manual_seed(3)).item())
    expected = noise.augmentation(images(), generator=np.random.default_rng(seed))
    np.testing.assert_array_equal(np.rint(out.permute(0, 2, 3, 1).numpy() * 255).astype(np.uint8), expected)
    again = augment_batch([noise], x, framework="torch", generator=generator)
    assert not torch.equal(out, again)


@needs_tf
def test_a_neutral_augmentation_in_a_tf_training_batch():
    import harness_tf  # noqa: F401 - Keras 2 before TensorFlow starts
    import tensorflow as tf

    noise, flip = resolve_augmentations(["corruption/shot-noise", {"name": "hflip", "p": 1.0}], "tf")
    assert (noise.layout, flip.layout) == ("any", "tf")
    x = tf.constant(images(), tf.float32) / 255.0
    out = augment_batch([noise, flip], x, framework="tf", generator=tf.random.Generator.from_seed(1))
    assert isinstance(out, tf.Tensor) and out.shape == x.shape and out.dtype == tf.float32
    seed = int(tf.random.Generator.from_seed(1).uniform([], minval=0, maxval=2**62, dtype=tf.int64))
    expected = noise.augmentation(images(), generator=np.random.default_rng(seed))[:, :, ::-1]
    np.testing.assert_array_equal(np.rint(out.numpy() * 255).astype(np.uint8), expected)
    again = augment_batch([noise, flip], x, framework="tf", generator=tf.random.Generator.from_seed(1))
    np.testing.assert_array_equal(out.numpy(), again.numpy())


@needs_torch
def test_a_framework_augmentation_in_a_recipe_runs_through_its_runtime():
    from harness.frameworks import get_runtime
    from harness.registry import create_augmentation

    x = images(n=10)
    perturbation = Perturbation(category="rot", kind="augmentation", name="rotation", severity=4,
                                framework="torch")
    out = _augmenter(perturbation, seed=11)(x)
    expected = get_runtime("torch").augment_images([create_augmentation("rotation", framework="torch", severity=4)],
                                                   x, seed=11)
    assert out.dtype == np.uint8 and out.shape == x.shape and not np.array_equal(out, x)
    np.testing.assert_array_equal(out, expected)
    neutral = Perturbation(category="fog", kind="augmentation", name="corruption/fog", severity=2)
    fog = create_augmentation("corruption/fog", severity=2)
    np.testing.assert_array_equal(_augmenter(neutral, seed=2)(x), fog(x, generator=np.random.default_rng(2)))


@needs_torch
def test_a_framework_augmentation_cannot_augment_another_frameworks_batch():
    import torch

    flip = resolve_augmentations(["hflip"], "torch")[0]
    with pytest.raises(UsageError, match="'hflip' is a torch augmentation; it cannot augment tf batches"):
        augment_batch([flip], object(), framework="tf", generator=None)
    tf_like = BoundAugmentation(lambda x, *, generator: x, "tf", "tf-aug")
    with pytest.raises(UsageError, match="cannot mix torch and tf"):
        augment_images([flip, tf_like], images(), seed=0)
    with pytest.raises(UsageError, match="hflip: torch augmentations draw from a torch.Generator, got Generator"):
        augment_batch([flip], torch.zeros(2, 3, 4, 4), framework="torch", generator=np.random.default_rng(0))


def test_an_augmentation_that_breaks_the_contract_is_named():
    shrink = BoundAugmentation(lambda x, *, generator: x[:, :4], "any", "shrinker")
    with pytest.raises(PluginError, match="augmentation 'shrinker' broke its contract: it returned ndarray "
                                          r"\(6, 4, 12, 3\) uint8 for ndarray \(6, 12, 12, 3\) uint8"):
        augment_images([shrink], images(), seed=0)
    floats = BoundAugmentation(lambda x, *, generator: x / 255.0, "any", "to-float")
    with pytest.raises(PluginError, match="'to-float' broke its contract.*same type, shape and dtype"):
        augment_images([floats], images(), seed=0)
    with pytest.raises(PluginError, match="layout must be one of any, torch, tf, got 'jax'"):
        BoundAugmentation(lambda x, *, generator: x, "jax", "jaxy")
