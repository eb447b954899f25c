"""Training overhead of the adversarial defenses: one defended training step vs one plain step.

- NSL adversarial regularization (``harness_tf`` ``nsl-adversarial-regularization``, NSL 1.4
  defaults: multiplier 0.2, one 0.2 L-inf step) vs a plain Keras step (``tf.function``,
  ``GradientTape``, SGD) on the harness's ``nsl-cnn``;
- model hardening (``harness_torch`` ``model-hardening``: clean + FGSM + BIM-10 views at eps
  8/255) vs a plain PyTorch step (cross-entropy, backward, SGD) on ``small-cnn``;
- TRADES (``trades``: beta 6, PGD-10 on the KL at eps 8/255) vs the same plain PyTorch step.

Every step runs on the same batch (digits enlarged to 32x32 RGB, 128 images), model,
optimizer (SGD, momentum 0.9, no weight decay), device and threads; a timed call is one step,
ending when its loss is on the host. The ratio (defended / plain) is set mostly by the extra
passes (one extra forward/backward is about 2x); the pass counts are in each result's details.

Before timing, each defended step's loss on fixed weights is recomputed independently: NSL's
as cross-entropy + 0.2 x cross-entropy on its FGSM neighbour; model hardening's with
torchattacks' FGSM and BIM; TRADES' with the reference code's loop from the same random start.

    python benchmarks/bench_training.py [--quick] [--repeats N]
"""

from __future__ import annotations

import copy
import os
import sys
from pathlib import Path
from typing import Any

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")  # tf.keras is Keras 2, as harness_tf needs
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent))


from common import Comparison, alternate, bench_main  # noqa: E402
from workloads import digits, settings, with_paired_ratios  # noqa: E402

#: two losses computed two ways agree this closely (float32, summed in different orders)
LOSS_TOLERANCE = 1e-4
LR = 0.01


# --------------------------------------------------------------------------- NSL vs Keras


def nsl_comparison(quick: bool, repeats: int) -> Comparison:
    import tensorflow as tf
    import tf_keras as keras

    from harness_tf.backbones import nsl_cnn
    from harness_tf.defenses import NSLAdversarialRegularization
    from harness_tf.device import auto_device
    from harness_tf.nsl_compat import import_nsl
    from harness_tf.train import cross_entropy

    size, batch, _, repeats = settings(quick, repeats)
    device = auto_device()
    x_train, y_train, _, _ = digits(size, 3)
    x, y = tf.constant(x_train[:batch]), tf.constant(y_train[:batch])
    with tf.device(device):
        keras.utils.set_random_seed(0)
        ours_model = nsl_cnn(10, (size, size, 3))
        plain_model = keras.models.clone_model(ours_model)
        plain_model.set_weights(ours_model.get_weights())

        trainer = NSLAdversarialRegularization(optimizer="sgd", lr=LR, momentum=0.9, weight_decay=0.0,
                                               progress=False)
        trainer.loss = cross_entropy(10)
        trained = trainer.prepare(ours_model)
        multiplier, step = trainer.options["multiplier"], trainer.options["adv_step_size"]

        # ---- correctness: NSL's loss on fixed weights, recomputed by hand
        trained({"image": x, "label": y}, training=True)
        labelled, adversarial = (float(v) for v in trained.losses[:2])
        plain_loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        with tf.GradientTape() as tape:
            tape.watch(x)
            clean = plain_loss(y, plain_model(x, training=True))
        neighbour = tf.clip_by_value(x + step * tf.sign(tape.gradient(clean, x)), 0.0, 1.0)
        expected_adversarial = multiplier * float(plain_loss(y, plain_model(neighbour, training=True)))
        correctness = {"labelled_loss_nsl": labelled, "cross_entropy_plain": float(clean),
                       "adversarial_loss_nsl": adversarial, "adversarial_loss_by_hand": expected_adversarial,
                       "tolerance": LOSS_TOLERANCE}
        correct = (abs(labelled - float(clean)) <= LOSS_TOLERANCE
                   and abs(adversarial - expected_adversarial) <= LOSS_TOLERANCE and adversarial > 0)

        # ---- the two steps
        ours_optimizer = trainer._make_optimizer(ours_model, [("all", ours_model.layers)])
        ours_step = trainer._make_step(trained, ours_model, ours_optimizer)  # the step fit() runs
        plain_optimizer = keras.optimizers.SGD(learning_rate=LR, momentum=0.9)
        variables = plain_model.trainable_variables

        @tf.function
        def plain_step(x, y):
            with tf.GradientTape() as tape:
                loss = plain_loss(y, plain_model(x, training=True))
            plain_optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
            return loss

        comparison = Comparison(
            name="training_nsl_vs_keras",
            title="Training step, TensorFlow: NSL adversarial regularization vs plain Keras",
            ours="harness_tf nsl-adversarial-regularization step",
            theirs="plain Keras step (tf.function, GradientTape, SGD)",
            target="reported (about 2x: one extra forward/backward)", target_ratio=None,
            correctness=correctness, correct=bool(correct),
            details={"model": "harness nsl-cnn", "input": f"{batch}x{size}x{size}x3 float32", "device": device,
                     "tensorflow": tf.__version__, "nsl": import_nsl().__version__,
                     "nsl_config": {k: trainer.options[k] for k in ("multiplier", "adv_step_size", "adv_grad_norm",
                                                                        "pgd_iterations")},
                     "expected_about": 2.0, "repeats": repeats})
        if correct:
            y64 = tf.cast(y, tf.int64)
            comparison.ours_seconds, comparison.theirs_seconds = alternate(
                lambda: float(ours_step(x, y64)[0]), lambda: float(plain_step(x, y)), repeats, warmup=2)
    return comparison


