"""evaluate_robustness on torch models: the ensemble's worst case, transfer, files, and every sanity flag
firing on a model built to trip it while staying quiet on an honest one."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("art")

import torch.nn.functional as F  # noqa: E402

from harness import registry  # noqa: E402
from harness.errors import PluginError, UsageError  # noqa: E402
from harness.frameworks import get_runtime  # noqa: E402
from harness.robustness import Reference, evaluate_robustness, transfer_examples  # noqa: E402
from harness.robustness import checks as C  # noqa: E402
from harness.robustness.ensemble import build_ensemble  # noqa: E402

torch.set_num_threads(1)  # tiny models: one thread is fastest on a busy machine

EPS = (2 / 255, 8 / 255)
FAST = {"pgd": {"steps": 10, "restarts": 1}, "apgd-ce": {"max_iter": 10}, "apgd-t": {"max_iter": 10, "n_targets": 2},
        "square": {"max_iter": 100}}
N = 64


def train_cnn(images, labels, seed):
    """The small-cnn backbone trained for a second on digits."""
    torch.manual_seed(seed)
    model = registry.create_backbone("small-cnn", num_classes=10, input_shape=(8, 8, 1), width=16, hidden=64)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255
    y = torch.from_numpy(labels)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(8):
        for batch in torch.randperm(len(y), generator=generator).split(64):
            optimizer.zero_grad()
            F.cross_entropy(model(x[batch]), y[batch]).backward()
            optimizer.step()
    return model.eval()


@pytest.fixture(scope="module")
def digits():
    from harness.data import load_dataset

    ds = load_dataset("digits", val_fraction=0.0, test_fraction=0.22)
    train, test = ds.split("train"), ds.split("test")
    x, y = np.array(train.images), np.array(train.labels, dtype=np.int64)
    return np.array(test.images[:N]), np.array(test.labels[:N], dtype=np.int64), train_cnn(x, y, 0), train_cnn(x, y, 1)


@pytest.fixture(scope="module")
def runtime():
    return get_runtime("torch")


@pytest.fixture(scope="module")
def honest(digits, runtime, tmp_path_factory):
    images, labels, model, other = digits
    out = tmp_path_factory.mktemp("robust")
    report = evaluate_robustness(runtime, model, images, labels, eps=EPS, extra_eps=(0.1,), attacks=FAST,
                                 reference=Reference(other, steps=10), seed=0, out_dir=out)
    return report, out


# --------------------------------------------------------------------------- models built to trip a flag


class Softmax(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(x).softmax(dim=1)


class Noisy(torch.nn.Module):
    """Randomised even in eval mode: a stochastic 'defense'."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model((x + 0.05 * torch.randn_like(x)).clamp(0, 1))


