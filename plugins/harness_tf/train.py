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
- mixed precision (``precision``: bf16 or fp16, the latter with a ``LossScaleOptimizer``):
  the steps run on a clone of the model whose layers carry the ``mixed_bfloat16`` /
  ``mixed_float16`` policy (its output layer stays float32, so losses are float32, NSL's
  included) and whose float32 weights are copied back into the model after training; the
  global Keras policy is never touched, so the saved model predicts in float32.
  ``compile`` compiles the step with XLA (``jit_compile``); ``memory_format`` is torch's
  (only ``auto`` is accepted: TensorFlow picks its own layout);
- seeds every epoch (shuffle order, augmentations, TensorFlow's global seed, which a
  training step traced afresh each epoch passes to dropout and NSL's random start), so
  a resumed run matches an uninterrupted one exactly;
- after every epoch writes ``metrics.json``, ``training_curves.png`` and
  ``checkpoint.npz`` (base-model weights, optimizer state, schedule, epoch,
  history) to ``out_dir``; ``fit(..., resume=True)`` continues from that checkpoint;
- shows a rich progress bar with the running loss and accuracy.

Only the base model (or its mixed-precision clone) is trained and saved: a wrapper from
:meth:`Trainer.prepare` shares its layers and adds no weights.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator, Mapping

import numpy as np
import tensorflow as tf
import tf_keras as keras

from harness.atomic import atomic_path
from harness.errors import UsageError
from harness.training import FitRun, TrainerBase, batch_indices, derive_seed, to_plain

from .backbones import load_model_weights, trainable_stages, unfreezing_stages
from .device import resolve_device
from .evaluate import accuracy, images_to_tensor

CHECKPOINT_NAME = "checkpoint.npz"
CHECKPOINT_FORMAT = "harness-tf-checkpoint/1"

#: TrainingConfig.precision -> the Keras mixed-precision policy of the trained clone (None: the model itself)
POLICIES = {"fp32": None, "bf16": "mixed_bfloat16", "fp16": "mixed_float16"}


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


def mixed_clone(model: keras.Model, policy: str) -> keras.Model:
    """A copy of ``model`` (same architecture and weights) whose layers compute under ``policy``; nested models
    are cloned likewise and the output layers stay float32 (float32 logits for the losses)."""

    def clone(layer: keras.layers.Layer, outputs: tuple[str, ...] = ()) -> keras.layers.Layer:
        if isinstance(layer, keras.Model):
            return keras.models.clone_model(layer, clone_function=clone)
        config = layer.get_config()
        config["dtype"] = "float32" if layer.name in outputs else policy
        return layer.__class__.from_config(config)

    try:
        copy = keras.models.clone_model(model, clone_function=lambda layer: clone(layer, tuple(model.output_names)))
        set_model_weights(copy, model_weights(model))
    except (NotImplementedError, TypeError, ValueError) as exc:  # a custom layer without a usable get_config
        raise UsageError(f"precision: cannot rebuild model '{model.name}' under the {policy} policy "
                         f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})",
                         hint="give custom layers a get_config(), or train with precision = 'fp32'") from exc
    return copy