# --------------------------------------------------------------------------- torch defenses vs plain torch


def _torch_setup(quick: bool, repeats: int) -> dict[str, Any]:
    import torch

    from harness_torch.backbones import small_cnn
    from harness_torch.device import auto_device

    size, batch, _, repeats = settings(quick, repeats)
    device = auto_device()
    x_train, y_train, _, _ = digits(size, 3)
    torch.manual_seed(0)
    model = small_cnn(10, (size, size, 3)).to(device)
    x = torch.from_numpy(x_train[:batch]).permute(0, 3, 1, 2).contiguous().to(device)
    y = torch.from_numpy(y_train[:batch]).to(device)
    return {"model": model, "x": x, "y": y, "device": device, "size": size, "batch": batch, "repeats": repeats}


def _torch_steps(setup: dict[str, Any], trainer: Any) -> tuple[Any, Any]:
    """(defended step, plain step), each on its own copy of the model with its own SGD."""
    import torch
    import torch.nn.functional as F

    x, y = setup["x"], setup["y"]
    ours_model, plain_model = copy.deepcopy(setup["model"]).train(), copy.deepcopy(setup["model"]).train()
    ours_optimizer = torch.optim.SGD(ours_model.parameters(), lr=LR, momentum=0.9)
    plain_optimizer = torch.optim.SGD(plain_model.parameters(), lr=LR, momentum=0.9)

    def ours():
        loss, _ = trainer.batch_loss(ours_model, x, y)
        ours_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        ours_optimizer.step()
        return float(loss.detach())

    def plain():
        loss = F.cross_entropy(plain_model(x), y)
        plain_optimizer.zero_grad(set_to_none=True)
        loss.backward()
        plain_optimizer.step()
        return float(loss.detach())

    return ours, plain


def _torch_details(setup: dict[str, Any], repeats: int, **extra: Any) -> dict[str, Any]:
    import torch

    size = setup["size"]
    return {"model": "harness small-cnn (width 32)", "input": f"{setup['batch']}x3x{size}x{size} float32",
            "device": str(setup["device"]), "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
            "optimizer": f"SGD lr {LR} momentum 0.9", "repeats": repeats, **extra}


