"""The PyTorch trainer every defense shares.

A defense subclasses :class:`Trainer` and overrides :meth:`Trainer.batch_loss`
(and, if it needs set-up, :meth:`Trainer.prepare`). The trainer does the rest:

- takes uint8 N,H,W,C numpy images and int labels (an object with ``.images`` /
  ``.labels`` or an ``(images, labels)`` pair), converts batches on the device to
  float32 N,C,H,W in [0, 1] and applies the configured augmentations there;
- SGD (momentum, Nesterov) or Adam with weight decay; step / cosine / constant
  learning rate, or the seed's progressive unfreezing (see
  :class:`harness.training.TrainingConfig`);
- seeds everything per epoch (shuffle order, augmentations, attack random starts,
  dropout), so a resumed run matches an uninterrupted one exactly;
- after every epoch writes ``metrics.json``, ``training_curves.png`` and
  ``checkpoint.pt`` (model, optimizer, schedule, epoch, history, RNG states) to
  ``out_dir``; ``fit(..., resume=True)`` continues from that checkpoint;
- shows a rich progress bar with the running loss and accuracy.
"""

from __future__ import annotations

import pickle
import random
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from harness.atomic import atomic_path
from harness.errors import UsageError
from harness.training import (  # noqa: F401 - split_arrays, *_NAME: re-exported
    CURVES_NAME,
    METRICS_NAME,
    RESUMABLE_CHANGES,
    FitRun,
    TrainerBase,
    batch_indices,
    derive_seed,
    split_arrays,
)

from .backbones import param_groups_for_unfreezing, unfreezing_stages
from .device import resolve_device
from .batches import device_batches, images_to_tensor  # noqa: F401 - images_to_tensor re-exported
from .evaluate import accuracy

CHECKPOINT_NAME = "checkpoint.pt"
CHECKPOINT_FORMAT = "harness-torch-checkpoint/1"

Augmentation = Callable[..., torch.Tensor]


# --------------------------------------------------------------------------- batches


def train_batches(images: np.ndarray, labels: np.ndarray, order: np.ndarray, batch_size: int,
                  device: torch.device | str | None = None):
    """The training loop's batches: ``(index, x, y)`` per chunk of ``order`` (see ``batch_indices``).

    ``x`` is float32 N,C,H,W in [0, 1] and ``y`` int64, both on ``device``; each chunk is read
    in sorted order (kind to a memory-mapped cache), so a batch's rows follow ``index``. The next
    batch is read (and on CUDA copied) while the caller trains on this one (``batches.device_batches``).
    """
    chunks = [np.sort(index) for index in batch_indices(order, batch_size)]
    for index, (x, y) in zip(chunks, device_batches(images, chunks, device, labels)):
        yield index, x, y


# --------------------------------------------------------------------------- RNG state


