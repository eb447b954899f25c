"""Code-free export (harness.export): what cannot be exported says why, bad folders are refused, loading
imports no submission code, and white-box evaluation gives the same numbers on the exported model.

Fidelity for every built-in backbone is in tests/contracts/test_backbones_contract.py."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from harness.errors import UsageError
from harness.export import INFO_FILE, NotExportable, export_model, load_exported

REPO = Path(__file__).resolve().parents[2]


def _digits(n: int = 64):
    from harness.data import load_dataset

    split = load_dataset("digits").split("test")
    return np.asarray(split.images[:n]), np.asarray(split.labels[:n])


# --------------------------------------------------------------------------- what cannot be exported


def _unexportable(kind: str):
    import torch

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = torch.nn.Linear(8 * 8 * 3, 3)

        def forward(self, x):
            y = self.linear(x.flatten(1))
            if kind == "branch":  # control flow on the data
                return y if y.mean() > 0 else -y
            if kind == "numpy":  # leaves torch
                return torch.from_numpy(np.tanh(y.detach().numpy()))
            return y + random.random()  # Python-side randomness: traced as one constant

    return Net()


@pytest.mark.parametrize("kind, cause", [("branch", "data-dependent"), ("numpy", ".numpy()"),
                                         ("random", "differ from the model's")])
def test_unexportable_model_raises_one_line_reason_and_writes_nothing(kind, cause, tmp_path):
    pytest.importorskip("torch")
    import harness_torch.runtime as runtime

    loaded = SimpleNamespace(model=_unexportable(kind), runtime=runtime,
                             info={"num_classes": 3, "input_shape": [8, 8, 3]})
    with pytest.raises(NotExportable) as caught:
        export_model(loaded, tmp_path / "export")
    assert cause in caught.value.message and "\n" not in caught.value.message
    assert not (tmp_path / "export").exists() and list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- bad export folders


def test_load_exported_names_the_file_and_field(tmp_path):
    with pytest.raises(UsageError, match=f"no {INFO_FILE}"):
        load_exported(tmp_path)
    info = {"format": "torch.export", "framework": "torch", "num_classes": 3, "input_shape": [8, 8],
            "file": "model.pt2"}
    (tmp_path / INFO_FILE).write_text(json.dumps(info))
    with pytest.raises(UsageError, match=r"export\.json: field 'input_shape'"):
        load_exported(tmp_path)
    (tmp_path / INFO_FILE).write_text(json.dumps({**info, "framework": "jax"}))
    with pytest.raises(UsageError, match="field 'framework' must be one of torch, tf"):
        load_exported(tmp_path)
    (tmp_path / INFO_FILE).write_text(json.dumps({**info, "input_shape": [8, 8, 3]}))
    with pytest.raises(UsageError, match="model.pt2 is missing"):
        load_exported(tmp_path)
    pytest.importorskip("torch")
    (tmp_path / "model.pt2").write_bytes(b"not a zip")
    with pytest.raises(UsageError, match=r"model\.pt2: cannot load exported model: "):
        load_exported(tmp_path)


# --------------------------------------------------------------------------- no submission code when loading

PLUGIN = '''
"""A submission's own backbones (torch and Keras), with a custom layer class."""
from harness import hookimpl
from harness.specs import BackboneSpec


