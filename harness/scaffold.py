"""``harness submission new``: a new submission folder that validates, trains and scores as written.

It holds a commented ``submission.toml`` (cpu and gpu profiles) and, with ``with_plugin``, a plugin module
(``team_plugins.py``: a backbone, an augmentation and, for torch, a defense, following docs/plugins.md)
wired into it, plus ``test_team_plugins.py`` for pytest.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from .errors import UsageError, suggest

__all__ = ["DEFAULT_BACKBONES", "new_submission"]

#: the backbone each framework gets unless one is chosen: small and quick on digits
DEFAULT_BACKBONES = {"torch": "small-cnn", "tf": "nsl-cnn"}
#: training knobs of the base and cpu profile: well under a minute on digits
CPU_TRAINING = {"torch": 'epochs = 3, batch_size = 64, optimizer = "sgd", lr = 0.1',
                "tf": 'epochs = 3, batch_size = 32, optimizer = "adam", lr = 0.001'}
PLUGIN_MODULE = "team_plugins"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def _check_choice(kind: str, name: str, framework: str) -> None:
    """A registered plugin of ``kind`` usable with ``framework`` (did-you-mean on unknown names)."""
    from .registry import get_spec, registry, variants

    get_spec(kind, name)
    if name not in registry(kind, framework=framework):
        have = ", ".join(variants(kind, name))
        raise UsageError(f"--{kind} '{name}' is a {have} {kind}, not a {framework} one",
                         hint=f"list them: harness plugins {kind} -f {framework}")


def _toml_string(value: str) -> str:
    return json.dumps(value)  # a JSON string is a valid TOML basic string


def _line(code: str, comment: str) -> str:
    """``code`` with its comment in the column the template's comments use."""
    return f"{code:<31} # {comment}"


def submission_toml(name: str, framework: str, dataset: str, backbone: str, defense: str,
                    plugin_names: dict[str, str] | None) -> str:
    """The commented submission.toml text."""
    plugins = plugin_names or {}
    augmentation = plugins.get("augmentation", "hflip")
    lines = [
        f"# {name}: a harness submission (docs/competition.md describes every field; docs/participants.md the",
        "# first hour). Check it with: harness submission validate . ; train with: harness train . -P cpu",
        _line(f"name = {_toml_string(name)}", "shown on the leaderboard; unique in a competition"),
        _line('team = "my team"', "your team"),
        _line(f'framework = "{framework}"', '"torch" or "tf"; every plugin below must exist for it'),
        _line(f"dataset = {_toml_string(dataset)}", "a registered dataset (harness plugins dataset)"),
        _line(f"description = {_toml_string(backbone + ' + ' + defense)}", "one line, shown by harness score"),
        "seed = 0                        # seed of initialisation, shuffling and augmentations",
        '# track = "defense"             # or "attack": an attack submission, whose [attack] table names an',
        "                                # attack plugin (docs/participants.md, section 8)",
    ]
    if plugin_names:
        lines.append(f'plugins = ["{PLUGIN_MODULE}"]      # modules of this folder with harness hooks '
                     "(docs/plugins.md)")
    else:
        lines.append('# plugins = ["team_plugins"]    # modules of this folder with harness hooks (docs/plugins.md)')
    lines += [
        "# dataset_params = { }          # the dataset's parameters (harness plugins dataset -v)",
        "",
        "[backbone]                      # the model: harness plugins backbone -f " + framework,
        f"name = {_toml_string(backbone)}",
        "params = { }                    # the backbone's parameters over its defaults",
        "",
        "[[augmentations]]               # optional, repeatable: applied in order to training batches",
        _line(f"name = {_toml_string(augmentation)}", "harness plugins augmentation"),
        "p = 0.5                         # the augmentation's parameters sit beside its name",
        "",
        "[defense]                       # the trainer: harness plugins defense -f " + framework,
        f"name = {_toml_string(defense)}",
        "params = { }                    # the defense's own parameters",
        "",
        "[training]                      # harness.training.TrainingConfig knobs (docs/training.md): epochs,",
        "                                # batch_size, optimizer, lr, momentum, weight_decay, schedule, ...",
        CPU_TRAINING[framework].replace(", ", "\n"),
        "",
        "[profiles.cpu]                  # harness train . -P cpu: fields merged over the base, seconds on digits",
        'description = "digits on a laptop CPU"',
        "training = { epochs = 3 }",
        "",
        "[profiles.gpu]                  # harness train . -P gpu: the real budget",
        'dataset = "tiny-imagenet"       # prepare it first: harness data prepare tiny-imagenet --source PATH',
        "requires_gpu = true             # never scored on a machine without a GPU",
        "training = { epochs = 30, batch_size = 128 }",
        "",
    ]
    return "\n".join(lines)