def _rng_state() -> dict[str, Any]:
    """Global RNG states (torch, CUDA, numpy, python) in a form ``torch.load(weights_only=True)`` reads."""
    _, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {"keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached": float(cached)},
        "python": {"version": version, "internal": list(internal), "gauss": gauss},
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: Mapping[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np_state = state["numpy"]
    np.random.set_state(("MT19937", np_state["keys"].numpy().astype(np.uint32), np_state["pos"],
                         np_state["has_gauss"], np_state["cached"]))
    py = state["python"]
    random.setstate((py["version"], tuple(py["internal"]), py["gauss"]))
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


# --------------------------------------------------------------------------- trainer


class Trainer(TrainerBase):
    """Trains a model with plain cross-entropy; defenses override :meth:`batch_loss`.

    ``params`` are the :class:`~harness.training.TrainingConfig` knobs plus the
    defense's own (declared in :attr:`defense_params` with their defaults).
    ``fit`` is :meth:`harness.training.TrainerBase.fit`; this class fills in its torch hooks.
    """

    framework = "torch"
    framework_title = "torch"
    checkpoint_name = CHECKPOINT_NAME
    checkpoint_format = CHECKPOINT_FORMAT

    def __init__(self, **params: Any):
        super().__init__(**params)
        self.generator = torch.Generator()  # CPU: same numbers on every device

    # ---- what a defense overrides

    def prepare(self, model: nn.Module, device: torch.device) -> None:
        """Called once per :meth:`fit` before the first epoch (e.g. to load a reference model)."""

    def batch_loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(loss to minimise, logits whose accuracy is reported as train accuracy) for one batch."""
        x = self.augment(x)
        logits = model(x)
        return self.criterion(logits, y), logits

    # ---- helpers for defenses

    def criterion(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Cross-entropy with the configured label smoothing."""
        return F.cross_entropy(logits, y, label_smoothing=self.config.label_smoothing)

    # ---- fit's hooks

    def _num_classes(self, model: nn.Module) -> int | None:
        return getattr(model, "num_classes", None)

    def _setup(self, model: nn.Module) -> FitRun:
        device = resolve_device(self.config.device)
        model.to(device)
        return FitRun(model, device, param_groups_for_unfreezing(model), self._model_facts(model, device))

    def _read_checkpoint(self, path: Path) -> Mapping[str, Any]:
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except (pickle.UnpicklingError, RuntimeError, EOFError, OSError) as exc:
            raise UsageError(f"{path} is not a harness torch training checkpoint ({exc})") from exc

    def _restore(self, run: FitRun, state: Mapping[str, Any]) -> None:
        run.model.load_state_dict(state["model"])
        _set_rng_state(state["rng"])

    def _open_optimizer(self, run: FitRun, count: int, state: Mapping[str, Any] | None) -> torch.optim.Optimizer:
        """Freeze everything but the first ``count`` stages; an optimizer with one group per open stage."""
        for index, (_, params) in enumerate(run.stages):
            for p in params:
                p.requires_grad_(index < count)
        optimizer = self._make_optimizer([params for _, params in run.stages[:count]])
        if state is not None:
            optimizer.load_state_dict(state["optimizer"])
        return optimizer

    def _prepare(self, run: FitRun) -> nn.Module:
        self.prepare(run.model, run.device)
        return run.model

    def _train_batches(self, run: FitRun, images: np.ndarray, labels: np.ndarray, epoch: int,
                       lr: float) -> Iterator[tuple[np.ndarray, float, np.ndarray]]:
        cfg, model, optimizer = self.config, run.model, run.optimizer
        for group in optimizer.param_groups:
            group["lr"] = lr
        torch.manual_seed(derive_seed(cfg.seed, epoch, 0))  # dropout and anything else on the global RNG
        self.generator.manual_seed(derive_seed(cfg.seed, epoch, 1))  # augmentations, attack random starts
        order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(derive_seed(cfg.seed, epoch, 2)))
        self._train_mode(model)
        for index, x, y in train_batches(images, labels, order.numpy(), cfg.batch_size, run.device):
            loss, logits = self.batch_loss(model, x, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            yield index, float(loss.detach()), logits.detach().float().cpu().numpy()

    def evaluate(self, model: nn.Module, images: np.ndarray, labels: np.ndarray) -> dict[str, float]:
        """Clean loss, top-1 and top-5 accuracy of ``model`` on uint8 NHWC ``images``."""
        metrics = accuracy(model, images, labels, batch_size=self.config.eval_batch_size)
        return {key: metrics[key] for key in ("loss", "top1", "top5")}

    def _unfreeze(self, run: FitRun, count: int) -> None:
        """Open stages up to ``count``: trainable, each with a new optimizer group."""
        for _, params in run.stages[self._open_stages:count]:
            for p in params:
                p.requires_grad_(True)
            run.optimizer.add_param_group({"params": params})

    def _write_checkpoint(self, run: FitRun, path: Path, state: dict[str, Any]) -> None:
        state = {**state, "model": run.model.state_dict(), "optimizer": run.optimizer.state_dict(),
                 "rng": _rng_state()}
        with atomic_path(path, suffix=".pt") as tmp:
            torch.save(state, tmp)

    def _finish(self, run: FitRun) -> None:
        run.model.eval()

    # ---- optimizer, modes, facts

    def _make_optimizer(self, param_groups: list[list[nn.Parameter]]) -> torch.optim.Optimizer:
        cfg = self.config
        groups = [{"params": params} for params in param_groups]
        if cfg.optimizer == "adam":
            return torch.optim.Adam(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov and cfg.momentum > 0,
                               weight_decay=cfg.weight_decay)

    def _train_mode(self, model: nn.Module) -> None:
        """Train mode, except frozen stages, whose BatchNorm statistics stay as loaded."""
        model.train()
        for _, modules in unfreezing_stages(model)[self._open_stages:]:
            for module in modules:
                module.eval()

    @staticmethod
    def _model_facts(model: nn.Module, device: torch.device) -> dict[str, Any]:
        return {
            "arch": getattr(model, "arch", type(model).__name__),
            "parameters": int(sum(p.numel() for p in model.parameters())),
            "device": str(device),
            "torch": str(torch.__version__),
        }


def load_checkpoint_weights(model: nn.Module, path: str | Path) -> nn.Module:
    """Load the model weights of a training checkpoint (or a plain state dict) into ``model``."""
    state = torch.load(Path(path), map_location="cpu", weights_only=True)
    if isinstance(state, Mapping) and isinstance(state.get("model"), Mapping):
        state = state["model"]
    model.load_state_dict(state)
    return model
