"""Torch backbones: their layout, stages, channel adaptation and weights (the contract: tests/contracts)."""

from __future__ import annotations

import urllib.error

import pytest

torch = pytest.importorskip("torch")
torchvision = pytest.importorskip("torchvision")

from harness.errors import DownloadError, UsageError  # noqa: E402
from harness.registry import create_backbone, get_backbone, list_backbones  # noqa: E402
from harness_torch import backbones  # noqa: E402
from harness_torch.backbones import (  # noqa: E402
    MinSize,
    Normalize,
    adapt_input_conv,
    param_groups_for_unfreezing,
    unfreezing_stages,
)

TORCH_BACKBONES = list_backbones(framework="torch")
TORCHVISION = [name for name in TORCH_BACKBONES if name != "small-cnn"]


def test_the_expected_backbones_are_registered():
    assert set(TORCH_BACKBONES) >= {"small-cnn", "mobilenet_v2", "resnet50", "resnext50_32x4d",
                                    "wide_resnet50_2", "efficientnet_b0"}


@pytest.mark.parametrize("name", TORCH_BACKBONES)
def test_backbone_is_preprocess_body_head_with_normalization_inside(name):
    """The torch backbones' own layout (the contract itself is checked in tests/contracts)."""
    torch.manual_seed(0)
    model = create_backbone(name, num_classes=10, input_shape=(8, 8, 1))
    model(torch.rand(2, 1, 8, 8)).logsumexp(dim=1).sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.head.parameters())
    first_conv = next(m for m in model.body.modules() if isinstance(m, torch.nn.Conv2d))
    assert first_conv.in_channels == 1 and first_conv.weight.grad is not None
    # normalization lives inside the model, as buffers
    assert any(isinstance(m, Normalize) for m in model.preprocess.modules())
    assert any(k.endswith("mean") for k in model.state_dict())


@pytest.mark.parametrize("name", TORCH_BACKBONES)
def test_unfreezing_stages_cover_every_parameter_once(name):
    model = create_backbone(name, num_classes=7, input_shape=(8, 8, 1))
    groups = param_groups_for_unfreezing(model)
    assert [g for g, _ in groups] == ["head", "upper backbone", "lower backbone"]
    ids = [id(p) for _, params in groups for p in params]
    assert len(ids) == len(set(ids)) == len(list(model.parameters()))
    assert {id(p) for p in model.head.parameters()} == {id(p) for p in groups[0][1]}
    assert all(len(params) for _, params in groups)


def test_a_plain_module_is_one_stage():
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2))
    assert [name for name, _ in unfreezing_stages(model)] == ["all"]


def test_head_shape_follows_head_hidden_and_dropout():
    model = create_backbone("mobilenet_v2", num_classes=5, input_shape=(8, 8, 1), head_hidden=0)
    assert [type(m).__name__ for m in model.head] == ["Linear"]
    model = create_backbone("mobilenet_v2", num_classes=5, input_shape=(8, 8, 1), dropout=0.3)
    assert [type(m).__name__ for m in model.head] == ["Linear", "ReLU", "Dropout", "Linear"]
    assert model.head[0].out_features == 512 and model.head[-1].out_features == 5


def test_tiny_inputs_are_upsampled_inside_the_model():
    resize = MinSize(32)
    assert resize(torch.rand(1, 1, 8, 8)).shape[-2:] == (32, 32)
    assert resize(torch.rand(1, 3, 8, 16)).shape[-2:] == (32, 64)
    x = torch.rand(1, 3, 64, 64)
    assert resize(x) is x


def test_any_channel_count_works_and_grey_equals_repeated_rgb():
    conv = torchvision.models.resnet50().conv1
    grey = adapt_input_conv(conv, 1)
    x = torch.rand(2, 1, 16, 16)
    with torch.no_grad():
        assert torch.allclose(grey(x), conv(x.repeat(1, 3, 1, 1)), atol=1e-5)
    model = create_backbone("resnet50", num_classes=3, input_shape=(16, 16, 4))
    assert model(torch.rand(2, 4, 16, 16)).shape == (2, 3)


def test_bad_input_shape_is_a_usage_error():
    with pytest.raises(UsageError, match="input_shape"):
        create_backbone("small-cnn", num_classes=10, input_shape=(8, 8))


