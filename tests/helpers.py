"""Test helpers: fake installed distributions with entry points, image-folder writers, shared Keras backbones."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image


def install_fake_distribution(site: Path, name: str, entry_points: dict[str, str], version: str = "1.0") -> None:
    """Write ``<name>-<version>.dist-info`` with ``harness`` entry points into ``site``.

    Callers put ``site`` on sys.path (``monkeypatch.syspath_prepend``) so it goes away after the test.
    """
    info = site / f"{name.replace('-', '_')}-{version}.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
    lines = "\n".join(f"{ep} = {target}" for ep, target in entry_points.items())
    (info / "entry_points.txt").write_text(f"[harness]\n{lines}\n")


def write_image(path: Path, size=(64, 64), mode="RGB", seed=0, fmt=None) -> Path:
    """A real image file with random content."""
    rng = np.random.default_rng(seed)
    channels = {"RGB": 3, "L": 1, "CMYK": 4, "RGBA": 4}[mode]
    array = rng.integers(0, 256, size=(size[1], size[0], channels), dtype=np.uint8)
    image = Image.fromarray(array[..., 0] if channels == 1 else array, mode=mode)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, format=fmt or ("JPEG" if path.suffix.upper() in (".JPEG", ".JPG") else None))
    return path


def make_tiny_imagenet(root: Path, wnids=("n01443537", "n01629819", "n01641577"), train_per_class=4,
                       val_per_class=2, test=3) -> Path:
    """A tiny-imagenet-200 folder in the real layout with real JPEGs (one grayscale, one CMYK)."""
    base = root / "tiny-imagenet-200"
    base.mkdir(parents=True)
    (base / "wnids.txt").write_text("\n".join(wnids) + "\n")
    words = [f"{w}\tclass {i}, synonym {i}" for i, w in enumerate(wnids)] + ["n99999999\tunused"]
    (base / "words.txt").write_text("\n".join(words) + "\n")
    seed = 0
    for w in wnids:
        for i in range(train_per_class):
            seed += 1
            write_image(base / "train" / w / "images" / f"{w}_{i}.JPEG", seed=seed)
        (base / "train" / w / f"{w}_boxes.txt").write_text("")
    write_image(base / "train" / wnids[0] / "images" / f"{wnids[0]}_0.JPEG", mode="L", seed=99)  # grayscale
    write_image(base / "train" / wnids[1] / "images" / f"{wnids[1]}_0.JPEG", mode="CMYK", seed=98)
    lines = []
    for j in range(val_per_class * len(wnids)):
        name = f"val_{j}.JPEG"
        write_image(base / "val" / "images" / name, seed=1000 + j)
        lines.append(f"{name}\t{wnids[j % len(wnids)]}\t0\t0\t63\t63")
    (base / "val" / "val_annotations.txt").write_text("\n".join(lines) + "\n")
    for j in range(test):
        write_image(base / "test" / "images" / f"test_{j}.JPEG", seed=2000 + j)
    return base


#: hostile and tiny submissions the scoring tests run through the real scorer
TEST_SUBMISSIONS = Path(__file__).resolve().parent / "submissions"
#: the project's example submissions
EXAMPLE_SUBMISSIONS = Path(__file__).resolve().parents[1] / "submissions"


def survivors(marker: str) -> list[int]:
    """Live (not zombie) processes whose command line contains ``marker``: PIDs seen from here, so that a
    PID namespace (bubblewrap) does not matter."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and marker in (entry / "cmdline").read_bytes().decode("utf-8", "replace") \
                    and "State:\tZ" not in (entry / "status").read_text():
                found.append(int(entry.name))
        except OSError:
            pass
    return found


def check_budget(x: np.ndarray, x_adv: np.ndarray, eps: float, norm: str) -> None:
    """``x_adv`` (float32, shaped like ``x``) lies in [0, 1] and in the ``norm`` ball of radius ``eps`` around ``x``."""
    x, x_adv = np.asarray(x), np.asarray(x_adv)
    assert x_adv.shape == x.shape and x_adv.dtype == np.float32
    assert x_adv.min() >= 0.0 and x_adv.max() <= 1.0
    delta = (x_adv - x).reshape(len(x), -1)
    if norm == "linf":
        assert np.abs(delta).max() <= eps + 1e-6
    else:
        assert np.linalg.norm(delta, axis=1).max() <= eps * (1 + 1e-5)


FUZZ_PREFIX = "harness-fuzz-"


def fuzz_file(content: str | bytes, name: str) -> Path:
    """``content`` written as ``name`` in a fresh temp folder (hypothesis examples cannot use tmp_path)."""
    path = Path(tempfile.mkdtemp(prefix=FUZZ_PREFIX)) / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8", "surrogatepass"))
    return path


def remove_fuzz_files() -> None:
    """Remove every folder :func:`fuzz_file` made."""
    for folder in Path(tempfile.gettempdir()).glob(FUZZ_PREFIX + "*"):
        shutil.rmtree(folder, ignore_errors=True)


def tensorflow_for_tests(*, module_level: bool = False):
    """(tf, keras) for tests: Keras 2 selected before TensorFlow starts, one thread (the test machines have 2 cores),
    quiet logs; skips when TensorFlow, tf-keras or neural-structured-learning is missing."""
    import importlib.util
    import warnings

    import pytest

    import harness_tf  # noqa: F401 - selects Keras 2 (TF_USE_LEGACY_KERAS) before TensorFlow is imported

    tf = pytest.importorskip("tensorflow")
    keras = pytest.importorskip("tf_keras")
    if importlib.util.find_spec("neural_structured_learning") is None:  # imported through harness_tf.nsl_compat
        pytest.skip("neural-structured-learning is not installed", allow_module_level=module_level)
    try:
        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:  # TensorFlow already started elsewhere in this session
        pass
    tf.get_logger().setLevel("ERROR")
    # Once TensorFlow is loaded, torch's CUDA probe on a machine without CUDA warns ("CUDA initialization: ...
    # Error 302"); torch still runs on the CPU.
    warnings.filterwarnings("ignore", "CUDA initialization", UserWarning)
    return tf, keras


_KERAS_BACKBONES: dict[tuple, object] = {}


def keras_backbone(name: str, input_shape: tuple[int, int, int] = (8, 8, 3), num_classes: int = 3):
    """Keras backbone ``name`` built by the registry with its default parameters, once per session and shared
    by the backbone contract and tests/tf (a Keras application takes 2-12 s to build on 2 cores). Tests that
    change it (e.g. which layers are trainable) must put it back as they found it."""
    key = (name, tuple(input_shape), int(num_classes))
    if key not in _KERAS_BACKBONES:
        from harness import registry

        _KERAS_BACKBONES[key] = registry.create_backbone(name, framework="tf", num_classes=num_classes,
                                                         input_shape=input_shape)
    return _KERAS_BACKBONES[key]
