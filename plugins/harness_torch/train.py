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

import random
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from harness.atomic import atomic_path
from harness.errors import UsageError
from harness.training import (  # noqa: F401 - split_arrays, derive_seed, *_NAME: re-exported
    CURVES_NAME,
    METRICS_NAME,
    RESUMABLE_CHANGES,
    TrainerBase,
    TrainingHistory,
    batch_indices,
    check_labels,
    check_resume,
    derive_seed,
    find_checkpoint,
    split_arrays,
    topk_correct,
    write_epoch_outputs,
)

from .backbones import param_groups_for_unfreezing, unfreezing_stages
from .device import resolve_device
from .evaluate import accuracy, images_to_tensor

CHECKPOINT_NAME = "checkpoint.pt"
CHECKPOINT_FORMAT = "harness-torch-checkpoint/1"

Augmentation = Callable[..., torch.Tensor]


# --------------------------------------------------------------------------- batches


def train_batches(images: np.ndarray, labels: np.ndarray, order: np.ndarray, batch_size: int,
                  device: torch.device | str | None = None):
    """The training loop's batches: ``(index, x, y)`` per chunk of ``order`` (see ``batch_indices``).

    ``x`` is float32 N,C,H,W in [0, 1] and ``y`` int64, both on ``device``; each chunk is read
    in sorted order (kind to a memory-mapped cache), so a batch's rows follow ``index``.
    """
    for index in batch_indices(order, batch_size):
        index = np.sort(index)
        yield index, images_to_tensor(images[index], device), torch.from_numpy(labels[index]).to(device)


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
    """

    framework = "torch"

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

    # ---- training loop

    def fit(
        self,
        model: nn.Module,
        train: Any,
        val: Any = None,
        out_dir: str | Path | None = None,
        *,
        resume: bool | str | Path = False,
    ) -> TrainingHistory:
        """Train ``model`` in place and return its :class:`~harness.training.TrainingHistory`.

        ``out_dir`` receives metrics.json, training_curves.png and checkpoint.pt after
        every epoch (nothing is written when it is None). ``resume=True`` continues
        from ``out_dir/checkpoint.pt`` when it exists; ``resume=PATH`` from that file.
        """
        cfg = self.config
        device = resolve_device(cfg.device)
        train_images, train_labels = split_arrays(train)
        val_arrays = split_arrays(val) if val is not None else None
        if not len(train_labels):
            raise UsageError("the training split is empty")
        check_labels(train_labels, getattr(model, "num_classes", None))
        out_dir = Path(out_dir) if out_dir is not None else None
        model.to(device)

        stages = param_groups_for_unfreezing(model)
        schedule = self.progressive_schedule(len(stages))
        history = TrainingHistory(meta={**self.describe(), **self._model_facts(model, device)})
        start_epoch = 0
        checkpoint = find_checkpoint(resume, out_dir, CHECKPOINT_NAME)
        if checkpoint is not None:
            state = self._load_checkpoint(checkpoint)
            model.load_state_dict(state["model"])
            if schedule is not None:
                schedule.load_state_dict(state["scheduler"])
            optimizer = self._open(stages, (schedule.stage + 1) if schedule else len(stages))
            optimizer.load_state_dict(state["optimizer"])
            history = TrainingHistory.from_dict(state["history"])
            history.meta.update({**self.describe(), **self._model_facts(model, device)})
            start_epoch = int(state["epoch"])
            _set_rng_state(state["rng"])
        else:
            optimizer = self._open(stages, 1 if schedule else len(stages))

        self.prepare(model, device)

        def train_epoch(epoch: int, lr: float, advance) -> tuple[float, float, float]:
            for group in optimizer.param_groups:
                group["lr"] = lr
            return self._train_epoch(model, optimizer, train_images, train_labels, epoch, device, advance)

        self.run_epochs(
            history=history, start_epoch=start_epoch, train_count=len(train_labels), schedule=schedule,
            stage_names=[stage[0] for stage in stages], train_epoch=train_epoch,
            validate=lambda: self.evaluate(model, *val_arrays) if val_arrays else {},
            open_stages=lambda count: self._unfreeze(optimizer, stages, count),
            save=(lambda epochs: self._save(out_dir, model, optimizer, schedule, epochs, history)) if out_dir is not None else None)
        model.eval()
        return history

    def _train_epoch(self, model, optimizer, images, labels, epoch, device, advance) -> tuple[float, float, float]:
        cfg = self.config
        torch.manual_seed(derive_seed(cfg.seed, epoch, 0))  # dropout and anything else on the global RNG
        self.generator.manual_seed(derive_seed(cfg.seed, epoch, 1))  # augmentations, attack random starts
        order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(derive_seed(cfg.seed, epoch, 2)))
        self._train_mode(model)
        total_loss, top1, top5, seen = 0.0, 0, 0, 0
        for index, x, y in train_batches(images, labels, order.numpy(), cfg.batch_size, device):
            loss, logits = self.batch_loss(model, x, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            n = len(index)
            scores = logits.detach().float().cpu().numpy()
            total_loss += float(loss.detach()) * n
            top1 += topk_correct(scores, labels[index], 1)
            top5 += topk_correct(scores, labels[index], 5)
            seen += n
            advance(f"loss {total_loss / seen:.4f} acc {top1 / seen:.1%}")
        return total_loss / seen, top1 / seen, top5 / seen

    def evaluate(self, model: nn.Module, images: np.ndarray, labels: np.ndarray) -> dict[str, float]:
        """Clean loss, top-1 and top-5 accuracy of ``model`` on uint8 NHWC ``images``."""
        metrics = accuracy(model, images, labels, batch_size=self.config.eval_batch_size)
        return {key: metrics[key] for key in ("loss", "top1", "top5")}

    # ---- stages, optimizer

    def _make_optimizer(self, param_groups: list[list[nn.Parameter]]) -> torch.optim.Optimizer:
        cfg = self.config
        groups = [{"params": params} for params in param_groups]
        if cfg.optimizer == "adam":
            return torch.optim.Adam(groups, lr=cfg.lr, weight_decay=cfg.weight_decay)
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov and cfg.momentum > 0,
                               weight_decay=cfg.weight_decay)

    def _open(self, stages, count: int) -> torch.optim.Optimizer:
        """Freeze everything but the first ``count`` stages; an optimizer with one group per open stage."""
        self._open_stages = count
        for index, (_, params) in enumerate(stages):
            for p in params:
                p.requires_grad_(index < count)
        return self._make_optimizer([params for _, params in stages[:count]])

    def _unfreeze(self, optimizer: torch.optim.Optimizer, stages, count: int) -> None:
        """Open stages up to ``count``: trainable, each with a new optimizer group."""
        for _, params in stages[self._open_stages:count]:
            for p in params:
                p.requires_grad_(True)
            optimizer.add_param_group({"params": params})
        self._open_stages = count

    def _train_mode(self, model: nn.Module) -> None:
        """Train mode, except frozen stages, whose BatchNorm statistics stay as loaded."""
        model.train()
        for _, modules in unfreezing_stages(model)[self._open_stages:]:
            for module in modules:
                module.eval()

    # ---- checks and facts

    @staticmethod
    def _model_facts(model: nn.Module, device: torch.device) -> dict[str, Any]:
        return {
            "arch": getattr(model, "arch", type(model).__name__),
            "parameters": int(sum(p.numel() for p in model.parameters())),
            "device": str(device),
            "torch": str(torch.__version__),
        }

    # ---- checkpoints

    def _load_checkpoint(self, path: Path) -> dict[str, Any]:
        state = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
            raise UsageError(f"{path} is not a harness torch training checkpoint")
        check_resume(path, self.name, self.describe()["params"], state["defense"], state["params"])
        return state

    def _save(self, out_dir: Path, model, optimizer, schedule, epoch: int, history: TrainingHistory) -> None:
        out_dir.mkdir(parents=True, exist_ok=True)
        described = self.describe()
        state = {
            "format": CHECKPOINT_FORMAT,
            "defense": described["defense"],
            "params": described["params"],
            "epoch": epoch,
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": schedule.state_dict() if schedule is not None else None,
            "history": history.to_dict(),
            "rng": _rng_state(),
        }
        with atomic_path(out_dir / CHECKPOINT_NAME, suffix=".pt") as tmp:
            torch.save(state, tmp)
        write_epoch_outputs(out_dir, history, title=f"{self.name} ({history.meta.get('arch', '')})")


def load_checkpoint_weights(model: nn.Module, path: str | Path) -> nn.Module:
    """Load the model weights of a training checkpoint (or a plain state dict) into ``model``."""
    state = torch.load(Path(path), map_location="cpu", weights_only=True)
    if isinstance(state, Mapping) and isinstance(state.get("model"), Mapping):
        state = state["model"]
    model.load_state_dict(state)
    return model
