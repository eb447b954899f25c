"""Defenses: trainers that differ only in the loss of one batch.

- ``standard``: cross-entropy on (optionally augmented) clean images;
- ``model-hardening`` (the seed's recipe): every batch trains on clean,
  augmented, FGSM and BIM images at once, mixed by weights; the adversarial
  images come from the model being trained or from a fixed reference model;
- ``pgd-adversarial-training`` (Madry et al. 2018): cross-entropy on PGD examples;
- ``trades`` (Zhang et al. 2019): cross-entropy on clean images plus
  ``beta * KL(f(x) || f(x'))``, where x' maximises that KL inside the eps ball.

Parameter defaults live in :data:`harness_torch.plugin.DEFENSE_PARAMS` (the
defense's own knobs) and :class:`harness.training.TrainingConfig` (the rest).
Adversarial examples are crafted with the model in eval mode (the attacks see
to that), in pixel space [0, 1], with the trainer's seeded generator; training
uses the last PGD iterate, as the papers do. Under mixed precision (``precision``) the
attacks run inside the trainer's autocast, like the forward they attack; losses are float32.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from harness.attacks import AttackConfig
from harness.errors import UsageError

from .attacks import bim, eval_mode, fgsm, pgd
from .plugin import DEFENSE_PARAMS
from .train import Trainer, load_checkpoint_weights


def attack_config(defense: str, **params: Any) -> AttackConfig:
    """Validated budget of a defense's attack; eps None: the norm's default, step_size None: 2.5 * eps / steps."""
    try:
        config = AttackConfig(seed=None, **params)
    except UsageError as exc:
        raise UsageError(f"{defense}: {exc.message}", hint=exc.hint) from exc
    if config.eps <= 0:
        raise UsageError(f"{defense}: eps must be positive (pixel space [0, 1], e.g. 8/255), got {config.eps}")
    return config


class StandardTraining(Trainer):
    """Plain cross-entropy training; see :class:`harness_torch.train.Trainer`."""

    name = "standard"
    defense_params = DEFENSE_PARAMS["standard"]


class PGDAdversarialTraining(Trainer):
    """Madry et al. (2018): minimise cross-entropy on PGD examples of each (augmented) batch.

    Knobs: ``eps`` (None: 8/255 for linf, 0.5 for l2), ``norm`` ("linf" or "l2"), ``steps``,
    ``step_size`` (None: 2.5 * eps / steps), ``random_start``. Train accuracy is reported on
    the adversarial batch.
    """

    name = "pgd-adversarial-training"
    defense_params = DEFENSE_PARAMS["pgd-adversarial-training"]

    def __init__(self, **params: Any):
        super().__init__(**params)
        o = self.options
        self.attack = attack_config(self.name, eps=o["eps"], step_size=o["step_size"], steps=o["steps"],
                                    norm=o["norm"], random_start=o["random_start"])

    def batch_loss(self, model, x, y):
        x = self.augment(x)
        a = self.attack
        x_adv = pgd(model, x, y, eps=a.eps, step_size=a.step_size, steps=a.steps, norm=a.norm,
                    random_start=a.random_start, generator=self.generator, keep_best=False)
        logits = model(x_adv)
        return self.criterion(logits, y), logits


def trades_kl(adv_logits: torch.Tensor, clean_probs: torch.Tensor) -> torch.Tensor:
    """Per-example KL(clean || adversarial): TRADES' robustness term (its batch mean is the loss)."""
    return F.kl_div(F.log_softmax(adv_logits.float(), dim=1), clean_probs.float(), reduction="none").sum(dim=1)


class Trades(Trainer):
    """Zhang et al. (2019): CE(f(x), y) + beta * KL(f(x) || f(x')).

    x' maximises the KL term with PGD (``eps``, ``norm``, ``steps``, ``step_size`` as for
    ``pgd-adversarial-training``)
    from a random start in the eps ball -- the reference code starts at x + 0.001 * N(0, 1);
    without a random start the KL gradient at x is zero. Larger ``beta`` trades clean
    accuracy for robustness (the paper uses 6).
    """

    name = "trades"
    defense_params = DEFENSE_PARAMS["trades"]

    def __init__(self, **params: Any):
        super().__init__(**params)
        o = self.options
        if o["beta"] < 0:
            raise UsageError(f"trades: beta must be non-negative, got {o['beta']}")
        self.beta = float(o["beta"])
        self.attack = attack_config(self.name, eps=o["eps"], step_size=o["step_size"], steps=o["steps"],
                                    norm=o["norm"], random_start=o["random_start"])

    def batch_loss(self, model, x, y):
        x = self.augment(x)
        a = self.attack
        with eval_mode(model), torch.no_grad():
            clean_probs = F.softmax(model(x).float(), dim=1)
        x_adv = pgd(model, x, clean_probs, eps=a.eps, step_size=a.step_size, steps=a.steps, norm=a.norm,
                    random_start=a.random_start, generator=self.generator, loss_fn=trades_kl, keep_best=False)
        logits = model(torch.cat([x, x_adv]))
        clean_logits, adv_logits = logits[: len(x)], logits[len(x):]
        robust = trades_kl(adv_logits, F.softmax(clean_logits.float(), dim=1)).mean()
        loss = self.criterion(clean_logits, y) + self.beta * robust
        return loss, clean_logits


