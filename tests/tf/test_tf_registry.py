"""The TensorFlow plugins in the registries: one spec per name and framework, same parameters as torch."""

from __future__ import annotations

import subprocess
import sys

import pytest

from harness import registry
from harness.attacks import ATTACK_PARAMS
from harness.errors import PluginError
from harness.perturb.severity import AUGMENTATION_PARAMS
from harness.training import TrainingConfig

BACKBONES = ["densenet121", "efficientnet_b0", "mobilenet_v2", "nasnet_mobile", "nsl-cnn"]
DEFENSES = ["nsl-adversarial-regularization", "standard"]
ATTACKS = ["apgd-ce", "apgd-t", "bim", "fgsm", "nsl-perturb", "pgd", "square"]


def tf_only(kind):
    """Names with a TensorFlow spec of their own (framework-neutral "any" plugins are usable from tf too)."""
    return [name for name in registry.list_plugins(kind, framework="tf")
            if registry.get_spec(kind, name, framework="tf").framework == "tf"]


def test_the_expected_tf_plugins_are_registered():
    assert tf_only("backbone") == BACKBONES
    assert tf_only("defense") == DEFENSES
    assert tf_only("attack") == ATTACKS
    assert tf_only("augmentation") == sorted(AUGMENTATION_PARAMS)
    for kind in ("backbone", "defense", "attack", "augmentation"):
        for name in tf_only(kind):
            spec = registry.get_spec(kind, name, framework="tf")
            assert spec.source == "tf" and spec.description


@pytest.mark.parametrize("name", sorted(ATTACK_PARAMS))
def test_attack_params_are_the_shared_spec_in_both_frameworks(name):
    assert dict(registry.get_attack(name, framework="tf").params) == ATTACK_PARAMS[name]
    if "torch" in registry.variants("attack", name):
        assert (dict(registry.get_attack(name, framework="torch").params)
                == dict(registry.get_attack(name, framework="tf").params))


@pytest.mark.parametrize("name", sorted(AUGMENTATION_PARAMS))
def test_augmentation_params_are_the_shared_spec(name):
    assert dict(registry.get_augmentation(name, framework="tf").params) == AUGMENTATION_PARAMS[name]


def test_defense_params_are_the_trainer_knobs_plus_their_own():
    standard = dict(registry.get_defense("standard", framework="tf").params)
    assert standard == TrainingConfig.defaults()
    nsl = dict(registry.get_defense("nsl-adversarial-regularization", framework="tf").params)
    assert {k: nsl[k] for k in set(nsl) - set(standard)} == {
        "multiplier": 0.2, "adv_step_size": 0.2, "adv_grad_norm": "infinity", "pgd_iterations": 1,
        "pgd_epsilon": None, "clip_value_min": 0.0, "clip_value_max": 1.0, "random_init": False}


@pytest.mark.parametrize("kind, name", [("attack", n) for n in ATTACKS] + [("defense", n) for n in DEFENSES]
                         + [("augmentation", n) for n in sorted(AUGMENTATION_PARAMS)])
def test_every_tf_plugin_is_creatable_and_rejects_unknown_params(kind, name):
    plugin = registry.create(kind, name, framework="tf")
    assert type(plugin).__module__.startswith("harness_tf.")
    with pytest.raises(PluginError, match=f"{kind} '{name}' has no parameter 'no_such_knob'"):
        registry.create(kind, name, framework="tf", no_such_knob=1)


def test_nsl_cnn_backbone_is_creatable_and_rejects_unknown_params():
    model = registry.create_backbone("nsl-cnn", framework="tf", num_classes=10, input_shape=(8, 8, 1))
    assert model.output_shape == (None, 10)
    with pytest.raises(PluginError, match="has no parameter 'hiden'. Did you mean 'hidden'"):
        registry.create_backbone("nsl-cnn", framework="tf", num_classes=10, input_shape=(8, 8, 1), hiden=3)
    # the Keras applications are built in test_tf_backbones.py (slower)


def test_importing_the_plugin_module_does_not_import_tensorflow():
    code = "import sys, harness_tf.plugin; sys.exit('tensorflow' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_torchvision_can_follow_tensorflow_in_one_process():
    """harness_tf loads triton before TensorFlow: the other order aborts in LLVM."""
    pytest.importorskip("torchvision")
    code = "import harness_tf, tensorflow, torchvision, torch._dynamo; print('ok')"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr[-500:]
