"""evaluate_robustness on Keras models: the TF runtime carries the attack ensemble (PGD, and APGD and
Square through ART's TensorFlowV2Classifier), transfer from a TF reference and the sanity flags."""

from __future__ import annotations

import numpy as np
import pytest
import tf_keras as keras

from harness.frameworks import get_runtime
from harness.robustness import Reference, evaluate_robustness
from harness.robustness import checks as C

pytest.importorskip("art")

EPS = (2 / 255, 8 / 255)
FAST = {"pgd": {"steps": 10, "restarts": 1}, "apgd-ce": {"max_iter": 10}, "apgd-t": {"max_iter": 10, "n_targets": 2},
        "square": {"max_iter": 100}}
N = 64


@pytest.fixture(scope="module")
def digits(digits_splits, digits_model, second_digits_model):
    """N test images, their labels, the model under test and an independently trained transfer reference."""
    test = digits_splits.test
    return np.array(test.images[:N]), np.array(test.labels[:N], dtype=np.int64), digits_model, second_digits_model


def test_honest_keras_model_raises_no_flag_and_the_worst_case_holds(digits, tmp_path):
    images, labels, model, other = digits
    report = evaluate_robustness("tf", model, images, labels, eps=EPS, extra_eps=(0.1,), attacks=FAST,
                                 reference=Reference(other, steps=10), seed=0, out_dir=tmp_path)
    assert report.flags == [], [c.detail for c in report.checks if c.flagged]
    assert not any(c.skipped for c in report.checks) and report.clean_accuracy > 0.9
    for e in report.eps:
        ensemble = report.survival["ensemble"][e]
        assert np.array_equal(ensemble, np.logical_and.reduce([report.survival[n][e] for n in FAST]))
    assert report.robust_accuracy[0.1] < report.robust_accuracy[2 / 255] <= report.clean_accuracy
    assert (tmp_path / "robustness.json").is_file()


def test_a_softmax_head_is_flagged(digits):
    images, labels, model, _ = digits
    softmax = keras.Model(model.inputs, keras.layers.Softmax()(model.outputs[0]))
    report = evaluate_robustness(get_runtime("tf"), softmax, images, labels, eps=(8 / 255,),
                                 attacks={"pgd": {"steps": 5}}, seed=0)
    assert C.PROBABILITY_OUTPUTS in report.flags