class ModelHardening(Trainer):
    """The seed's model hardening: train on clean + augmented + FGSM + BIM images together.

    Each batch is expanded to up to four views, all passed through the model in
    one forward pass; the loss is the weighted mean of their cross-entropies
    (``clean_weight``, ``augmented_weight``, ``fgsm_weight``, ``bim_weight``; a
    zero weight skips that view, and the augmented view needs ``augmentations``).
    FGSM and BIM (``eps``, ``norm``, ``bim_steps``, ``bim_step_size``; None defaults
    as for ``pgd-adversarial-training``) attack the
    model being trained, or the fixed ``reference_model`` (an ``nn.Module``, or a
    path to a checkpoint / state dict of the trained architecture). Train
    accuracy is reported on the clean view.
    """

    name = "model-hardening"
    defense_params = DEFENSE_PARAMS["model-hardening"]
    VIEWS = ("clean", "augmented", "fgsm", "bim")

    def __init__(self, **params: Any):
        super().__init__(**params)
        o = self.options
        self.attack = attack_config(self.name, eps=o["eps"], step_size=o["bim_step_size"], steps=o["bim_steps"],
                                    norm=o["norm"], random_start=False)
        self.weights = {view: float(o[f"{view}_weight"]) for view in self.VIEWS}
        if any(w < 0 for w in self.weights.values()):
            raise UsageError(f"model-hardening: view weights must be non-negative, got {self.weights}")
        if not self.augmentations:
            self.weights["augmented"] = 0.0
        if sum(self.weights.values()) <= 0:
            raise UsageError("model-hardening: at least one of clean/augmented/fgsm/bim weights must be positive",
                             hint="the augmented view also needs augmentations")
        self.reference: nn.Module | None = None

    def prepare(self, model: nn.Module, device: torch.device) -> None:
        reference = self.options["reference_model"]
        if reference is None:
            self.reference = None
            return
        if isinstance(reference, nn.Module):
            self.reference = reference
        elif isinstance(reference, (str, Path)):
            self.reference = load_checkpoint_weights(copy.deepcopy(model), reference)
        else:
            raise UsageError(f"model-hardening: reference_model must be a model or a weights path, got {reference!r}")
        self.reference.to(device).eval()
        for p in self.reference.parameters():
            p.requires_grad_(False)

    def batch_loss(self, model, x, y):
        a, w = self.attack, self.weights
        source = self.reference if self.reference is not None else model
        views: list[tuple[float, torch.Tensor]] = []
        if w["clean"]:
            views.append((w["clean"], x))
        if w["augmented"]:
            views.append((w["augmented"], self.augment(x)))
        if w["fgsm"]:
            views.append((w["fgsm"], fgsm(source, x, y, eps=a.eps, norm=a.norm)))
        if w["bim"]:
            views.append((w["bim"], bim(source, x, y, eps=a.eps, step_size=a.step_size, steps=a.steps, norm=a.norm,
                                        keep_best=False)))
        logits = model(torch.cat([view for _, view in views]))
        chunks = logits.split(len(x))
        total = sum(weight for weight, _ in views)
        loss = sum(weight * self.criterion(chunk, y) for (weight, _), chunk in zip(views, chunks)) / total
        # train accuracy on the clean view when it is trained on, else on the first view
        return loss, chunks[0]


def standard(**params: Any) -> StandardTraining:
    """The ``standard`` defense (plain training)."""
    return StandardTraining(**params)


def model_hardening(**params: Any) -> ModelHardening:
    """The ``model-hardening`` defense (clean + augmented + FGSM + BIM)."""
    return ModelHardening(**params)


def pgd_adversarial_training(**params: Any) -> PGDAdversarialTraining:
    """The ``pgd-adversarial-training`` defense (Madry et al.)."""
    return PGDAdversarialTraining(**params)


def trades(**params: Any) -> Trades:
    """The ``trades`` defense (Zhang et al. 2019)."""
    return Trades(**params)
