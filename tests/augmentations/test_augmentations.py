"""Every registered framework augmentation, in torch and TensorFlow alike: contract, severity, per-image
randomness, determinism, parameter checks and wrong calls (the classes are written once, in
harness.perturb.augmentations, over each framework's ops)."""

from __future__ import annotations

import importlib
import importlib.util

import numpy as np
import pytest

from harness import registry
from harness.errors import UsageError
from harness.perturb.severity import AUGMENTATION_PARAMS

NAMES = sorted(AUGMENTATION_PARAMS)


class Framework:
    """One framework's side of the tests: its augmentations module, batches and generators."""

    def __init__(self, name: str):
        self.name = name
        if name == "tf":
            importlib.import_module("harness_tf")  # selects Keras 2 before TensorFlow starts
            self.tf = pytest.importorskip("tensorflow")
        else:
            self.torch = pytest.importorskip("torch")
        self.A = importlib.import_module(f"harness_{name}.augmentations")

    def batch(self, nhwc: np.ndarray):
        """float N,H,W,C numpy -> the framework's batch (torch N,C,H,W)."""
        if self.name == "tf":
            return self.tf.constant(nhwc)
        return self.torch.from_numpy(np.ascontiguousarray(nhwc)).permute(0, 3, 1, 2).contiguous()

    def numpy(self, x) -> np.ndarray:
        """A framework batch -> N,H,W,C numpy."""
        return np.asarray(x) if self.name == "tf" else x.permute(0, 2, 3, 1).numpy()

    def generator(self, seed: int = 0):
        if self.name == "tf":
            return self.tf.random.Generator.from_seed(seed)
        return self.torch.Generator().manual_seed(seed)

    def smooth_images(self, n=32, channels=3, size=16, seed=0):
        """Random smooth colour images in (0, 1): structure for geometry, colour for jitter."""
        low = np.random.default_rng(seed).random((n, 4, 4, channels), dtype=np.float32)
        up = np.repeat(np.repeat(low, size // 4, axis=1), size // 4, axis=2)
        kernel = np.ones(3, np.float32) / 3  # soften the blocks
        up = np.apply_along_axis(lambda v: np.convolve(v, kernel, mode="same"), 1, up)
        up = np.apply_along_axis(lambda v: np.convolve(v, kernel, mode="same"), 2, up)
        return self.batch(np.clip(up, 0.02, 0.98).astype(np.float32))

    def create(self, name, **params):
        return registry.create_augmentation(name, framework=self.name, **params)

    def change(self, aug, x, seed=0) -> float:
        return float(np.abs(self.numpy(aug(x, generator=self.generator(seed))) - self.numpy(x)).mean())


@pytest.fixture(params=["torch", "tf"], scope="module")
def fw(request) -> Framework:
    if importlib.util.find_spec({"torch": "torch", "tf": "tensorflow"}[request.param]) is None:
        pytest.skip(f"{request.param} is not installed")
    return Framework(request.param)


def test_every_expected_augmentation_is_registered(fw):
    plugin = importlib.import_module(f"harness_{fw.name}.plugin")
    specs = {spec.name: spec for spec in plugin.harness_register_augmentations()}
    assert set(specs) == set(NAMES) == set(fw.A.AUGMENTATIONS)
    assert set(registry.list_augmentations(framework=fw.name)) >= set(NAMES)
    for spec in specs.values():
        assert spec.framework == fw.name and spec.description and "severity" in spec.params
        assert isinstance(fw.create(spec.name), fw.A.Augmentation)


@pytest.mark.parametrize("name", NAMES)
def test_keeps_shape_dtype_and_range(fw, name):
    for channels in (3, 1):
        x = fw.smooth_images(channels=channels)
        for severity in (1, 5):
            aug = fw.create(name, severity=severity, seed=0)
            for inputs in (x, x * 0.0, x * 0.0 + 1.0):
                out = fw.numpy(aug(inputs))
                assert out.shape == fw.numpy(x).shape and out.dtype == np.float32
                assert out.min() >= 0.0 and out.max() <= 1.0 and np.isfinite(out).all()


@pytest.mark.parametrize("name", NAMES)
def test_severity_randomness_determinism_and_p_zero(fw, name):
    x = fw.smooth_images(n=64)
    mild, strong = fw.change(fw.create(name, severity=1), x), fw.change(fw.create(name, severity=5), x)
    assert strong > mild and strong > 0.005, (mild, strong)
    same = fw.batch(np.repeat(fw.numpy(fw.smooth_images(n=1)), 32, axis=0))
    out = fw.numpy(fw.create(name, severity=4)(same, generator=fw.generator(0)))
    assert len({image.tobytes() for image in out}) > 1  # each image gets its own randomness
    aug = fw.create(name, severity=4)
    assert np.array_equal(fw.numpy(aug(x, generator=fw.generator(3))), fw.numpy(aug(x, generator=fw.generator(3))))
    seeded_1, seeded_2 = fw.create(name, severity=4, seed=9), fw.create(name, severity=4, seed=9)
    first = fw.numpy(seeded_1(x))
    assert np.array_equal(first, fw.numpy(seeded_2(x)))
    assert not np.array_equal(first, fw.numpy(seeded_1(x)))  # the seeded stream advances between batches
    assert np.array_equal(fw.numpy(fw.create(name, severity=5, p=0.0)(x)), fw.numpy(x))
    empty = fw.numpy(aug(fw.batch(np.zeros((0, 16, 16, 3), np.float32)), generator=fw.generator(0)))
    assert empty.shape == (0, 16, 16, 3)


def test_flips_grayscale_and_flip_share_are_exact(fw):
    A, x = fw.A, fw.smooth_images()
    images = fw.numpy(x)
    assert np.array_equal(fw.numpy(A.HFlip(p=1.0)(x)), images[:, :, ::-1])
    assert np.array_equal(fw.numpy(A.VFlip(p=1.0)(x)), images[:, ::-1])
    gray = fw.numpy(A.Grayscale(p=1.0)(x))
    expected = 0.2989 * images[..., 0] + 0.587 * images[..., 1] + 0.114 * images[..., 2]
    assert np.allclose(gray[..., 0], expected, atol=1e-3)
    assert np.array_equal(gray[..., 0], gray[..., 1]) and np.array_equal(gray[..., 1], gray[..., 2])
    single = fw.smooth_images(channels=1)
    assert np.array_equal(fw.numpy(A.Grayscale(p=1.0)(single)), fw.numpy(single))
    many = fw.smooth_images(n=400)
    for severity, share in zip((1, 3, 5), (0.1, 0.5, 0.9)):
        out = fw.numpy(A.HFlip(severity=severity)(many, generator=fw.generator(0)))
        assert abs(float(np.mean(np.any(out != fw.numpy(many), axis=(1, 2, 3)))) - share) < 0.08


def test_explicit_parameters_override_severity_and_zero_strength_is_the_identity(fw):
    A, x = fw.A, fw.smooth_images()
    assert A.Rotation(severity=1, degrees=30.0).params["degrees"] == 30.0
    assert A.Rotation(severity=5).params["degrees"] == 20.0
    assert A.GaussianNoise(severity=2).params["sigma"] == 0.08
    images = fw.numpy(x)
    assert np.array_equal(fw.numpy(A.GaussianNoise(severity=5, sigma=0.0)(x)), images)
    assert np.array_equal(fw.numpy(A.RandomCrop(severity=5, padding=0)(x)), images)
    jitter = A.ColorJitter(severity=5, brightness=0.0, contrast=0.0, saturation=0.0, hue=0.0)
    assert np.allclose(fw.numpy(jitter(x)), images)
    assert np.allclose(fw.numpy(A.Rotation(degrees=0.0)(x)), images, atol=1e-6)
    assert np.allclose(fw.numpy(A.Affine(translate=0.0, scale=0.0, shear=0.0)(x)), images, atol=1e-5)
    assert np.allclose(fw.numpy(A.Perspective(distortion=0.0)(x)), images, atol=1e-5)


def test_rotation_is_counter_clockwise(fw, monkeypatch):
    ops = type(fw.A.Rotation.ops)
    largest = (lambda self, n, low, high, generator: fw.tf.fill([n], float(high))) if fw.name == "tf" else (
        lambda self, n, low, high, generator: [float(high)] * n)
    monkeypatch.setattr(ops, "uniform", largest)  # always the largest angle
    image = np.zeros((1, 5, 5, 1), np.float32)
    image[0, 0, 4, 0] = 1.0  # top right
    rotated = fw.numpy(fw.A.Rotation(degrees=90.0, interpolation="nearest")(fw.batch(image)))[0, ..., 0]
    assert rotated[0, 0] == 1.0 and rotated.sum() == 1.0  # +90 degrees: to the top left


@pytest.mark.parametrize("mode", ["constant", "edge", "reflect", "symmetric"])
def test_random_crop_is_a_window_of_the_padded_image(fw, mode):
    x = fw.smooth_images(n=8, size=16)
    out = fw.numpy(fw.A.RandomCrop(padding=2, padding_mode=mode, fill=0.5)(x, generator=fw.generator(1)))
    extra = {"constant_values": 0.5} if mode == "constant" else {}
    padded = np.pad(fw.numpy(x), [(0, 0), (2, 2), (2, 2), (0, 0)], mode=mode, **extra)
    for image, source in zip(out, padded):
        assert any(np.array_equal(source[i:i + 16, j:j + 16], image) for i in range(5) for j in range(5))


def test_color_jitter_on_one_channel_uses_brightness_and_contrast_only(fw):
    x = fw.smooth_images(channels=1)
    assert np.array_equal(fw.numpy(fw.A.ColorJitter(severity=5, brightness=0.0, contrast=0.0)(x)), fw.numpy(x))
    assert not np.array_equal(fw.numpy(fw.A.ColorJitter(severity=5)(x)), fw.numpy(x))


def test_compose_and_one_of(fw):
    A, x = fw.A, fw.smooth_images()
    assert np.array_equal(fw.numpy(A.Compose([A.HFlip(p=1.0), A.HFlip(p=1.0)])(x)), fw.numpy(x))
    chain = A.Compose([A.make("rotation"), A.make("gaussian-noise")])
    assert np.array_equal(fw.numpy(chain(x, generator=fw.generator(0))), fw.numpy(chain(x, generator=fw.generator(0))))
    out = fw.numpy(A.OneOf([A.HFlip(p=1.0), A.VFlip(p=1.0)], seed=0)(x))
    images = fw.numpy(x)
    hflipped = (out == images[:, :, ::-1]).reshape(len(out), -1).all(1)
    vflipped = (out == images[:, ::-1]).reshape(len(out), -1).all(1)
    assert (hflipped | vflipped).all() and hflipped.any() and vflipped.any()


@pytest.mark.parametrize(
    "make, word",
    [(lambda A: A.Rotation(severity=6), "severity"), (lambda A: A.HFlip(p=1.5), "p"),
     (lambda A: A.Rotation(degrees=-1.0), "degrees"), (lambda A: A.GaussianNoise(sigma=-0.1), "sigma"),
     (lambda A: A.ShotNoise(lam=0.0), "lam"), (lambda A: A.SaltAndPepper(amount=2.0), "amount"),
     (lambda A: A.RandomCrop(padding=-1), "padding"), (lambda A: A.Affine(scale=1.0), "scale"),
     (lambda A: A.Perspective(interpolation="cubicle"), "interpolation"), (lambda A: A.HFlip(seed="a"), "seed"),
     (lambda A: A.make("hflipp"), "Unknown augmentation"), (lambda A: A.OneOf([]), "at least one")],
)
def test_invalid_parameters_are_usage_errors(fw, make, word):
    with pytest.raises(UsageError, match=word):
        make(fw.A)


def test_bicubic_exists_only_in_torch(fw):
    if fw.name == "tf":
        with pytest.raises(UsageError, match="bicubic"):
            fw.A.Rotation(interpolation="bicubic")
    else:
        assert fw.A.Rotation(interpolation="bicubic").params["interpolation"] == "bicubic"


def test_parameter_errors_read_the_same_in_both_frameworks():
    pytest.importorskip("torch")
    pytest.importorskip("tensorflow")
    frameworks = [importlib.import_module(f"harness_{name}.augmentations") for name in ("torch", "tf")]
    for name, params in [("rotation", {"degrees": 200.0}), ("affine", {"scale": 1.0}),
                         ("random-crop", {"padding_mode": "wrap"}), ("color-jitter", {"hue": 0.9})]:
        messages = []
        for A in frameworks:
            with pytest.raises(UsageError) as error:
                A.AUGMENTATIONS[name](**params)
            messages.append(error.value.message)
        assert messages[0] == messages[1]


def test_wrong_calls_are_usage_errors_naming_the_augmentation(fw):
    layout = "N, H, W, C" if fw.name == "tf" else "N, C, H, W"
    aug = fw.A.HFlip()
    with pytest.raises(UsageError, match=f"hflip.*{layout}"):
        aug(fw.batch(np.zeros((2, 8, 8, 3), np.float32))[0])
    with pytest.raises(UsageError, match="hflip.*float"):
        aug(fw.batch(np.zeros((2, 8, 8, 3), np.uint8)))
    with pytest.raises(UsageError, match="hflip.*Tensor"):
        aug([[1.0]])
    with pytest.raises(UsageError, match="hflip.*Generator, got Generator"):  # a numpy generator
        aug(fw.smooth_images(n=2), generator=np.random.default_rng(0))
    with pytest.raises(TypeError):
        aug(fw.smooth_images(n=2), fw.generator(0))  # the generator is keyword-only
    with pytest.raises(UsageError, match="1 or 3 channels"):
        fw.A.Grayscale(p=1.0)(fw.batch(np.zeros((2, 4, 4, 2), np.float32)))


def test_registry_create_rejects_unknown_parameters(fw):
    with pytest.raises(UsageError, match="degree"):
        registry.create_augmentation("rotation", framework=fw.name, degree=3)
    assert isinstance(registry.create_augmentation("rotation", framework=fw.name, degrees=5.0), fw.A.Rotation)


@pytest.mark.parametrize("name", NAMES)
def test_torch_runs_on_the_tensor_device(name):
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("needs CUDA")
    fw = Framework("torch")
    x = fw.smooth_images().cuda()
    out = fw.create(name, severity=5)(x, generator=torch.Generator().manual_seed(0))
    assert out.device == x.device and out.shape == x.shape
    cpu = fw.create(name, severity=5)(x.cpu(), generator=torch.Generator().manual_seed(0))
    assert torch.allclose(out.cpu(), cpu, atol=1e-3)


@pytest.mark.parametrize("mode", ["bilinear", "nearest"])
def test_torch_warps_run_batched_and_match_torchvision_image_by_image(mode):
    """rotation / affine / perspective warp the whole batch at once, equal to F.rotate / F.affine /
    F.perspective per image bit for bit (a 90-degree angle takes torchvision's exact rot90 path)."""
    torch = pytest.importorskip("torch")
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms.v2 import functional as F

    from harness_torch.augmentations import TorchAugmentOps

    ops, n, h, w = TorchAugmentOps(), 5, 12, 16
    x = torch.rand(n, h, w, 3, generator=torch.Generator().manual_seed(0)).permute(0, 3, 1, 2)
    draws = torch.rand(14, n, generator=torch.Generator().manual_seed(1)).tolist()
    kw = {"interpolation": InterpolationMode(mode), "fill": 0.25}
    angles = [40 * a - 20 for a in draws[0]]
    angles[1] = 90.0
    expected = torch.stack([F.rotate(image, angle, **kw) for image, angle in zip(x, angles)])
    assert torch.equal(ops.rotate(x, angles, mode, 0.25), expected)
    tx, ty = [4 * v - 2 for v in draws[1]], [4 * v - 2 for v in draws[2]]
    scale, sx, sy = [0.8 + 0.4 * v for v in draws[3]], [20 * v - 10 for v in draws[4]], [20 * v - 10 for v in draws[5]]
    expected = torch.stack([F.affine(x[i], 0.0, translate=[tx[i], ty[i]], scale=scale[i], shear=[sx[i], sy[i]], **kw)
                            for i in range(n)])
    assert torch.equal(ops.affine(x, tx, ty, scale, sx, sy, mode, 0.25), expected)
    dx, dy = [[3 * v for v in draws[6 + k]] for k in range(4)], [[3 * v for v in draws[10 + k]] for k in range(4)]
    start = [[0, 0], [w - 1, 0], [w - 1, h - 1], [0, h - 1]]
    expected = torch.stack([F.perspective(x[i], start, [[dx[0][i], dy[0][i]], [w - 1 - dx[1][i], dy[1][i]],
                                                        [w - 1 - dx[2][i], h - 1 - dy[2][i]],
                                                        [dx[3][i], h - 1 - dy[3][i]]], **kw) for i in range(n)])
    assert torch.equal(ops.perspective(x, dx, dy, mode, 0.25), expected)