# ---- weights


def test_full_model_weights_round_trip(tmp_path):
    torch.manual_seed(0)
    model = create_backbone("mobilenet_v2", num_classes=10, input_shape=(8, 8, 1)).eval()
    path = tmp_path / "model.pt"
    torch.save(model.state_dict(), path)
    loaded = create_backbone("mobilenet_v2", num_classes=10, input_shape=(8, 8, 1), weights=str(path)).eval()
    x = torch.rand(3, 1, 8, 8)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))
    # a training checkpoint ({"model": state_dict, ...}) works too
    torch.save({"model": model.state_dict(), "epoch": 3}, tmp_path / "checkpoint.pt")
    again = create_backbone("mobilenet_v2", num_classes=10, input_shape=(8, 8, 1),
                            weights=tmp_path / "checkpoint.pt").eval()
    with torch.no_grad():
        assert torch.equal(model(x), again(x))


def test_torchvision_backbone_checkpoint_loads_and_is_adapted(tmp_path):
    torch.manual_seed(1)
    reference = torchvision.models.mobilenet_v2()  # stands in for the ImageNet checkpoint
    path = tmp_path / "mobilenet_v2-imagenet.pth"
    torch.save(reference.state_dict(), path)
    model = create_backbone("mobilenet_v2", num_classes=10, input_shape=(8, 8, 1), weights=path)
    state = model.body.state_dict()
    assert torch.equal(state["features.5.conv.1.0.weight"], reference.state_dict()["features.5.conv.1.0.weight"])
    assert torch.allclose(state["features.0.0.weight"], reference.features[0][0].weight.sum(dim=1, keepdim=True))


def test_wrong_weights_are_usage_errors(tmp_path):
    with pytest.raises(UsageError, match="not found"):
        create_backbone("mobilenet_v2", num_classes=10, input_shape=(8, 8, 3), weights=tmp_path / "missing.pt")
    path = tmp_path / "other.pt"
    torch.save(create_backbone("small-cnn", num_classes=10).state_dict(), path)
    with pytest.raises(UsageError, match="do not fit"):
        create_backbone("mobilenet_v2", num_classes=10, input_shape=(8, 8, 3), weights=path)
    (tmp_path / "junk.pt").write_text("not a checkpoint")
    with pytest.raises(UsageError, match="cannot read"):
        create_backbone("mobilenet_v2", num_classes=10, input_shape=(8, 8, 3), weights=tmp_path / "junk.pt")


def test_pretrained_offline_raises_download_error_with_the_offline_route(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))

    def no_network(url, *args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "download_url_to_file", no_network)
    with pytest.raises(DownloadError) as info:
        create_backbone("mobilenet_v2", num_classes=10, input_shape=(64, 64, 3), pretrained=True)
    error = info.value
    assert "mobilenet_v2" in error.message and "URLError" in error.message
    assert "weights=PATH" in error.hint and "TORCH_HOME" in error.hint
    assert "\n" not in error.message + error.hint


def test_pretrained_uses_the_torchvision_cache_without_network(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "download_url_to_file", lambda *a, **k: pytest.fail("tried to download"))
    weights = torchvision.models.get_model_weights("mobilenet_v2").DEFAULT
    cached = tmp_path / "hub" / "checkpoints" / weights.url.rsplit("/", 1)[-1]
    cached.parent.mkdir(parents=True)
    torch.manual_seed(2)
    reference = torchvision.models.mobilenet_v2()
    torch.save(reference.state_dict(), cached)
    model = create_backbone("mobilenet_v2", num_classes=10, input_shape=(64, 64, 3), pretrained=True)
    assert torch.equal(model.body.features[3].conv[0][0].weight, reference.features[3].conv[0][0].weight)


def test_spec_params_match_the_factories():
    import inspect

    for name in TORCH_BACKBONES:
        spec = get_backbone(name)
        factory = getattr(backbones, spec.factory.split(":")[1])
        signature = inspect.signature(factory).parameters
        assert {k: signature[k].default for k in spec.params} == dict(spec.params), name
        assert set(signature) == set(spec.params) | {"num_classes", "input_shape"}, name