def hardening_comparison(quick: bool, repeats: int) -> Comparison:
    import torch
    import torch.nn.functional as F
    import torchattacks

    from harness_torch.defenses import ModelHardening

    setup = _torch_setup(quick, repeats)
    repeats = setup["repeats"]
    model, x, y = setup["model"], setup["x"], setup["y"]
    trainer = ModelHardening(optimizer="sgd", lr=LR, weight_decay=0.0, progress=False)
    a = trainer.attack

    # ---- correctness: the hardening loss on fixed weights, with torchattacks' FGSM and BIM
    model.train()
    ours_loss = trainer.batch_loss(model, x, y)[0].item()
    views = [x, torchattacks.FGSM(model, eps=a.eps)(x, y),
             torchattacks.BIM(model, eps=a.eps, alpha=a.step_size, steps=a.steps)(x, y)]
    model.train()
    with torch.no_grad():
        reference = float(sum(F.cross_entropy(model(view), y) for view in views) / len(views))
    correct = abs(ours_loss - reference) <= LOSS_TOLERANCE
    correctness = {"loss_ours": ours_loss, "loss_torchattacks_views": reference, "tolerance": LOSS_TOLERANCE}

    # floor: FGSM + BIM steps, each a forward and an input-gradient backward, then 3 views trained at once
    floor = 1 + a.steps + len(views)
    comparison = Comparison(
        name="training_hardening_vs_torch", title="Training step, PyTorch: model hardening vs plain step",
        ours="harness_torch model-hardening step (clean + FGSM + BIM-10)", theirs="plain PyTorch step (CE, SGD)",
        target=f"reported ({1 + a.steps} attack passes + {len(views)} views per step)",
        target_ratio=None, correctness=correctness, correct=bool(correct),
        details=_torch_details(setup, repeats, eps=a.eps, bim_steps=a.steps, bim_step_size=a.step_size,
                               views=["clean", "fgsm", "bim"], floor_passes=floor))
    if correct:
        ours, plain = _torch_steps(setup, trainer)
        comparison.ours_seconds, comparison.theirs_seconds = alternate(ours, plain, repeats)
    return comparison


def trades_comparison(quick: bool, repeats: int) -> Comparison:
    import torch
    import torch.nn.functional as F

    from harness_torch.defenses import Trades

    setup = _torch_setup(quick, repeats)
    repeats = setup["repeats"]
    model, x, y = setup["model"], setup["x"], setup["y"]
    trainer = Trades(optimizer="sgd", lr=LR, weight_decay=0.0, progress=False)
    a, beta = trainer.attack, trainer.beta

    # ---- correctness: the loss of TRADES' reference loop (Zhang et al. 2019, trades.py) from our random start
    model.train()
    trainer.generator.manual_seed(5)
    ours_loss = trainer.batch_loss(model, x, y)[0].item()
    start = torch.rand(x.shape, generator=torch.Generator().manual_seed(5)).to(x.device)
    kl = torch.nn.KLDivLoss(reduction="sum")
    model.eval()
    with torch.no_grad():
        clean_probs = F.softmax(model(x), dim=1)
    x_adv = (x + (2 * start - 1) * a.eps).clamp(0.0, 1.0)
    for _ in range(a.steps):
        x_adv.requires_grad_(True)
        (grad,) = torch.autograd.grad(kl(F.log_softmax(model(x_adv), dim=1), clean_probs), x_adv)
        x_adv = x_adv.detach() + a.step_size * grad.sign()
        x_adv = torch.min(torch.max(x_adv, x - a.eps), x + a.eps).clamp(0.0, 1.0)
    model.train()
    with torch.no_grad():
        logits = model(x)
        reference = float(F.cross_entropy(logits, y)
                          + beta * kl(F.log_softmax(model(x_adv), dim=1), F.softmax(logits, dim=1)) / len(x))
    correct = abs(ours_loss - reference) <= LOSS_TOLERANCE
    correctness = {"loss_ours": ours_loss, "loss_reference_loop": reference, "tolerance": LOSS_TOLERANCE}

    # floor: a clean forward, PGD steps (forward + input-gradient backward), clean + adversarial trained at once
    floor = a.steps + 2
    comparison = Comparison(
        name="training_trades_vs_torch", title="Training step, PyTorch: TRADES vs plain step",
        ours="harness_torch trades step (beta 6, PGD-10 on the KL)", theirs="plain PyTorch step (CE, SGD)",
        target=f"reported ({a.steps} attack passes + 2 views per step)",
        target_ratio=None, correctness=correctness, correct=bool(correct),
        details=_torch_details(setup, repeats, eps=a.eps, steps=a.steps, step_size=a.step_size, beta=beta,
                               floor_passes=floor))
    if correct:
        ours, plain = _torch_steps(setup, trainer)
        comparison.ours_seconds, comparison.theirs_seconds = alternate(ours, plain, repeats)
    return comparison


def run(quick: bool = False, repeats: int = 5) -> list[Comparison]:
    # torch first: TensorFlow, once started, holds its thread pools for the rest of the process
    return with_paired_ratios([hardening_comparison(quick, repeats), trades_comparison(quick, repeats),
                               nsl_comparison(quick, repeats)])


if __name__ == "__main__":
    sys.exit(bench_main(run))
