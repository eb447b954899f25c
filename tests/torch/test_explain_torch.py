"""Saliency and Grad-CAM of the PyTorch runtime (known answers), and ``harness explain`` end to end."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from harness.cli.main import app
from harness.explain import CELL, COLUMNS, DPI, HEADER
from harness.plots import MAP_CELL
from helpers import TEST_SUBMISSIONS

torch = pytest.importorskip("torch")
runtime = pytest.importorskip("harness_torch.runtime")


def test_saliency_of_a_linear_model_is_the_weight_row_of_the_predicted_class():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 5 * 4, 6)).eval()
    images = np.random.default_rng(0).random((7, 5, 4, 3), dtype=np.float32)
    predicted = runtime.predict_logits_float(model, images).argmax(axis=1)
    gradients = runtime.class_gradients(model, images, predicted)
    weights = model[1].weight.detach().numpy().reshape(6, 3, 5, 4).transpose(0, 2, 3, 1)  # rows as N,H,W,C
    np.testing.assert_allclose(gradients, weights[predicted], rtol=1e-5, atol=1e-6)


def _patch_model() -> "torch.nn.Module":
    """Strided 2x2 conv, then a 1x1 conv (the last), global average, linear: class 0 grows with brightness."""
    nn = torch.nn
    model = nn.Sequential(nn.Conv2d(1, 2, 2, stride=2), nn.ReLU(), nn.Conv2d(2, 2, 1), nn.ReLU(),
                          nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2, 3))
    with torch.no_grad():
        for module in model:
            if hasattr(module, "weight"):
                module.weight.fill_(0.25)
                module.bias.zero_()
        model[-1].weight[1:].fill_(-0.25)
    return model.eval()


def test_gradcam_peaks_at_the_single_bright_patch():
    images = np.zeros((2, 16, 16, 1), np.float32)
    images[0, 10:14, 2:6] = 1.0
    images[1, 0:4, 8:12] = 1.0
    cams = runtime.gradcam(_patch_model(), images, np.zeros(2, np.int64))
    assert cams.shape == (2, 16, 16) and cams.max() <= 1.0 + 1e-6
    for cam, (rows, cols) in zip(cams, ((slice(10, 14), slice(2, 6)), (slice(0, 4), slice(8, 12)))):
        row, col = np.unravel_index(cam.argmax(), cam.shape)
        assert rows.start <= row < rows.stop and cols.start <= col < cols.stop
        assert cam[rows, cols].mean() > 0.5 and cam.mean() < 0.2  # hot on the patch, cold elsewhere


def test_gradcam_layer_by_name_and_unknown_layer():
    model = _patch_model()
    images = np.zeros((1, 16, 16, 1), np.float32)
    cam = runtime.gradcam(model, images, np.zeros(1, np.int64), layer="0")
    assert cam.shape == (1, 16, 16) and not cam.any()  # a black image: an all-zero map stays zero
    from harness.errors import UsageError

    with pytest.raises(UsageError, match="no nn.Conv2d layer 'nope'"):
        runtime.gradcam(model, images, np.zeros(1, np.int64), layer="nope")


@pytest.mark.slow
def test_cli_explain_end_to_end(tmp_path):
    runs = tmp_path / "runs"
    tiny = str(TEST_SUBMISSIONS / "tiny")
    result = CliRunner().invoke(app, ["train", tiny, "-P", "cpu", "--runs", str(runs), "--no-progress"])
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(app, ["explain", tiny, "-P", "cpu", "--runs", str(runs), "--count", "3"])
    assert result.exit_code == 0, result.output
    png = runs / "tiny" / "cpu" / "explain.png"
    with Image.open(png) as image:
        assert image.size == (round(COLUMNS * CELL * DPI), round((HEADER + 3 * CELL) * DPI))
        assert np.asarray(image.convert("L"), dtype=np.float32).std() > 0
    assert "activations.png" in result.output
    with Image.open(runs / "tiny" / "cpu" / "activations.png") as image:  # 3 images x 2 layers x 2 rows
        assert image.size[1] == round((HEADER + 12 * MAP_CELL) * DPI)
    # image files, an explicit class list, a larger eps and another attack
    Image.fromarray((np.arange(64 * 48) % 255).astype(np.uint8).reshape(48, 64)).save(tmp_path / "a.png")
    out = tmp_path / "files.png"
    result = CliRunner().invoke(app, ["explain", tiny, str(tmp_path / "a.png"), "-P", "cpu", "--runs", str(runs),
                                      "--attack", "bim", "--eps", "0.1", "--out", str(out)])
    assert result.exit_code == 0, result.output
    with Image.open(out) as image:
        assert image.size == (round(COLUMNS * CELL * DPI), round((HEADER + 1 * CELL) * DPI))
    assert (tmp_path / "files-activations.png").is_file()
    result = CliRunner().invoke(app, ["explain", tiny, "-P", "cpu", "--runs", str(runs), "--classes", "3,seven",
                                      "--out", str(out)])
    assert result.exit_code == 2
    assert "unknown class 'seven'" in result.output and len(result.output.strip().splitlines()) <= 2


def test_activations_are_the_first_conv_layers_outputs_channels_last():
    images = np.zeros((2, 16, 16, 1), np.float32)
    images[0, 10:14, 2:6] = 1.0
    model = _patch_model()
    found = runtime.activations(model, images, count=2)
    assert [name for name, _ in found] == ["0", "2"]
    (_, first), (_, second) = found
    assert first.shape == second.shape == (2, 8, 8, 2) and first.dtype == np.float32
    expected = np.zeros((8, 8), np.float32)
    expected[5:7, 1:3] = 1.0  # 0.25 x a bright 2x2 window
    np.testing.assert_allclose(first[0, ..., 0], expected)
    np.testing.assert_allclose(second[0, ..., 1], expected * 0.5)  # 1x1 conv of two relu'd channels
    assert not first[1].any()
    assert [name for name, _ in runtime.activations(model, images, count=1)] == ["0"]
    from harness.errors import UsageError

    with pytest.raises(UsageError, match="no nn.Conv2d"):
        runtime.activations(torch.nn.Sequential(torch.nn.Flatten()), images)
