"""The TensorFlow trainer every TF defense shares (the counterpart of :mod:`harness_torch.train`).

A defense subclasses :class:`Trainer` and overrides :meth:`Trainer.prepare` (the
Keras model the steps run on, e.g. an NSL wrapper around the base model) and/or
:meth:`Trainer.batch_loss`. The trainer does the rest, with the same knobs and
outputs as the PyTorch trainer (:class:`harness.training.TrainingConfig`):

- takes uint8 N,H,W,C numpy images and int labels (an object with ``.images`` /
  ``.labels`` or an ``(images, labels)`` pair), converts batches to float32 in
  [0, 1] and applies the configured augmentations (the TF augmentation plugins);
- SGD (momentum, Nesterov) or Adam; ``weight_decay`` is added to the gradients
  (L2, as torch's optimizers do); step / cosine / constant learning rate, or the
  seed's progressive unfreezing (frozen stages keep BatchNorm statistics as loaded);
- seeds every epoch (shuffle order, augmentations, TensorFlow's global seed, which a
  training step traced afresh each epoch passes to dropout and NSL's random start), so
  a resumed run matches an uninterrupted one exactly;
- after every epoch writes ``metrics.json``, ``training_curves.png`` and
  ``checkpoint.npz`` (base-model weights, optimizer state, schedule, epoch,
  history) to ``out_dir``; ``fit(..., resume=True)`` continues from that checkpoint;
- shows a rich progress bar with the running loss and accuracy.

Only the base model is trained and saved: a wrapper from :meth:`Trainer.prepare`
shares its layers and adds no weights.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf
import tf_keras as keras

from harness.atomic import atomic_path
from harness.errors import UsageError
from harness.training import (
    TrainerBase,
    TrainingHistory,
    batch_indices,
    check_labels,
    check_resume,
    derive_seed,
    find_checkpoint,
    split_arrays,
    to_plain,
    topk_correct,
    write_epoch_outputs,
)

from .backbones import load_model_weights, trainable_stages, unfreezing_stages
from .device import resolve_device
from .evaluate import accuracy, images_to_tensor

CHECKPOINT_NAME = "checkpoint.npz"
CHECKPOINT_FORMAT = "harness-tf-checkpoint/1"


# --------------------------------------------------------------------------- losses and weights


def cross_entropy(num_classes: int, label_smoothing: float = 0.0) -> Any:
    """Cross-entropy on logits for integer labels, with torch's label smoothing: ``loss(labels, logits)``.

    Without smoothing a Keras loss (batch mean), with it a function of per-example values;
    ``tf.reduce_mean`` of either is the batch loss, and NSL accepts both.
    """
    if not label_smoothing:
        return keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    def smoothed_cross_entropy(labels: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
        onehot = tf.one_hot(tf.cast(tf.reshape(labels, [-1]), tf.int32), num_classes, dtype=logits.dtype)
        return keras.losses.categorical_crossentropy(onehot, logits, from_logits=True,
                                                     label_smoothing=label_smoothing)

    return smoothed_cross_entropy


def ordered_variables(model: keras.Model) -> list[tf.Variable]:
    """Every variable of ``model``, layer by layer, in an order that does not depend on what is frozen.

    (``model.get_weights()`` lists trainable weights first, so its order changes with
    freezing; a single layer's ``weights`` keep their order.)
    """
    seen: set[int] = set()
    variables: list[tf.Variable] = []

    def visit(layer: Any) -> None:
        if id(layer) in seen:
            return
        seen.add(id(layer))
        if isinstance(layer, keras.Model):
            for inner in layer.layers:
                visit(inner)
            return
        variables.extend(v for v in layer.weights if id(v) not in seen and not seen.add(id(v)))

    visit(model)
    return variables


def model_weights(model: keras.Model) -> list[np.ndarray]:
    """The values of :func:`ordered_variables`."""
    return [v.numpy() for v in ordered_variables(model)]


def set_model_weights(model: keras.Model, weights: list[np.ndarray]) -> None:
    """Inverse of :func:`model_weights`; ValueError when the arrays do not fit."""
    variables = ordered_variables(model)
    if len(variables) != len(weights):
        raise ValueError(f"{len(weights)} arrays for {len(variables)} variables")
    for variable, value in zip(variables, weights):
        if tuple(variable.shape) != tuple(np.shape(value)):
            raise ValueError(f"{variable.name} has shape {tuple(variable.shape)}, the file {tuple(np.shape(value))}")
    for variable, value in zip(variables, weights):
        variable.assign(value)


def load_checkpoint_weights(model: keras.Model, path: str | Path) -> keras.Model:
    """Load the base-model weights of a training checkpoint (``.npz``) or a Keras ``.h5`` file into ``model``."""
    path = Path(path).expanduser()
    if path.suffix != ".npz":
        return load_model_weights(model, path)
    if not path.is_file():
        raise UsageError(f"checkpoint not found: {path}")
    with np.load(path, allow_pickle=False) as data:
        count = sum(1 for key in data.files if key.startswith("model_"))
        weights = [data[f"model_{i}"] for i in range(count)]
    try:
        set_model_weights(model, weights)
    except ValueError as exc:
        raise UsageError(f"weights from {path} do not fit this model ({model.name}): {exc}") from exc
    return model


# --------------------------------------------------------------------------- trainer


class Trainer(TrainerBase):
    """Trains a Keras model with plain cross-entropy; defenses override :meth:`prepare` / :meth:`batch_loss`.

    ``params`` are the :class:`~harness.training.TrainingConfig` knobs plus the
    defense's own (declared in :attr:`defense_params` with their defaults).
    """

    framework = "tf"
    #: trace the step per batch shape (True) instead of once for any batch size
    static_shapes: bool = False

    def __init__(self, **params: Any):
        super().__init__(**params)
        self.generator = tf.random.Generator.from_seed(0)
        self.loss = None  # loss(labels, logits) (see cross_entropy), set by fit()

    # ---- what a defense overrides

    def prepare(self, model: keras.Model) -> keras.Model:
        """The model the training steps call (default: ``model``); called once per :meth:`fit`."""
        return model

    def batch_loss(self, trained: keras.Model, x: tf.Tensor, y: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """(loss to minimise, logits whose accuracy is reported) for one augmented batch, inside the tape."""
        logits = trained(x, training=True)
        loss = tf.reduce_mean(self.loss(y, logits))
        if trained.losses:  # layer regularizers
            loss += tf.add_n(trained.losses)
        return loss, logits

    # ---- training loop

    def fit(
        self,
        model: keras.Model,
        train: Any,
        val: Any = None,
        out_dir: str | Path | None = None,
        *,
        resume: bool | str | Path = False,
    ) -> TrainingHistory:
        """Train ``model`` in place and return its :class:`~harness.training.TrainingHistory`.

        ``out_dir`` receives metrics.json, training_curves.png and checkpoint.npz after
        every epoch (nothing is written when it is None). ``resume=True`` continues
        from ``out_dir/checkpoint.npz`` when it exists; ``resume=PATH`` from that file.
        """
        cfg = self.config
        device = resolve_device(cfg.device)
        train_images, train_labels = split_arrays(train)
        val_arrays = split_arrays(val) if val is not None else None
        if not len(train_labels):
            raise UsageError("the training split is empty")
        num_classes = int(model.output_shape[-1])
        check_labels(train_labels, num_classes)
        out_dir = Path(out_dir) if out_dir is not None else None
        self.loss = cross_entropy(num_classes, cfg.label_smoothing)

        with tf.device(device):
            stages = unfreezing_stages(model)
            schedule = self.progressive_schedule(len(stages))
            optimizer = self._make_optimizer(model, stages)
            history = TrainingHistory(meta={**self.describe(), **self._model_facts(model, device)})
            start_epoch = 0
            checkpoint = find_checkpoint(resume, out_dir, CHECKPOINT_NAME)
            if checkpoint is not None:
                state, model_state, optimizer_state = self._load_checkpoint(checkpoint)
                set_model_weights(model, model_state)
                optimizer.set_weights(optimizer_state)
                if schedule is not None:
                    schedule.load_state_dict(state["scheduler"])
                history = TrainingHistory.from_dict(state["history"])
                history.meta.update({**self.describe(), **self._model_facts(model, device)})
                start_epoch = int(state["epoch"])
            self._open(model, stages, (schedule.stage + 1) if schedule else len(stages))

            trained = self.prepare(model)

            def train_epoch(epoch: int, lr: float, advance) -> tuple[float, float, float]:
                optimizer.learning_rate = lr
                return self._train_epoch(trained, model, optimizer, train_images, train_labels, epoch, advance)

            self.run_epochs(
                history=history, start_epoch=start_epoch, train_count=len(train_labels), schedule=schedule,
                stage_names=[stage[0] for stage in stages], train_epoch=train_epoch,
                validate=lambda: self.evaluate(model, *val_arrays) if val_arrays else {},
                open_stages=lambda count: self._open(model, stages, count),
                save=(lambda epochs: self._save(out_dir, model, optimizer, schedule, epochs, history))
                if out_dir is not None else None)
        return history

    def _make_step(self, trained: keras.Model, model: keras.Model, optimizer: Any) -> Any:
        """A compiled training step over the model's currently trainable variables (traced anew every epoch)."""
        variables = list(model.trainable_variables)
        decay = float(self.config.weight_decay)
        signature = None if self.static_shapes else [
            tf.TensorSpec([None, *model.input_shape[1:]], tf.float32), tf.TensorSpec([None], tf.int64)]

        @tf.function(input_signature=signature)
        def step(x: tf.Tensor, y: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
            with tf.GradientTape() as tape:
                loss, logits = self.batch_loss(trained, x, y)
            grads = tape.gradient(loss, variables)
            pairs = [(g + decay * v if decay else g, v) for g, v in zip(grads, variables) if g is not None]
            optimizer.apply_gradients(pairs)
            return loss, logits

        return step

    def _train_epoch(self, trained, model, optimizer, images, labels, epoch, advance) -> tuple[float, float, float]:
        cfg = self.config
        tf.random.set_seed(derive_seed(cfg.seed, epoch, 0))  # dropout, NSL's random_init: TF's global seed ...
        step = self._make_step(trained, model, optimizer)  # ... reaches them in a fresh trace only
        self.generator.reset_from_seed(derive_seed(cfg.seed, epoch, 1))  # augmentations
        order = np.random.default_rng(derive_seed(cfg.seed, epoch, 2)).permutation(len(labels))
        total_loss, top1, top5, seen = 0.0, 0, 0, 0
        for index in batch_indices(order, cfg.batch_size):
            index = np.sort(index)  # sorted reads are kind to memory-mapped caches
            x = self.augment(images_to_tensor(images[index]))
            loss, logits = step(x, tf.constant(labels[index]))
            n = len(index)
            scores = logits.numpy()
            total_loss += float(loss) * n
            top1 += topk_correct(scores, labels[index], 1)
            top5 += topk_correct(scores, labels[index], 5)
            seen += n
            advance(f"loss {total_loss / seen:.4f} acc {top1 / seen:.1%}")
        return total_loss / seen, top1 / seen, top5 / seen

    def evaluate(self, model: keras.Model, images: np.ndarray, labels: np.ndarray) -> dict[str, float]:
        """Clean loss, top-1 and top-5 accuracy of ``model`` on uint8 NHWC ``images``."""
        metrics = accuracy(model, images, labels, batch_size=self.config.eval_batch_size)
        return {key: metrics[key] for key in ("loss", "top1", "top5")}

    # ---- stages, optimizer

    def _make_optimizer(self, model: keras.Model, stages) -> Any:
        """SGD or Adam, built on every variable any stage will train (so state survives unfreezing)."""
        cfg = self.config
        if cfg.optimizer == "adam":
            optimizer = keras.optimizers.Adam(learning_rate=cfg.lr, epsilon=1e-8)
        else:
            optimizer = keras.optimizers.SGD(learning_rate=cfg.lr, momentum=cfg.momentum,
                                             nesterov=cfg.nesterov and cfg.momentum > 0)
        trainable_stages(model, stages, len(stages))
        optimizer.build(model.trainable_variables)
        return optimizer

    def _open(self, model: keras.Model, stages, count: int) -> None:
        """Freeze everything but the first ``count`` stages."""
        trainable_stages(model, stages, count)
        self._open_stages = count

    # ---- facts

    @staticmethod
    def _model_facts(model: keras.Model, device: str) -> dict[str, Any]:
        return {
            "arch": model.name,
            "parameters": int(model.count_params()),
            "device": device.lstrip("/"),
            "tensorflow": str(tf.__version__),
        }

    # ---- checkpoints

    def _load_checkpoint(self, path: Path) -> tuple[dict[str, Any], list[np.ndarray], list[np.ndarray]]:
        try:
            with np.load(path, allow_pickle=False) as data:
                state = json.loads(str(data["state"]))
                arrays = {key: data[key] for key in data.files}
        except (OSError, ValueError, KeyError) as exc:
            raise UsageError(f"{path} is not a harness TensorFlow training checkpoint ({exc})") from exc
        if state.get("format") != CHECKPOINT_FORMAT:
            raise UsageError(f"{path} is not a harness TensorFlow training checkpoint")
        check_resume(path, self.name, self.describe()["params"], state["defense"], state["params"])
        model_state = [arrays[f"model_{i}"] for i in range(state["model_arrays"])]
        optimizer_state = [arrays[f"optimizer_{i}"] for i in range(state["optimizer_arrays"])]
        return state, model_state, optimizer_state

    def _save(self, out_dir: Path, model, optimizer, schedule, epoch: int, history: TrainingHistory) -> None:
        out_dir.mkdir(parents=True, exist_ok=True)
        described = self.describe()
        weights = model_weights(model)
        optimizer_state = [v.numpy() for v in optimizer.variables]
        state = {
            "format": CHECKPOINT_FORMAT,
            "defense": described["defense"],
            "params": described["params"],
            "epoch": epoch,
            "scheduler": schedule.state_dict() if schedule is not None else None,
            "history": history.to_dict(),
            "model_arrays": len(weights),
            "optimizer_arrays": len(optimizer_state),
        }
        arrays = {f"model_{i}": w for i, w in enumerate(weights)}
        arrays.update({f"optimizer_{i}": v for i, v in enumerate(optimizer_state)})
        with atomic_path(out_dir / CHECKPOINT_NAME, suffix=".npz") as tmp:
            np.savez(tmp, state=np.array(json.dumps(to_plain(state))), **arrays)
        write_epoch_outputs(out_dir, history, title=f"{self.name} ({history.meta.get('arch', '')})")
