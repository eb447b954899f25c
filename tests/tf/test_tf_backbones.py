"""Keras backbones: their layout, stages, local weights, offline errors (the contract: tests/contracts)."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from harness import registry
from harness.errors import DownloadError, UsageError
from harness_tf import backbones as B
from helpers import keras_backbone

APPLICATIONS = ["densenet121", "efficientnet_b0", "mobilenet_v2", "nasnet_mobile"]
#: the shared applications' input and classes (those of tests/contracts)
SHAPE, CLASSES = (8, 8, 3), 3


def build(name, **params):
    params.setdefault("input_shape", (8, 8, 1))
    params.setdefault("num_classes", 10)
    return registry.create_backbone(name, framework="tf", **params)


@pytest.fixture(scope="module")
def applications():
    """Every Keras application on 8x8 RGB images (resized to 32x32 inside), with the contract's 3 classes: the
    session's models (tests/helpers.py), which the backbone contract builds first in a full run."""
    return {name: keras_backbone(name, SHAPE, CLASSES) for name in APPLICATIONS}


def test_nsl_cnn_is_the_tutorial_architecture_with_logits():
    model = build("nsl-cnn")
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert [c.filters for c in convs] == [16, 32, 32] and all(c.kernel_size == (3, 3) for c in convs)
    assert len([layer for layer in model.layers if isinstance(layer, keras.layers.MaxPooling2D)]) == 2
    assert model.get_layer("head_hidden").units == 64 and model.output_shape == (None, 10)
    assert model.get_layer("logits").activation is keras.activations.linear  # logits, not softmax
    assert model.input_names == ["image"] and model.name == "nsl-cnn"
    big = build("nsl-cnn", input_shape=(28, 28, 3), hidden=0, dropout=0.5, filters=[8, 8])
    assert big.output_shape == (None, 10) and "head_dropout" in [layer.name for layer in big.layers]


@pytest.mark.parametrize("name", APPLICATIONS)
def test_applications_resize_inside(applications, name):
    """The Keras applications' own layout (the contract itself is checked in tests/contracts)."""
    model = applications[name]
    assert model.name == name and model.input_shape == (None, 8, 8, 3) and model.output_shape == (None, CLASSES)
    assert model.get_layer("min_size").get_config()["height"] == 32
    assert "grey_to_rgb" not in [layer.name for layer in model.layers]  # RGB in: nothing to repeat
    # BatchNorm statistics move as fast as PyTorch's (Keras's 0.999 leaves a short run's at their init)
    body = next(layer for layer in model.layers if isinstance(layer, keras.Model))
    norms = [layer for layer in body.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert norms and all(layer.momentum == B.BN_MOMENTUM for layer in norms)


def test_grey_images_are_repeated_to_rgb_inside():
    """One code path before every application's body (the smallest shows it): 1 channel in, 3 into the body."""
    model = build("mobilenet_v2", head_hidden=0)
    assert model.input_shape == (None, 8, 8, 1) and model.output_shape == (None, 10)
    assert model.get_layer("grey_to_rgb").output_shape[-1] == 3
    body = next(layer for layer in model.layers if isinstance(layer, keras.Model))
    assert body.input_shape == (None, 32, 32, 3)


@pytest.mark.parametrize("name", ["nsl-cnn", *APPLICATIONS])
def test_unfreezing_stages_cover_every_weight_once(applications, name):
    model = applications.get(name) or build("nsl-cnn")
    stages = B.unfreezing_stages(model)
    assert [stage for stage, _ in stages] == ["head", "upper backbone", "lower backbone"]
    owned = [id(w) for _, layers in stages for layer in layers for w in layer.weights]
    assert len(owned) == len(set(owned)) == len({id(w) for w in model.weights})
    assert all(layers for _, layers in stages)
    B.trainable_stages(model, stages, 1)
    head_weights = {id(w) for layer in stages[0][1] for w in layer.trainable_weights}
    assert {id(w) for w in model.trainable_weights} == head_weights
    B.trainable_stages(model, stages, 3)
    assert len(model.trainable_weights) > len(head_weights)


def test_a_foreign_model_is_one_stage():
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(2)(inputs))
    assert B.unfreezing_stages(model) == [("all", [model])]