class Quantizer(torch.nn.Module):
    """Rounds the input to the digits' 17 grey levels first: zero gradients, gradient masking."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(torch.round(x * 16) / 16)


class Memorizer(torch.nn.Module):
    """Knows the test images; its logits are a function ``rule(delta, logits)`` of the perturbation."""

    def __init__(self, images, labels, rule):
        super().__init__()
        self.register_buffer("clean", torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255)
        self.register_buffer("labels", torch.from_numpy(labels))
        self.rule = rule

    def forward(self, x):
        nearest = (x[:, None] - self.clean[None]).abs().flatten(2).amax(2).argmin(1)
        delta = x - self.clean[nearest]
        labels = self.labels[nearest]
        logits = 5.0 * F.one_hot(labels, 10).float() + 0.0 * delta.sum()  # in the graph, with a zero gradient
        return self.rule(delta, logits, F.one_hot((labels + 1) % 10, 10).float())


def wrong_for_small_perturbations(delta, logits, wrong):
    """Misclassifies when 0 < mean |delta| < 3/255: robust accuracy rises with eps."""
    size = delta.abs().flatten(1).mean(1)
    return logits + 100.0 * ((size > 0) & (size < 3 / 255)).float()[:, None] * wrong


def trap_for_small_steps(delta, logits, wrong, eps=8 / 255):
    """The loss peaks at |delta| = eps / 2 per pixel; misclassifies when a quarter of the pixels reach 0.9 eps.
    Small steps settle at the peak; one big step jumps to the corners: more PGD steps are weaker."""
    shell = ((delta.abs() - eps / 2) ** 2).flatten(1).mean(1)
    corners = (delta.abs() >= 0.9 * eps).float().flatten(1).mean(1) >= 0.25
    return logits * (1 + 1000 * shell[:, None]) + 100.0 * corners.float()[:, None] * wrong


@pytest.fixture
def third_party_attacks():
    """tests/plugins/ensemble_attack_plugin.py registered in this process: attacks 'sloppy' and 'broken'."""
    import ensemble_attack_plugin

    from harness.plugins import get_plugin_manager

    manager = get_plugin_manager()
    manager.register_module(ensemble_attack_plugin, "ensemble_attack_plugin", "harness-test-attacks", "0.1")
    registry.clear_cache()
    yield
    manager.unregister(name="ensemble_attack_plugin")
    registry.clear_cache()


# --------------------------------------------------------------------------- tests


def test_honest_model_raises_no_flag(honest):
    report, _ = honest
    assert report.flags == [], [c.detail for c in report.checks if c.flagged]
    assert {c.name for c in report.checks} == set(C.FLAGS)
    assert not any(c.skipped for c in report.checks)
    assert report.eps == sorted([*EPS, 0.1])
    assert report.clean_accuracy > 0.9


def test_ensemble_worst_case_is_never_better_than_any_attack(honest):
    report, _ = honest
    for e in report.eps:
        ensemble = report.survival["ensemble"][e]
        for name in FAST:
            assert not np.any(ensemble & ~report.survival[name][e]), (name, e)
            assert report.robust_accuracy[e] <= report.attack_accuracy[name][e]
        assert np.array_equal(ensemble, np.logical_and.reduce([report.survival[n][e] for n in FAST]))
    assert report.robust_accuracy[0.1] < report.robust_accuracy[2 / 255] <= report.clean_accuracy


def test_report_files_and_recorded_hyperparameters(honest):
    report, out = honest
    data = json.loads((out / "robustness.json").read_text())
    assert data["flags"] == [] and data["count"] == N and len(data["robust_accuracy"]) == 3
    for name, defaults in FAST.items():
        params = data["attacks"][name]["params"]
        assert [p["eps"] for p in params] == report.eps
        assert all(p["norm"] == "linf" and p["implementation"] for p in params)
        assert all(params[0][k] == v for k, v in defaults.items())
    assert data["attacks"]["pgd"]["params"][0]["step_size"] == pytest.approx(2.5 * (2 / 255) / 10)
    assert data["transfer"]["reference"] == "reference" and len(data["transfer"]["accuracy"]) == 3
    lines = (out / "robustness.csv").read_text().splitlines()
    assert lines[0] == "eps,eps_255,attack,kind,accuracy,count"
    assert len(lines) == 1 + 1 + 3 * (len(FAST) + 2)  # clean, then per eps: attacks, ensemble, transfer
    assert (out / "robustness.png").read_bytes()[:4] == b"\x89PNG"
    json.dumps(report.to_dict())


def test_outputs_that_are_probabilities_are_flagged(digits, runtime):
    images, labels, model, _ = digits
    report = evaluate_robustness(runtime, Softmax(model), images, labels, eps=(8 / 255,),
                                 attacks={"pgd": {"steps": 5, "restarts": 1},
                                          "art-apgd-t": {"max_iter": 5, "n_targets": 1}})
    assert C.PROBABILITY_OUTPUTS in report.flags
    assert C.ATTACK_FAILED in report.flags  # ART refuses the DLR loss on probabilities: said, not hidden
    # cascade: the failed member broke nothing, so the accuracy after it is the accuracy after pgd
    assert report.attack_accuracy["art-apgd-t"][8 / 255] == report.attack_accuracy["pgd"][8 / 255]


def test_randomised_model_is_flagged(digits, runtime):
    images, labels, model, _ = digits
    report = evaluate_robustness(runtime, Noisy(model), images, labels, eps=(8 / 255,),
                                 attacks={"pgd": {"steps": 5, "restarts": 1}})
    assert C.NONDETERMINISTIC in report.flags


def test_gradient_masking_quantizer_is_flagged(digits, runtime):
    images, labels, model, _ = digits
    eps = (8 / 255, 0.1)
    examples = transfer_examples(runtime, model, images, labels, eps, steps=10)
    report = evaluate_robustness(runtime, Quantizer(model), images, labels, eps=eps,
                                 attacks={"pgd": {"steps": 10, "restarts": 1}, "apgd-ce": {"max_iter": 10},
                                          "square": {"max_iter": 200}}, reference=examples)
    assert {C.ZERO_GRADIENTS, C.BLACKBOX_BEATS_WHITEBOX, C.WHITEBOX_WEAKER_THAN_TRANSFER} <= set(report.flags)
    assert report.robust_accuracy[0.1] <= report.attack_accuracy["square"][0.1]  # square counts in the worst case


def test_accuracy_rising_with_eps_is_flagged(digits, runtime):
    images, labels, _, _ = digits
    model = Memorizer(images, labels, wrong_for_small_perturbations)
    report = evaluate_robustness(runtime, model, images, labels, eps=EPS, attacks={"pgd": {"steps": 3, "restarts": 1}})
    assert report.attack_accuracy["pgd"][8 / 255] > report.attack_accuracy["pgd"][2 / 255]
    assert C.ACCURACY_RISES_WITH_EPS in report.flags


def test_more_steps_being_weaker_is_flagged(digits, runtime):
    images, labels, _, _ = digits
    model = Memorizer(images, labels, trap_for_small_steps)
    report = evaluate_robustness(runtime, model, images, labels, eps=(8 / 255,),
                                 attacks={"pgd": {"steps": 20, "restarts": 1}})
    steps = report.pgd_steps_accuracy
    assert steps[1][8 / 255] < steps[20][8 / 255], steps
    assert C.MORE_STEPS_WEAKER in report.flags


def test_third_party_attacks_are_members_and_invalid_images_are_flagged_and_projected(digits, runtime,
                                                                                      third_party_attacks):
    images, labels, model, _ = digits
    report = evaluate_robustness(runtime, model, images, labels, eps=(2 / 255,),
                                 attacks={"sloppy": {}, "broken": {}, "pgd": {"steps": 5, "restarts": 1}})
    assert {C.ADVERSARIAL_OUT_OF_BUDGET, C.ATTACK_FAILED} <= set(report.flags)
    (params,) = report.to_dict()["attacks"]["sloppy"]["params"]
    assert params == {"attack": "sloppy", "kind": "black-box", "implementation": "test plugin", "eps": 2 / 255,
                      "seed": params["seed"], "norm": "linf"}
    assert report.to_dict()["attacks"]["broken"]["params"][0]["implementation"] == "harness-test-attacks broken plugin"
    budget = next(c for c in report.checks if c.name == C.ADVERSARIAL_OUT_OF_BUDGET)
    (violation,) = budget.values["violations"]
    assert violation["attack"] == "sloppy" and violation["not_finite"] == 1
    assert violation["outside_budget"] == round(report.clean_accuracy * N)
    # projected back into the 2/255 ball, the noise is harmless: scored as such, not as a success
    assert report.attack_accuracy["sloppy"][2 / 255] >= report.attack_accuracy["pgd"][2 / 255]
    assert "boom" in next(c for c in report.checks if c.name == C.ATTACK_FAILED).detail


def test_runtime_functions(digits, runtime):
    images, labels, model, _ = digits
    x = images.astype(np.float32) / 255
    np.testing.assert_allclose(runtime.predict_logits_float(model, x), runtime.predict_logits(model, images),
                               atol=1e-5)
    grads = runtime.input_gradients(model, x, labels, batch_size=16)
    xt = torch.from_numpy(x).requires_grad_(True)
    loss = F.cross_entropy(model(xt.permute(0, 3, 1, 2)), torch.from_numpy(labels), reduction="sum")
    np.testing.assert_allclose(grads, torch.autograd.grad(loss, xt)[0].numpy(), rtol=1e-4, atol=1e-6)
    detached = torch.nn.Sequential()  # output does not depend on the input through autograd
    detached.forward = lambda t: model(t.detach())
    assert not runtime.input_gradients(detached, x[:4], labels[:4]).any()
    art = runtime.art_classifier(model, 10, (8, 8, 1))
    np.testing.assert_allclose(art.predict(x), runtime.predict_logits(model, images), atol=1e-5)
    assert art.clip_values.tolist() == [0.0, 1.0]


def test_bad_arguments(digits, runtime):
    images, labels, model, _ = digits
    with pytest.raises(UsageError, match="Unknown attack 'pgdd'. Did you mean 'pgd'"):
        evaluate_robustness(runtime, model, images, labels, attacks=["pgdd"])
    with pytest.raises(UsageError, match="ensemble attack 'pgd' has no parameter 'stepz'. Did you mean 'steps'"):
        build_ensemble({"pgd": {"stepz": 3}})
    with pytest.raises(UsageError, match="eps is set by the ensemble"):
        build_ensemble({"pgd": {"eps": 0.1}})
    with pytest.raises(UsageError, match="config.norm == 'linf'"):
        evaluate_robustness(runtime, model, images, labels, attacks={"pgd": {"norm": "l2"}})
    with pytest.raises(UsageError, match="max_iter must be an integer >= 1"):
        evaluate_robustness(runtime, model, images, labels, attacks={"square": {"max_iter": 0}})
    with pytest.raises(UsageError, match="eps must be numbers > 0"):
        evaluate_robustness(runtime, model, images, labels, eps=(0,))
    with pytest.raises(UsageError, match="images must be uint8"):
        evaluate_robustness(runtime, model, images.astype(np.float32), labels)
    with pytest.raises(PluginError, match="Unknown framework 'torhc'"):
        evaluate_robustness("torhc", model, images, labels)


def test_corruptions_work_as_torch_training_augmentations(digits, runtime):
    images = digits[0][:8]
    from harness.augment import augment_batch

    fog = registry.create_augmentation("corruption/fog", framework="torch", severity=4)
    x = torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255

    def augment(seed):
        return augment_batch([fog], x, framework="torch", generator=torch.Generator().manual_seed(seed))

    out = augment(0)
    assert out.shape == x.shape and out.dtype == torch.float32 and 0 <= out.min() and out.max() <= 1
    assert torch.equal(out, augment(0))
    assert not torch.equal(out, augment(1))
    augmented = runtime.augment_images([fog], images, seed=0)
    assert augmented.shape == images.shape and augmented.dtype == np.uint8


def test_default_members_are_registered_attacks_with_the_ensembles_pgd():
    from harness.robustness import DEFAULT_ATTACKS, Member

    assert build_ensemble() == [Member("pgd", {"steps": 50, "restarts": 2}), Member("apgd-ce"), Member("apgd-t"),
                                Member("square")]
    assert [m.name for m in build_ensemble(framework="tf")] == list(DEFAULT_ATTACKS)
    assert build_ensemble({"pgd": {"steps": 10}})[0].params == {"steps": 10, "restarts": 2}
    pgd = Member("pgd", {"steps": 50, "restarts": 2}).create("torch", 8 / 255, 3)
    assert (pgd.config.steps, pgd.config.restarts, pgd.config.seed, pgd.config.eps) == (50, 2, 3, 8 / 255)
