"""evaluate_robustness(keep_adversarial=True): each example's worst-case image per eps, under linf and l2."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from harness.errors import UsageError  # noqa: E402
from harness.frameworks import get_runtime  # noqa: E402
from harness.robustness import evaluate_robustness  # noqa: E402
from harness.robustness.checks import project_adversarial  # noqa: E402

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def linear():
    """A fixed random linear classifier on 8x8 grey images (no training) and 24 images of noise."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10)).eval()
    images = np.random.default_rng(0).integers(0, 256, size=(24, 8, 8, 1), dtype=np.uint8)
    return model, images


@pytest.mark.parametrize("norm, eps", [("linf", 0.05), ("l2", 0.5)])
def test_kept_images_are_the_ensemble_worst_case(linear, norm, eps):
    model, images = linear
    runtime = get_runtime("torch")
    labels = runtime.predict_logits(model, images).argmax(axis=1)  # predicted-label mode: all start correct
    report = evaluate_robustness(runtime, model, images, labels, eps=(eps / 2, eps), norm=norm, progress=False,
                                 attacks={"fgsm": {}, "pgd": {"steps": 3, "restarts": 1}}, keep_adversarial=True)
    assert sorted(report.adversarial) == report.eps
    x = images.astype(np.float32) / 255
    for e in report.eps:
        kept = report.adversarial[e]
        assert kept.shape == x.shape and kept.dtype == np.float32
        assert project_adversarial(kept, x, e, norm=norm)[1] == {"not_finite": 0, "outside_box": 0, "outside_budget": 0}
        fooled = runtime.predict_logits_float(model, kept).argmax(axis=1) != labels
        assert np.array_equal(fooled, ~report.survival["ensemble"][e])  # fooled by a member <=> kept image fools
        assert fooled.any()
    params = report.attack_params["pgd"][eps]
    assert params["norm"] == norm and params["eps"] == eps


def test_without_keep_nothing_is_kept_and_norm_is_checked(linear):
    model, images = linear
    runtime = get_runtime("torch")
    labels = runtime.predict_logits(model, images).argmax(axis=1)
    report = evaluate_robustness(runtime, model, images[:4], labels[:4], eps=(0.05,), attacks=["fgsm"],
                                 progress=False)
    assert report.adversarial == {}
    with pytest.raises(UsageError, match="norm must be linf or l2, got 'l3'"):
        evaluate_robustness(runtime, model, images[:4], labels[:4], eps=(0.5,), attacks=["fgsm"], norm="l3",
                            progress=False)
    with pytest.raises(UsageError, match="config.norm == 'l2'"):  # a member's own norm must not differ
        evaluate_robustness(runtime, model, images[:4], labels[:4], eps=(0.5,), attacks={"pgd": {"norm": "linf"}},
                            norm="l2", progress=False)


def test_l2_projection_scales_into_the_ball():
    clean = np.zeros((2, 2, 2, 1), np.float32)
    adversarial = np.full_like(clean, 0.5)  # l2 size 1.0
    fixed, bad = project_adversarial(adversarial, clean, 0.5, norm="l2")
    assert bad["outside_budget"] == 2
    assert np.allclose(np.sqrt((fixed ** 2).sum(axis=(1, 2, 3))), 0.5)