def plugin_module(name: str, framework: str) -> str:
    """The text of team_plugins.py: one plugin per kind, names prefixed with the submission's name."""
    backbone = _TORCH_BACKBONE if framework == "torch" else _TF_BACKBONE
    defense = _TORCH_DEFENSE if framework == "torch" else ""
    hooks = [backbone, _AUGMENTATION] + ([defense] if defense else [])
    return (f'"""Plugins of submission {name} (docs/plugins.md: contracts and examples)."""\n\n'
            + "\n\n".join(hooks).replace("NAME", name))


def plugin_test(name: str, framework: str) -> str:
    """The text of test_team_plugins.py, runnable with pytest from the submission folder."""
    test = _TEST.replace("NAME", name).replace("FRAMEWORK", framework)
    return test + (_TORCH_DEFENSE_TEST.replace("NAME", name) if framework == "torch" else "")


def plugin_names(name: str, framework: str) -> dict[str, str]:
    """The plugin names team_plugins.py registers, by kind."""
    names = {"backbone": f"{name}-cnn", "augmentation": f"{name}-invert"}
    if framework == "torch":
        names["defense"] = f"{name}-noisy-training"
    return names


def new_submission(name: str, *, out: str | os.PathLike = ".", framework: str = "torch", dataset: str = "digits",
                   backbone: str | None = None, defense: str | None = None, with_plugin: bool = False) -> Path:
    """Write the submission folder ``out/name``; a UsageError for bad choices or an existing folder."""
    from .atomic import atomic_directory
    from .registry import get_spec

    if not _NAME.match(name):
        raise UsageError(f"submission name '{name}': use letters, digits, '-', '_' and '.'")
    if framework not in DEFAULT_BACKBONES:
        raise UsageError(f"--framework '{framework}': expected torch or tf.{suggest(framework, DEFAULT_BACKBONES)}")
    target = Path(out) / name
    if target.exists():
        raise UsageError(f"{target}: already exists (harness submission new never overwrites)",
                         hint="choose another NAME or --out")
    get_spec("dataset", dataset)
    for kind, choice in (("backbone", backbone), ("defense", defense)):
        if choice is not None:
            _check_choice(kind, choice, framework)
    names = plugin_names(name, framework) if with_plugin else None
    chosen_backbone = backbone or (names or {}).get("backbone") or DEFAULT_BACKBONES[framework]
    chosen_defense = defense or (names or {}).get("defense") or "standard"
    with atomic_directory(target) as folder:
        (folder / "submission.toml").write_text(
            submission_toml(name, framework, dataset, chosen_backbone, chosen_defense, names), encoding="utf-8")
        if with_plugin:
            (folder / f"{PLUGIN_MODULE}.py").write_text(plugin_module(name, framework), encoding="utf-8")
            (folder / f"test_{PLUGIN_MODULE}.py").write_text(plugin_test(name, framework), encoding="utf-8")
    return target


_TORCH_BACKBONE = '''from harness import hookimpl
from harness.specs import AugmentationSpec, BackboneSpec, DefenseSpec  # noqa: F401
from harness.training import EpochMetrics, TrainingConfig, TrainingHistory  # noqa: F401


def cnn(num_classes, input_shape, width=16, hidden=64):
    """float32 N, C, H, W pixels in [0, 1] in, logits (N, num_classes) out."""
    from torch import nn

    height, wide, channels = input_shape

    class CNN(nn.Module):
        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(nn.Conv2d(channels, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
            self.head = nn.Sequential(nn.Flatten(), nn.Linear(width * (height // 2) * (wide // 2), hidden), nn.ReLU(),
                                      nn.Linear(hidden, num_classes))

        def forward(self, x):
            return self.head(self.features((x - 0.5) / 0.5))  # normalization inside the model

    return CNN()


@hookimpl
def harness_register_backbones():
    return [BackboneSpec(name="NAME-cnn", factory=cnn, description="One convolution, two dense layers",
                         framework="torch", params={"width": 16, "hidden": 64})]'''

_TF_BACKBONE = '''from harness import hookimpl
from harness.specs import AugmentationSpec, BackboneSpec  # noqa: F401


def cnn(num_classes, input_shape, width=16, hidden=64):
    """float32 N, H, W, C pixels in [0, 1] in, logits (N, num_classes) out (Keras 2 via tf_keras)."""
    import harness_tf  # noqa: F401 - selects Keras 2 (TF_USE_LEGACY_KERAS) before TensorFlow starts
    import tf_keras as keras

    inputs = keras.Input(tuple(input_shape))
    x = keras.layers.Rescaling(2.0, offset=-1.0)(inputs)  # normalization inside the model
    x = keras.layers.MaxPooling2D(2)(keras.layers.Conv2D(width, 3, padding="same", activation="relu")(x))
    x = keras.layers.Dense(hidden, activation="relu")(keras.layers.Flatten()(x))
    return keras.Model(inputs, keras.layers.Dense(num_classes)(x))


@hookimpl
def harness_register_backbones():
    return [BackboneSpec(name="NAME-cnn", factory=cnn, description="One convolution, two dense layers (Keras)",
                         framework="tf", params={"width": 16, "hidden": 64})]'''