def torch_net(num_classes, input_shape):
    import torch

    class Scaled(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.linear = torch.nn.Linear(int(input_shape[0] * input_shape[1] * input_shape[2]), num_classes)

        def forward(self, x):
            return self.linear(torch.sin(3 * x).flatten(1))

    return Scaled()


def keras_net(num_classes, input_shape):
    import tf_keras as keras
    import tensorflow as tf

    class Sine(keras.layers.Layer):
        def call(self, x):
            return tf.sin(3 * x)

    inputs = keras.Input(shape=tuple(input_shape))
    return keras.Model(inputs, keras.layers.Dense(num_classes)(keras.layers.Flatten()(Sine()(inputs))))


@hookimpl
def harness_register_backbones():
    return [BackboneSpec(name="probe-net", factory=torch_net, description="probe", framework="torch"),
            BackboneSpec(name="probe-net", factory=keras_net, description="probe", framework="tf")]
'''

LOADER = '''
import json, sys
import numpy as np
from harness.export import load_exported
images_path, exports, submission, *frameworks = sys.argv[1:]
images = np.load(images_path)
logits = {fw: load_exported(exports + "/" + fw).predict_logits(images).tolist() for fw in frameworks}
leaked = [name for name, module in sys.modules.items()
          if "zz_probe" in name or str(getattr(module, "__file__", None) or "").startswith(submission)]
import harness.plugins
print(json.dumps({"logits": logits, "leaked": leaked, "plugin_manager": harness.plugins._manager is not None}))
'''


def test_loading_an_export_imports_no_submission_code(tmp_path):
    """Exported in-process with the submission's plugin module registered; loaded in a fresh process with
    plugin autoload off and the submission folder deleted: same logits, and no submission module imported."""
    import shutil

    from harness import registry
    from harness.contracts import framework_of
    from harness.frameworks import framework_available, get_runtime
    from harness.submission import submission_plugins

    frameworks = [fw for fw in ("torch", "tf") if framework_available(fw)]
    if not frameworks:
        pytest.skip("no framework installed")
    submission = tmp_path / "submission"
    submission.mkdir()
    (submission / "zz_probe_plugin.py").write_text(PLUGIN)
    (submission / "submission.toml").write_text('plugins = ["zz_probe_plugin"]\n')
    images, _ = _digits(5)
    images = np.repeat(images, 3, axis=-1)[:, :8, :8]  # 8x8 RGB
    np.save(tmp_path / "images.npy", images)
    expected = {}
    with submission_plugins(submission, ("zz_probe_plugin",)):
        for fw in frameworks:
            runtime = get_runtime(fw)
            model = registry.create_backbone("probe-net", framework=fw, num_classes=4, input_shape=(8, 8, 3))
            assert framework_of(model) == fw
            info = {"num_classes": 4, "input_shape": [8, 8, 3]}
            export_model(SimpleNamespace(model=model, runtime=runtime, info=info), tmp_path / "export" / fw)
            expected[fw] = runtime.predict_logits(model, images)
    shutil.rmtree(submission)
    env = {**os.environ, "HARNESS_DISABLE_PLUGIN_AUTOLOAD": "1", "PYTHONPATH": f"{REPO}{os.pathsep}{REPO / 'plugins'}"}
    env.pop("HARNESS_PLUGINS", None)
    command = [sys.executable, "-c", LOADER, str(tmp_path / "images.npy"), str(tmp_path / "export"), str(submission),
               *frameworks]
    result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["leaked"] == [] and report["plugin_manager"] is False
    for fw in frameworks:
        np.testing.assert_allclose(np.asarray(report["logits"][fw]), expected[fw], atol=1e-5)


# --------------------------------------------------------------------------- white-box evaluation on the export


@pytest.mark.parametrize("artifact", ["torch_artifact", "tf_artifact"])
def test_whitebox_evaluation_matches_on_the_exported_model(artifact, request, tmp_path):
    """Phase 2 attacks the exported model: PGD with the same seed gives the same robust accuracy."""
    from harness.robustness import evaluate_robustness
    from harness.workflow import load_model

    loaded = load_model(request.getfixturevalue(artifact), threads=1)
    info = export_model(loaded, tmp_path / "export")
    exported = load_exported(tmp_path / "export", threads=1)
    assert info["format"] == {"torch": "torch.export", "tf": "saved_model"}[loaded.runtime.name]
    assert exported.runtime is loaded.runtime and exported.info == info
    images, labels = _digits(64)
    np.testing.assert_allclose(exported.predict_logits(images), loaded.predict_logits(images), atol=1e-4)
    reports = [evaluate_robustness(runtime, model, images, labels, eps=(0.1,), attacks=["pgd"], progress=False)
               for runtime, model in ((loaded.runtime, loaded.model), (exported.runtime, exported.model))]
    assert reports[0].clean_accuracy > 0.5  # a trained model: the comparison means something
    assert reports[1].clean_accuracy == reports[0].clean_accuracy
    assert reports[1].robust_accuracy == reports[0].robust_accuracy
    assert reports[1].flags == reports[0].flags
