"""harness_tf.nsl_compat: NSL imports on TensorFlow without tf.estimator, and leaves a real one alone."""

from __future__ import annotations

import sys
import types

import pytest
import tensorflow as tf

from harness.errors import PluginError
from harness_tf import nsl_compat


def test_nsl_imports_and_its_keras_api_works_on_this_tensorflow():
    nsl = nsl_compat.import_nsl()
    assert nsl.__version__ == "1.4.0"
    assert hasattr(nsl.keras, "AdversarialRegularization")
    config = nsl.configs.make_adv_reg_config(multiplier=0.2, adv_step_size=0.2, adv_grad_norm="infinity")
    assert config.multiplier == 0.2
    if not nsl_compat.has_estimator(tf):  # TF >= 2.16: the stand-in is what NSL imported
        stand_in = sys.modules[nsl_compat.ESTIMATOR_MODULE]
        assert getattr(stand_in, "__harness_stand_in__", False)
        with pytest.raises(PluginError, match="TensorFlow removed tf.estimator in 2.16"):
            stand_in.ModeKeys  # noqa: B018 - any use of the stand-in says why it is missing
        assert nsl_compat.install_estimator_shim()  # idempotent: the stand-in is not a real estimator


def test_shim_is_a_no_op_when_tensorflow_has_an_estimator_module(monkeypatch):
    real = types.ModuleType("tensorflow.estimator")
    real.ModeKeys = object()
    monkeypatch.setitem(sys.modules, nsl_compat.ESTIMATOR_MODULE, real)
    assert nsl_compat.has_estimator(tf)
    assert nsl_compat.install_estimator_shim() is False
    assert sys.modules[nsl_compat.ESTIMATOR_MODULE] is real


def test_shim_is_a_no_op_when_tf_estimator_is_an_attribute(monkeypatch):
    monkeypatch.delitem(sys.modules, nsl_compat.ESTIMATOR_MODULE, raising=False)
    real = types.ModuleType("tensorflow_estimator")
    monkeypatch.setattr(tf, "estimator", real, raising=False)
    assert nsl_compat.install_estimator_shim() is False
    assert nsl_compat.ESTIMATOR_MODULE not in sys.modules


def test_keras_3_is_refused_with_the_fix(monkeypatch):
    import tf_keras

    monkeypatch.setattr(tf_keras, "Model", type("OtherModel", (), {}))
    with pytest.raises(PluginError, match="tf.keras is Keras 3") as info:
        nsl_compat.import_nsl()
    assert "TF_USE_LEGACY_KERAS=1" in info.value.hint