def loss_scale_variables(optimizer: Any) -> list[tf.Variable]:
    """A ``LossScaleOptimizer``'s dynamic loss scale and its counter (checkpointed: resuming stays exact);
    none for a plain optimizer. (Keras exposes them read-only, so this reads its private state.)"""
    state = getattr(optimizer, "_loss_scale", None)
    return [state._current_loss_scale, state._counter] if state is not None else []


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
    ``fit`` is :meth:`harness.training.TrainerBase.fit`; this class fills in its TensorFlow hooks.
    """

    framework = "tf"
    framework_title = "TensorFlow"
    checkpoint_name = CHECKPOINT_NAME
    checkpoint_format = CHECKPOINT_FORMAT
    #: trace the step per batch shape (True) instead of once for any batch size
    static_shapes: bool = False

    def __init__(self, **params: Any):
        super().__init__(**params)
        if self.config.memory_format != "auto":
            raise UsageError(f"memory_format = {self.config.memory_format!r} is a torch knob: TensorFlow lays "
                             "tensors out itself (NHWC; its GPU layout optimizer converts convolutions); "
                             "leave memory_format at 'auto'")
        self.generator = tf.random.Generator.from_seed(0)
        self.loss = None  # loss(labels, logits) (see cross_entropy), set by fit()
        self.target: keras.Model | None = None  # the model fit() was given (trains a mixed clone of it)

    # ---- what a defense overrides

    def prepare(self, model: keras.Model) -> keras.Model:
        """The model the training steps call (default: ``model``); called once per :meth:`fit`."""
        return model

    def batch_loss(self, trained: keras.Model, x: tf.Tensor, y: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """(loss to minimise, logits whose accuracy is reported) for one augmented batch, inside the tape."""
        logits = tf.cast(trained(x, training=True), tf.float32)
        loss = tf.reduce_mean(self.loss(y, logits))
        if trained.losses:  # layer regularizers
            loss += tf.add_n(trained.losses)
        return loss, logits

    # ---- fit's hooks

    def _num_classes(self, model: keras.Model) -> int:
        return int(model.output_shape[-1])

    def _setup(self, model: keras.Model) -> FitRun:
        cfg = self.config
        device = resolve_device(cfg.device)
        self.loss = cross_entropy(self._num_classes(model), cfg.label_smoothing)
        self.target = model
        policy = POLICIES[cfg.precision]
        if policy is not None:
            with tf.device(device):
                model = mixed_clone(model, policy)
        facts = {**self._model_facts(self.target, device), "precision": cfg.precision,
                 "memory_format": cfg.memory_format, "compile": cfg.compile}
        return FitRun(model, device, unfreezing_stages(model), facts)

    def _device_scope(self, run: FitRun) -> Any:
        return tf.device(run.device)

    def _read_checkpoint(self, path: Path) -> Mapping[str, Any]:
        try:
            with np.load(path, allow_pickle=False) as data:
                state = json.loads(str(data["state"]))
                arrays = {key: data[key] for key in data.files}
        except (OSError, ValueError, KeyError) as exc:
            raise UsageError(f"{path} is not a harness TensorFlow training checkpoint ({exc})") from exc
        return {**state, "arrays": arrays} if isinstance(state, dict) else state

    def _restore(self, run: FitRun, state: Mapping[str, Any]) -> None:
        set_model_weights(run.model, [state["arrays"][f"model_{i}"] for i in range(state["model_arrays"])])

    def _open_optimizer(self, run: FitRun, count: int, state: Mapping[str, Any] | None) -> Any:
        optimizer = self._make_optimizer(run.model, run.stages)
        if state is not None:
            inner = getattr(optimizer, "inner_optimizer", optimizer)  # a LossScaleOptimizer sets its inner one's
            inner.set_weights([state["arrays"][f"optimizer_{i}"] for i in range(state["optimizer_arrays"])])
            for i, variable in enumerate(loss_scale_variables(optimizer)):
                variable.assign(state["arrays"][f"loss_scale_{i}"])
        trainable_stages(run.model, run.stages, count)
        return optimizer

    def _prepare(self, run: FitRun) -> keras.Model:
        return self.prepare(run.model)

    def _train_batches(self, run: FitRun, images: np.ndarray, labels: np.ndarray, epoch: int,
                       lr: float) -> Iterator[tuple[np.ndarray, float, np.ndarray]]:
        cfg = self.config
        run.optimizer.learning_rate = lr
        tf.random.set_seed(derive_seed(cfg.seed, epoch, 0))  # dropout, NSL's random_init: TF's global seed ...
        step = self._make_step(run.trained, run.model, run.optimizer)  # ... reaches them in a fresh trace only
        self.generator.reset_from_seed(derive_seed(cfg.seed, epoch, 1))  # augmentations
        order = np.random.default_rng(derive_seed(cfg.seed, epoch, 2)).permutation(len(labels))
        for index in batch_indices(order, cfg.batch_size):
            index = np.sort(index)  # sorted reads are kind to memory-mapped caches
            x = self.augment(images_to_tensor(images[index]))
            loss, logits = step(x, tf.constant(labels[index]))
            yield index, float(loss), logits.numpy()

    def evaluate(self, model: keras.Model, images: np.ndarray, labels: np.ndarray) -> dict[str, float]:
        """Clean loss, top-1 and top-5 accuracy of ``model`` on uint8 NHWC ``images``."""
        metrics = accuracy(model, images, labels, batch_size=self.config.eval_batch_size)
        return {key: metrics[key] for key in ("loss", "top1", "top5")}

    def _unfreeze(self, run: FitRun, count: int) -> None:
        trainable_stages(run.model, run.stages, count)

    def _write_checkpoint(self, run: FitRun, path: Path, state: dict[str, Any]) -> None:
        weights = model_weights(run.model)
        optimizer_state = [v.numpy() for v in run.optimizer.variables]
        state = {**state, "model_arrays": len(weights), "optimizer_arrays": len(optimizer_state)}
        arrays = {f"model_{i}": w for i, w in enumerate(weights)}
        arrays.update({f"optimizer_{i}": v for i, v in enumerate(optimizer_state)})
        arrays.update({f"loss_scale_{i}": v.numpy() for i, v in enumerate(loss_scale_variables(run.optimizer))})
        with atomic_path(path, suffix=".npz") as tmp:
            np.savez(tmp, state=np.array(json.dumps(to_plain(state))), **arrays)

    def _finish(self, run: FitRun) -> None:
        if run.model is not self.target:  # the mixed clone's float32 weights go back into the float32 model
            set_model_weights(self.target, model_weights(run.model))

    # ---- the compiled step, optimizer, facts

    def _make_step(self, trained: keras.Model, model: keras.Model, optimizer: Any) -> Any:
        """A compiled training step over the model's currently trainable variables (traced anew every epoch);
        XLA-compiled with ``compile``, loss-scaled for fp16."""
        variables = list(model.trainable_variables)
        decay = float(self.config.weight_decay)
        scaled = self.config.precision == "fp16"
        signature = None if self.static_shapes else [
            tf.TensorSpec([None, *model.input_shape[1:]], tf.float32), tf.TensorSpec([None], tf.int64)]

        @tf.function(input_signature=signature, jit_compile=self.config.compile or None)
        def step(x: tf.Tensor, y: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
            with tf.GradientTape() as tape:
                loss, logits = self.batch_loss(trained, x, y)
                target = optimizer.get_scaled_loss(loss) if scaled else loss
            grads = tape.gradient(target, variables)
            if scaled:
                grads = optimizer.get_unscaled_gradients(grads)
            pairs = [(g + decay * v if decay else g, v) for g, v in zip(grads, variables) if g is not None]
            optimizer.apply_gradients(pairs)
            return loss, tf.cast(logits, tf.float32)

        return step

    def _make_optimizer(self, model: keras.Model, stages) -> Any:
        """SGD or Adam, built on every variable any stage will train (so state survives unfreezing)."""
        cfg = self.config
        if cfg.optimizer == "adam":
            optimizer = keras.optimizers.Adam(learning_rate=cfg.lr, epsilon=1e-8)
        else:
            optimizer = keras.optimizers.SGD(learning_rate=cfg.lr, momentum=cfg.momentum,
                                             nesterov=cfg.nesterov and cfg.momentum > 0)
        if cfg.precision == "fp16":
            optimizer = keras.mixed_precision.LossScaleOptimizer(optimizer)
        trainable_stages(model, stages, len(stages))
        optimizer.build(model.trainable_variables)
        return optimizer

    @staticmethod
    def _model_facts(model: keras.Model, device: str) -> dict[str, Any]:
        return {
            "arch": model.name,
            "parameters": int(model.count_params()),
            "device": device.lstrip("/"),
            "tensorflow": str(tf.__version__),
        }
