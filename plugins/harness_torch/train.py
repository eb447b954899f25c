"""The PyTorch trainer every defense shares.

A defense subclasses :class:`Trainer` and overrides :meth:`Trainer.batch_loss`
(and, if it needs set-up, :meth:`Trainer.prepare`). The trainer does the rest:

- takes uint8 N,H,W,C numpy images and int labels (an object with ``.images`` /
  ``.labels`` or an ``(images, labels)`` pair), converts batches on the device to
  float32 N,C,H,W in [0, 1] and applies the configured augmentations there;
- SGD (momentum, Nesterov) or Adam with weight decay; step / cosine / constant
  learning rate, or the seed's progressive unfreezing (see
  :class:`harness.training.TrainingConfig`);
- mixed precision (``precision``: bf16 or fp16 autocast around :meth:`Trainer.batch_loss`, so
  attacks inside training follow it; fp16 with a ``GradScaler`` whose state is checkpointed),
  ``memory_format`` (channels_last for convolution nets on CUDA) and ``compile`` (``torch.compile``
  of the trained forward); weights stay float32 and nothing outside training runs under autocast;
- seeds everything per epoch (shuffle order, augmentations, attack random starts,
  dropout), so a resumed run matches an uninterrupted one exactly;
- after every epoch writes ``metrics.json``, ``training_curves.png`` and
  ``checkpoint.pt`` (model, optimizer, schedule, epoch, history, RNG states) to
  ``out_dir``; ``fit(..., resume=True)`` continues from that checkpoint;
- shows a rich progress bar with the running loss and accuracy.
"""

from __future__ import annotations

import contextlib
import pickle
import random
import shutil
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

#: TrainingConfig.precision -> the autocast dtype of the training passes (None: float32, no autocast)
AUTOCAST_DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
LAYOUTS = {"channels_last": torch.channels_last, "contiguous": torch.contiguous_format}


def autocast(device: torch.device | str, precision: str) -> contextlib.AbstractContextManager:
    """``torch.autocast`` to ``precision``'s dtype on ``device`` (a no-op for fp32)."""
    dtype = AUTOCAST_DTYPES[precision]
    device_type = torch.device(device).type
    return contextlib.nullcontext() if dtype is None else torch.autocast(device_type, dtype=dtype)


def resolve_memory_format(choice: str, model: nn.Module, device: torch.device | str) -> str:
    """``channels_last`` or ``contiguous``; ``auto`` is channels_last for a model with Conv2d on CUDA only
    (on CPU channels_last measured no faster: docs/training.md)."""
    if choice != "auto":
        return choice
    convolutional = any(isinstance(m, nn.Conv2d) for m in model.modules())
    return "channels_last" if torch.device(device).type == "cuda" and convolutional else "contiguous"


def check_compiler() -> None:
    """UsageError unless a C++ compiler is on PATH (torch.compile's inductor backend builds kernels with one)."""
    if not any(shutil.which(name) for name in ("g++", "c++", "clang++")):
        raise UsageError("compile = true: torch.compile needs a C++ compiler (g++ or clang++) on PATH; none found",
                         hint="install one (Debian: apt-get install g++) or set compile = false")


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
        self.memory_format = "contiguous"  # resolved by fit (see resolve_memory_format)
        self.scaler = torch.amp.GradScaler("cpu", enabled=False)  # fp16's loss scaler, made by fit

    # ---- what a defense overrides

    def prepare(self, model: nn.Module, device: torch.device) -> None:
        """Called once per :meth:`fit` before the first epoch (e.g. to load a reference model)."""

    def batch_loss(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(loss to minimise, logits whose accuracy is reported as train accuracy) for one batch."""
        x = self.augment(x)
        logits = model(x)
        return self.criterion(logits, y), logits

    # ---- helpers for defenses

    def augment(self, x: torch.Tensor) -> torch.Tensor:
        """The configured augmentations, in float32 even inside mixed-precision training."""
        with torch.autocast(x.device.type, enabled=False):
            return super().augment(x)

    def criterion(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Cross-entropy (in float32, whatever the logits' precision) with the configured label smoothing."""
        return F.cross_entropy(logits.float(), y, label_smoothing=self.config.label_smoothing)

    # ---- fit's hooks

    def _num_classes(self, model: nn.Module) -> int | None:
        return getattr(model, "num_classes", None)

    def _setup(self, model: nn.Module) -> FitRun:
        cfg = self.config
        device = resolve_device(cfg.device)
        if cfg.compile:
            check_compiler()
        self.memory_format = resolve_memory_format(cfg.memory_format, model, device)
        model.to(device, memory_format=LAYOUTS[self.memory_format])
        self.scaler = torch.amp.GradScaler(device.type, enabled=cfg.precision == "fp16")
        facts = {**self._model_facts(model, device), "precision": cfg.precision,
                 "memory_format": self.memory_format, "compile": cfg.compile}
        return FitRun(model, device, param_groups_for_unfreezing(model), facts)

    def _read_checkpoint(self, path: Path) -> Mapping[str, Any]:
        try:
            return torch.load(path, map_location="cpu", weights_only=True)
        except (pickle.UnpicklingError, RuntimeError, EOFError, OSError) as exc:
            raise UsageError(f"{path} is not a harness torch training checkpoint ({exc})") from exc

    def _restore(self, run: FitRun, state: Mapping[str, Any]) -> None:
        run.model.load_state_dict(state["model"])
        _set_rng_state(state["rng"])
        if self.scaler.is_enabled() and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])

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
        """The defense's ``prepare``; then the model the steps call: ``torch.compile``'d when ``compile`` is set
        (it shares the model's parameters, so the model itself is what is trained and saved)."""
        self.prepare(run.model, run.device)
        return torch.compile(run.model) if self.config.compile else run.model

    def _train_batches(self, run: FitRun, images: np.ndarray, labels: np.ndarray, epoch: int,
                       lr: float) -> Iterator[tuple[np.ndarray, float, np.ndarray]]:
        cfg, model, optimizer, scaler = self.config, run.trained, run.optimizer, self.scaler
        channels_last = self.memory_format == "channels_last"
        for group in optimizer.param_groups:
            group["lr"] = lr
        torch.manual_seed(derive_seed(cfg.seed, epoch, 0))  # dropout and anything else on the global RNG
        self.generator.manual_seed(derive_seed(cfg.seed, epoch, 1))  # augmentations, attack random starts
        order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(derive_seed(cfg.seed, epoch, 2)))
        self._train_mode(run.model)
        for index, x, y in train_batches(images, labels, order.numpy(), cfg.batch_size, run.device):
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with autocast(run.device, cfg.precision):  # the forward, loss and in-training attacks only
                loss, logits = self.batch_loss(model, x, y)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()  # scaler disabled (fp32, bf16): plain backward and step
            scaler.step(optimizer)
            scaler.update()
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
                 "rng": _rng_state(), "scaler": self.scaler.state_dict()}
        with atomic_path(path, suffix=".pt") as tmp:
            torch.save(state, tmp)

    def _finish(self, run: FitRun) -> None:
        run.model.eval()
        if self.memory_format != "contiguous":  # the trained model leaves in the usual layout
            run.model.to(memory_format=torch.contiguous_format)

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
