"""The examples in docs/plugins.md are complete plugins: each is registered in-process, created through the
registry (so through its contract check) and exercised on tiny inputs, so the docs cannot drift."""

from __future__ import annotations

import re
import types
from pathlib import Path

import numpy as np
import pytest
from contract_helpers import float_batch, require, to_numpy

from harness import registry
from harness.plugins import get_plugin_manager

DOCS = Path(__file__).resolve().parents[2] / "docs" / "plugins.md"
EXAMPLES = re.findall(r"<!-- contract-example -->\n```python\n(.*?)```", DOCS.read_text(), flags=re.S)


def test_every_kind_has_an_example():
    hooks = set(re.findall(r"def (harness_register_\w+)\(", "".join(EXAMPLES)))
    assert len(EXAMPLES) == 6 and hooks == {f"harness_register_{kind}s" for kind in
                                            ("dataset", "backbone", "augmentation", "attack", "defense")}


@pytest.fixture(scope="module")
def documented():
    """Every example registered as its own plugin module; the registry rebuilt; restored afterwards."""
    from harness.plugins import reset_plugin_manager

    reset_plugin_manager()
    for index, source in enumerate(EXAMPLES):
        module = types.ModuleType(f"docs_example_{index}")
        exec(compile(source, f"{DOCS}:example {index}", "exec"), module.__dict__)
        get_plugin_manager().register_module(module, module.__name__, "docs")
    registry.clear_cache()
    yield
    reset_plugin_manager()
    registry.clear_cache()


def test_dataset_example(documented):
    plan = registry.create_dataset("checkerboards").plan(skip_bad=False)
    assert set(plan.splits) == {"train", "val"} and plan.image_size == (8, 8)


def test_augmentation_example(documented):
    x = np.random.default_rng(0).integers(0, 256, (6, 8, 8, 1), dtype=np.uint8)
    aug = registry.create_augmentation("invert", p=1.0)
    assert np.array_equal(aug(x, generator=np.random.default_rng(1)), 255 - x)


@pytest.mark.parametrize("backbone", ["tiny-keras-mlp", "tiny-mlp"])
def test_backbone_examples(documented, backbone):
    framework = registry.get_backbone(backbone).framework
    require(framework)
    model = registry.create_backbone(backbone, num_classes=3, input_shape=(8, 8, 3))
    logits = np.asarray(model(float_batch(framework)).detach() if framework == "torch" else model(float_batch("tf")))
    assert logits.shape == (2, 3) and np.isfinite(logits).all()


def test_attack_and_defense_examples(documented):
    require("torch")
    from harness.data import load_dataset

    train = load_dataset("checkerboards").split("train")
    model = registry.create_backbone("tiny-mlp", num_classes=2, input_shape=(8, 8, 1))
    trainer = registry.create_defense("noisy-training", epochs=2, batch_size=8, lr=0.1, progress=False)
    history = trainer.fit(model, train)
    assert len(history) == 2
    attack = registry.create_attack("sign-step", eps=0.1)
    x = float_batch("torch")[:, :1]
    adversarial = attack(model.eval(), x, np.array([0, 1]))
    delta = to_numpy(adversarial, "torch") - to_numpy(x, "torch")
    assert adversarial.shape == x.shape and np.abs(delta).max() <= 0.1 + 1e-6
