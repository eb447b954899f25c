"""Framework-neutral noise maths (numpy) and severity tables."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from harness.errors import UsageError
from harness.perturb import (
    AUGMENTATION_PARAMS,
    AUGMENTATION_SEVERITY,
    NOISE_NAMES,
    ArrayOps,
    NumpyOps,
    apply_noise,
    noise_params,
    numpy_noise,
    resolve,
)

GREY = np.full((8, 3, 32, 32), 0.5, dtype=np.float32)


@pytest.mark.parametrize("severity, sigma", list(zip(range(1, 6), (0.04, 0.08, 0.12, 0.15, 0.18))))
def test_gaussian_std_matches_sigma_on_mid_grey(severity, sigma):
    noisy = numpy_noise("gaussian-noise", GREY, severity, seed=0)
    assert noisy.dtype == np.float32
    assert abs(noisy.mean() - 0.5) < 0.005
    assert noisy.std() == pytest.approx(sigma, rel=0.03)  # 0.5 is >2.7 sigma from the clip


@pytest.mark.parametrize("severity, lam", list(zip(range(1, 6), (500, 250, 100, 75, 50))))
def test_shot_noise_is_poisson(severity, lam):
    x = np.full((8, 3, 32, 32), 0.4, dtype=np.float32)
    noisy = numpy_noise("shot-noise", x, severity, seed=0)
    assert abs(noisy.mean() - 0.4) < 0.005
    assert noisy.var() == pytest.approx(0.4 / lam, rel=0.05)  # Var[Poisson(x lam) / lam] = x / lam
    counts = noisy * lam
    assert np.allclose(counts, np.round(counts), atol=1e-3)  # whole photon counts


@pytest.mark.parametrize("severity, amount", list(zip(range(1, 6), (0.01, 0.02, 0.03, 0.05, 0.07))))
def test_salt_and_pepper_hits_the_right_share(severity, amount):
    noisy = numpy_noise("salt-and-pepper", GREY, severity, seed=0)
    salt, pepper, kept = (noisy == 1).mean(), (noisy == 0).mean(), (noisy == 0.5).mean()
    assert salt == pytest.approx(amount / 2, rel=0.1)
    assert pepper == pytest.approx(amount / 2, rel=0.1)
    assert salt + pepper + kept == pytest.approx(1.0)


def test_salt_vs_pepper_and_amount_override_severity():
    noisy = numpy_noise("salt-and-pepper", GREY, 1, seed=0, amount=0.2, salt_vs_pepper=1.0)
    assert (noisy == 1).mean() == pytest.approx(0.2, rel=0.05)
    assert (noisy == 0).mean() == 0


@pytest.mark.parametrize("name", NOISE_NAMES)
def test_noise_grows_with_severity_and_stays_in_range(name):
    x = np.random.default_rng(1).random((8, 3, 16, 16), dtype=np.float32)
    changes = []
    for severity in range(1, 6):
        noisy = numpy_noise(name, x, severity, seed=0)
        assert noisy.shape == x.shape and noisy.dtype == x.dtype
        assert noisy.min() >= 0 and noisy.max() <= 1
        changes.append(np.abs(noisy - x).mean())
    assert changes == sorted(changes) and changes[0] < changes[-1]


@pytest.mark.parametrize("name", NOISE_NAMES)
def test_deterministic_given_seed(name):
    a, b = numpy_noise(name, GREY, seed=3), numpy_noise(name, GREY, seed=3)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, numpy_noise(name, GREY, seed=4))
    rng_a, rng_b = np.random.default_rng(5), np.random.default_rng(5)
    assert np.array_equal(apply_noise(name, GREY, NumpyOps(rng_a)), apply_noise(name, GREY, NumpyOps(rng_b)))


def test_uint8_images_come_back_uint8():
    images = np.full((2, 16, 16, 3), 128, dtype=np.uint8)
    noisy = numpy_noise("gaussian-noise", images, 5, seed=0)
    assert noisy.dtype == np.uint8 and noisy.shape == images.shape
    assert 30 < noisy.std() < 60  # 0.18 * 255 = 46
    with pytest.raises(UsageError, match="dtype"):
        numpy_noise("gaussian-noise", images.astype(np.int32))


def test_any_array_ops_implementation_drives_the_maths():
    """The maths only calls the five ArrayOps methods: a recording wrapper sees every call."""

    class Recording(NumpyOps):
        def __init__(self):
            super().__init__(0)
            self.calls = []

        def __getattribute__(self, name):
            if name in ("normal", "uniform", "poisson", "clip", "where"):
                object.__getattribute__(self, "calls").append(name)
            return object.__getattribute__(self, name)

    ops = Recording()
    assert isinstance(ops, ArrayOps)
    apply_noise("gaussian-noise", GREY, ops)
    apply_noise("shot-noise", GREY, ops)
    apply_noise("salt-and-pepper", GREY, ops)
    assert set(ops.calls) == {"normal", "uniform", "poisson", "clip", "where"}


@pytest.mark.parametrize(
    "name, params, word",
    [("gaussian-noise", {"sigma": -0.1}, "sigma"), ("shot-noise", {"lam": 0}, "lam"),
     ("salt-and-pepper", {"amount": 1.5}, "amount"), ("salt-and-pepper", {"salt_vs_pepper": -1}, "salt_vs_pepper"),
     ("gaussian-noise", {"lam": 3}, "lam"), ("gaussian-noise", {"severity": 0}, "severity"),
     ("gaussian-noise", {"severity": 2.5}, "severity"), ("gaussian-noise", {"sigma": float("nan")}, "sigma")],
)
def test_invalid_parameters_name_themselves(name, params, word):
    severity = params.pop("severity", 3)
    with pytest.raises(UsageError, match=word):
        noise_params(name, severity, **params)


def test_unknown_noise():
    with pytest.raises(UsageError, match="Unknown noise"):
        noise_params("pink-noise")


def test_severity_tables_are_complete_and_monotonic():
    assert set(AUGMENTATION_PARAMS) == set(AUGMENTATION_SEVERITY)
    for name, table in AUGMENTATION_SEVERITY.items():
        for key, values in table.items():
            assert len(values) == 5, (name, key)
            decreasing = key == "lam"  # fewer photons = more noise
            assert list(values) == sorted(values, reverse=decreasing), (name, key)
        assert AUGMENTATION_PARAMS[name]["severity"] == 3
    assert resolve("rotation", 5) == {"degrees": 20.0}
    assert resolve("rotation", 5, degrees=1.0, fill=0.5) == {"degrees": 1.0, "fill": 0.5}
    assert resolve("rotation", 2, degrees=None) == {"degrees": 6.0}


def test_harness_perturb_and_attacks_import_no_framework():
    code = ("import sys, harness.perturb, harness.attacks; "
            "bad = [m for m in ('torch', 'tensorflow') if m in sys.modules]; assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)