_AUGMENTATION = '''class Invert:
    """Inverts each image with probability p: uint8 numpy N, H, W, C in and out (any framework)."""

    def __init__(self, p=0.5):
        self.p = p

    def __call__(self, x, *, generator):
        chosen = generator.random(len(x)) < self.p  # all randomness from the generator
        out = x.copy()
        out[chosen] = 255 - out[chosen]
        return out


@hookimpl
def harness_register_augmentations():
    return [AugmentationSpec(name="NAME-invert", factory=Invert, description="Invert colours", params={"p": 0.5})]'''

_TORCH_DEFENSE = '''class NoisyTraining:
    """Cross-entropy on images with Gaussian noise of std `noise` (pixel space)."""

    def __init__(self, **params):
        self.config, own = TrainingConfig.split(params)  # the training knobs, checked; own: this defense's
        self.noise = own["noise"]

    def fit(self, model, train, val=None, out_dir=None, *, resume=False):
        import time

        import numpy as np
        import torch
        import torch.nn.functional as F

        cfg = self.config
        generator = torch.Generator().manual_seed(cfg.seed)
        images = torch.from_numpy(np.array(train.images)).permute(0, 3, 1, 2).float() / 255.0
        labels = torch.from_numpy(np.array(train.labels)).long()
        optimizer = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum)
        history = TrainingHistory(meta={"defense": "NAME-noisy-training"})
        model.train()
        for epoch in range(1, cfg.epochs + 1):
            started, losses = time.perf_counter(), []
            for batch in torch.randperm(len(images), generator=generator).split(cfg.batch_size):
                noise = torch.randn(images[batch].shape, generator=generator) * self.noise
                loss = F.cross_entropy(model((images[batch] + noise).clamp(0, 1)), labels[batch])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                losses.append(loss.item())
            history.append(EpochMetrics(epoch=epoch, train_loss=float(np.mean(losses)), train_top1=float("nan"),
                                        train_top5=float("nan"), lr=cfg.lr, seconds=time.perf_counter() - started))
        return history


@hookimpl
def harness_register_defenses():
    return [DefenseSpec(name="NAME-noisy-training", factory=NoisyTraining, description="Training on noisy images",
                        framework="torch", params={**TrainingConfig.defaults(), "noise": 0.1})]'''

_TEST = '''"""Tests of team_plugins.py: run them with `python -m pytest` in this folder."""

from pathlib import Path

import numpy as np

from harness import registry
from harness.submission import submission_plugins

HERE = Path(__file__).parent


def test_backbone_gives_logits_per_image():
    with submission_plugins(HERE, ["team_plugins"]):
        model = registry.create_backbone("NAME-cnn", framework="FRAMEWORK", num_classes=10, input_shape=(8, 8, 1))
        images = np.random.default_rng(0).random((4, 8, 8, 1), dtype=np.float32)
        if "FRAMEWORK" == "torch":
            import torch

            logits = model(torch.from_numpy(images).permute(0, 3, 1, 2)).detach().numpy()
        else:
            logits = model(images).numpy()
    assert logits.shape == (4, 10)


def test_augmentation_keeps_shape_dtype_and_is_deterministic():
    with submission_plugins(HERE, ["team_plugins"]):
        augment = registry.create_augmentation("NAME-invert", p=0.5)
    images = np.random.default_rng(0).integers(0, 256, (6, 8, 8, 1), dtype=np.uint8)
    first = augment(images, generator=np.random.default_rng(1))
    assert first.shape == images.shape and first.dtype == np.uint8
    assert np.array_equal(first, augment(images, generator=np.random.default_rng(1)))
'''

_TORCH_DEFENSE_TEST = '''

def test_defense_trains_one_epoch():
    from types import SimpleNamespace

    with submission_plugins(HERE, ["team_plugins"]):
        model = registry.create_backbone("NAME-cnn", num_classes=2, input_shape=(8, 8, 1))
        trainer = registry.create_defense("NAME-noisy-training", epochs=1, batch_size=8, progress=False)
    rng = np.random.default_rng(0)
    train = SimpleNamespace(images=rng.integers(0, 256, (16, 8, 8, 1), dtype=np.uint8),
                            labels=rng.integers(0, 2, 16))
    history = trainer.fit(model, train)
    assert len(history.epochs) == 1 and np.isfinite(history.epochs[0].train_loss)
'''
