"""Saliency and Grad-CAM of the TensorFlow runtime (known answers), nested Keras models included."""

from __future__ import annotations

import numpy as np
import pytest

from harness.errors import UsageError

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("tf_keras")
runtime = pytest.importorskip("harness_tf.runtime")


def test_saliency_of_a_linear_model_is_the_weight_row_of_the_predicted_class():
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((5, 4, 3)), keras.layers.Flatten(), keras.layers.Dense(6)])
    images = np.random.default_rng(0).random((7, 5, 4, 3), dtype=np.float32)
    predicted = runtime.predict_logits_float(model, images).argmax(axis=1)
    gradients = runtime.class_gradients(model, images, predicted)
    kernel = model.layers[-1].kernel.numpy()  # (H*W*C, classes), flattened in N,H,W,C order
    np.testing.assert_allclose(gradients, kernel.T.reshape(6, 5, 4, 3)[predicted], rtol=1e-5, atol=1e-6)


def _patch_model(nested: bool) -> "keras.Model":
    """Strided 2x2 conv, then a 1x1 conv (the last), global average, dense: class 0 grows with brightness.
    ``nested``: the convolutions sit in an inner model, as in a Keras application backbone."""
    init = keras.initializers.Constant(0.25)
    convs = [keras.layers.Conv2D(2, 2, strides=2, activation="relu", kernel_initializer=init, name="conv_a"),
             keras.layers.Conv2D(2, 1, activation="relu", kernel_initializer=init, name="conv_b")]
    inputs = keras.Input((16, 16, 1))
    if nested:
        inner_in = keras.Input((16, 16, 1))
        features = keras.Model(inner_in, convs[1](convs[0](inner_in)), name="backbone")(inputs)
    else:
        features = convs[1](convs[0](inputs))
    pooled = keras.layers.GlobalAveragePooling2D()(features)
    head = keras.layers.Dense(3, kernel_initializer=keras.initializers.Constant(-0.25))
    model = keras.Model(inputs, head(pooled))
    kernel = head.kernel.numpy()
    kernel[:, 0] = 0.25
    head.kernel.assign(kernel)
    return model


@pytest.mark.parametrize("nested", [False, True])
def test_gradcam_peaks_at_the_single_bright_patch(nested):
    images = np.zeros((2, 16, 16, 1), np.float32)
    images[0, 10:14, 2:6] = 1.0
    images[1, 0:4, 8:12] = 1.0
    model = _patch_model(nested)
    cams = runtime.gradcam(model, images, np.zeros(2, np.int64))
    assert cams.shape == (2, 16, 16) and cams.max() <= 1.0 + 1e-6
    for cam, (rows, cols) in zip(cams, ((slice(10, 14), slice(2, 6)), (slice(0, 4), slice(8, 12)))):
        row, col = np.unravel_index(cam.argmax(), cam.shape)
        assert rows.start <= row < rows.stop and cols.start <= col < cols.stop
        assert cam[rows, cols].mean() > 0.5 and cam.mean() < 0.2  # hot on the patch, cold elsewhere
    # the layer's own call is back in place, and a layer can be named
    assert "call" not in vars(runtime._conv_layers(model)["conv_b"])
    assert runtime.gradcam(model, images, np.zeros(2, np.int64), layer="conv_a").shape == (2, 16, 16)
    with pytest.raises(UsageError, match="no Conv2D layer 'nope'"):
        runtime.gradcam(model, images, np.zeros(2, np.int64), layer="nope")


@pytest.mark.parametrize("nested", [False, True])
def test_activations_are_the_first_conv_layers_outputs(nested):
    images = np.zeros((2, 16, 16, 1), np.float32)
    images[0, 10:14, 2:6] = 1.0
    model = _patch_model(nested)
    found = runtime.activations(model, images, count=2)
    assert [name for name, _ in found] == ["conv_a", "conv_b"]
    (_, first), (_, second) = found
    assert first.shape == second.shape == (2, 8, 8, 2) and first.dtype == np.float32
    expected = np.zeros((8, 8), np.float32)
    expected[5:7, 1:3] = 1.0  # 0.25 x a bright 2x2 window (relu fused into the layer)
    np.testing.assert_allclose(first[0, ..., 0], expected)
    np.testing.assert_allclose(second[0, ..., 1], expected * 0.5)
    assert not first[1].any()
    assert "call" not in vars(runtime._conv_layers(model)["conv_a"])  # the layers' own calls are back
    assert [name for name, _ in runtime.activations(model, images, count=1)] == ["conv_a"]
    with pytest.raises(UsageError, match="no Conv2D"):
        runtime.activations(keras.Sequential([keras.Input((16, 16, 1)), keras.layers.Flatten()]), images)
