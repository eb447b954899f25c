"""TF defenses: the seed experiment (NSL adversarial regularization vs the baseline, on perturbations
from a reference model), NSL's knobs, and the save/load round trip of an NSL-trained model."""

from __future__ import annotations

import numpy as np
import pytest

from harness.errors import UsageError
from harness.frameworks import get_runtime, quantize_within_budget
from harness.registry import create_attack, create_defense
from harness_tf.train import model_weights
from tf_helpers import FAST, nsl_cnn, subset

STEP = 0.2  # the seeds' adv_step_size, used for training and for the reference perturbations
BUDGET = {"epochs": 10, "optimizer": "adam", "lr": 3e-3, "weight_decay": 0.0, "seed": 1, **FAST}


@pytest.fixture(scope="module")
def regularized(digits_splits):
    """nsl-cnn trained with NSL adversarial regularization (the seeds' defaults), seed 1."""
    model = nsl_cnn(seed=1)
    create_defense("nsl-adversarial-regularization", framework="tf", multiplier=0.2, adv_step_size=STEP,
                   **BUDGET).fit(model, digits_splits.train)
    return model


@pytest.fixture(scope="module")
def baseline(second_digits_model):
    """nsl-cnn with the same seed and budget, trained without regularization (shared: tests/tf/conftest.py)."""
    assert BUDGET["epochs"] == 10 and BUDGET["seed"] == 1  # what second_digits_model is trained with
    return second_digits_model


def test_seed_experiment_nsl_is_clearly_more_accurate_on_reference_perturbations(
        digits_splits, digits_model, baseline, regularized):
    runtime = get_runtime("tf")
    test = digits_splits.test
    figures = {}
    for step in (0.1, STEP):
        attack = create_attack("nsl-perturb", framework="tf", reference_model=digits_model, adv_step_size=step)
        perturbed = quantize_within_budget(runtime.adversarial_images(digits_model, test.images, test.labels, attack),
                                           test.images, step)  # stored as uint8, as the harness stores them
        for name, model in (("reference", digits_model), ("baseline", baseline), ("nsl", regularized)):
            figures[name, "clean"] = runtime.accuracy(model, test.images, test.labels)["top1"]
            figures[name, step] = runtime.accuracy(model, perturbed, test.labels)["top1"]
    print("\nseed experiment on digits (test split, %d images):" % len(test.labels))
    for name in ("reference", "baseline", "nsl"):
        print(f"  {name:9s} clean {figures[name, 'clean']:.1%}  "
              f"nsl-perturb 0.1 {figures[name, 0.1]:.1%}  nsl-perturb {STEP} {figures[name, STEP]:.1%}")
    assert figures["baseline", "clean"] > 0.9 and figures["nsl", "clean"] > 0.9
    assert figures["nsl", STEP] > figures["baseline", STEP] + 0.15
    assert figures["nsl", 0.1] > figures["baseline", 0.1]
    assert figures["reference", STEP] < 0.2  # white-box for the reference itself


def test_nsl_trained_model_round_trips_through_the_runtime(regularized, digits_splits, tmp_path):
    runtime = get_runtime("tf")
    path = tmp_path / runtime.weights_file
    runtime.save_weights(regularized, path)
    reloaded = runtime.load_weights(nsl_cnn(seed=99), path)
    images = digits_splits.test.images
    assert np.array_equal(runtime.predict_logits(reloaded, images), runtime.predict_logits(regularized, images))
    # the NSL wrapper adds no weights: the base model is all there is to save
    assert len(model_weights(regularized)) == len(model_weights(nsl_cnn()))


def test_every_nsl_knob_reaches_make_adv_reg_config_and_other_settings_train(digits_splits):
    trainer = create_defense("nsl-adversarial-regularization", framework="tf", multiplier=0.5, adv_step_size=0.05,
                             adv_grad_norm="l2", pgd_iterations=3, pgd_epsilon=0.5, clip_value_min=0.1,
                             clip_value_max=0.9, random_init=True, epochs=1, **FAST)
    config = trainer.adv_config
    neighbour = config.adv_neighbor_config
    assert config.multiplier == 0.5 and neighbour.adv_step_size == 0.05 and neighbour.adv_grad_norm.value == "l2"
    assert (neighbour.pgd_iterations, neighbour.pgd_epsilon, neighbour.random_init) == (3, 0.5, True)
    assert (neighbour.clip_value_min, neighbour.clip_value_max) == ({"image": 0.1}, {"image": 0.9})
    history = trainer.fit(nsl_cnn(), subset(digits_splits.train, 130))
    assert np.isfinite(history[0].train_loss)


@pytest.mark.parametrize(
    "params, message",
    [({"multiplier": -1.0}, "multiplier must be a number >= 0"),
     ({"adv_step_size": 0.0}, "adv_step_size must be a number > 0"),
     ({"adv_grad_norm": "linf"}, "adv_grad_norm must be one of infinity, l2"),
     ({"pgd_iterations": 0}, "pgd_iterations must be an integer >= 1"),
     ({"clip_value_min": 1.0, "clip_value_max": 0.0}, "clip_value_min must be below clip_value_max"),
     ({"random_init": "yes"}, "random_init must be true or false"),
     ({"beta": 1.0}, "has no parameter 'beta'")],
)
def test_bad_nsl_knobs_are_one_line_usage_errors(params, message):
    with pytest.raises(UsageError, match=message) as info:
        create_defense("nsl-adversarial-regularization", framework="tf", **params)
    assert "\n" not in info.value.message


def test_nsl_neighbours_are_clipped_to_images(digits_model, digits_batch):
    """The neighbours NSL trains on stay in [clip_value_min, clip_value_max] (NSL matches the bounds
    to features by name; bare numbers clipped nothing, and 0.2 steps left [0, 1])."""
    import tensorflow as tf

    x, y = digits_batch
    trainer = create_defense("nsl-adversarial-regularization", framework="tf", adv_step_size=0.2, **FAST)
    trainer.loss = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    neighbours = np.asarray(trainer.prepare(digits_model).perturb_on_batch({"image": x, "label": y})["image"])
    assert neighbours.min() >= 0.0 and neighbours.max() <= 1.0
    assert np.abs(neighbours - x.numpy()).max() == pytest.approx(0.2, abs=1e-6)