def test_bad_shapes_and_sizes_are_usage_errors():
    with pytest.raises(UsageError, match="input_shape must be"):
        build("nsl-cnn", input_shape=(8, 8))
    with pytest.raises(UsageError, match="1 or 3 channels"):
        build("mobilenet_v2", input_shape=(32, 32, 2))
    with pytest.raises(UsageError, match="min_size must be at least 32"):
        build("mobilenet_v2", min_size=16)


def test_local_weights_files_load_backbone_or_whole_model(applications, tmp_path):
    model = applications["mobilenet_v2"]
    body = next(layer for layer in model.layers if isinstance(layer, keras.Model))
    body_file, model_file = tmp_path / "mobilenet_v2_no_top.h5", tmp_path / "model.h5"
    body.save_weights(str(body_file), save_format="h5")
    model.save_weights(str(model_file), save_format="h5")
    # a backbone file (what keras.applications downloads): the body is loaded, the head is new
    shared = {"input_shape": SHAPE, "num_classes": CLASSES}  # the shared model's, default head
    from_body = build("mobilenet_v2", weights=str(body_file), **shared)
    new_body = next(layer for layer in from_body.layers if isinstance(layer, keras.Model))
    assert all(np.array_equal(a, b) for a, b in zip(body.get_weights(), new_body.get_weights()))
    # a whole-model file: identical predictions
    from_model = build("mobilenet_v2", weights=str(model_file), **shared)
    x = tf.random.stateless_uniform([3, *SHAPE], seed=[2, 3])
    assert np.array_equal(from_model(x, training=False), model(x, training=False))


def test_wrong_weights_files_are_usage_errors(applications, tmp_path):
    with pytest.raises(UsageError, match="weights file not found"):
        build("mobilenet_v2", weights=str(tmp_path / "missing.h5"))
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"not hdf5")
    with pytest.raises(UsageError, match="not a Keras HDF5 weights file"):
        build("mobilenet_v2", weights=str(junk))
    other = tmp_path / "other.h5"
    applications["densenet121"].save_weights(str(other), save_format="h5")
    with pytest.raises(UsageError, match="do not fit"):
        build("mobilenet_v2", head_hidden=16, weights=str(other))


def test_pretrained_offline_raises_download_error_with_the_offline_route(monkeypatch):
    from tf_keras.src.utils import data_utils

    def offline(*args, **kwargs):
        raise Exception("URL fetch failure on https://storage.googleapis.com/...: None -- [Errno -3] no network")

    monkeypatch.setattr(data_utils, "get_file", offline)
    with pytest.raises(DownloadError, match="Cannot download pretrained weights for backbone 'mobilenet_v2'") as info:
        build("mobilenet_v2", input_shape=(32, 32, 3), pretrained=True)
    assert ".keras" in info.value.hint and "weights=PATH" in info.value.hint


def test_a_local_copy_of_the_imagenet_file_builds_the_imagenet_graph(applications, tmp_path, monkeypatch):
    """EfficientNet scales its input differently with weights="imagenet": weights=PATH must match that."""
    source = applications["efficientnet_b0"]  # its body takes (32, 32, 3) too: 8x8 inputs are resized first
    body = next(layer for layer in source.layers if isinstance(layer, keras.Model))
    path = tmp_path / "efficientnetb0_notop.h5"
    body.save_weights(str(path), save_format="h5")
    from tf_keras.src.utils import data_utils

    monkeypatch.setattr(data_utils, "get_file", lambda *args, **kwargs: str(path))  # "downloaded" into the cache
    keras.utils.set_random_seed(2)
    pretrained = build("efficientnet_b0", input_shape=(32, 32, 3), head_hidden=0, pretrained=True)
    monkeypatch.undo()
    keras.utils.set_random_seed(2)
    local = build("efficientnet_b0", input_shape=(32, 32, 3), head_hidden=0, weights=str(path))
    x = tf.random.stateless_uniform([2, 32, 32, 3], seed=[4, 5])
    np.testing.assert_allclose(local(x, training=False), pretrained(x, training=False), atol=1e-5)
