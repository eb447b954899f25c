"""Every hook a harness plugin can implement.

Implement them with ``from harness import hookimpl`` in a module exposed through the
``harness`` entry-point group (or loaded with ``plugins = [...]`` by a submission). Each hook
takes no arguments and returns a list of spec dataclasses (:mod:`harness.specs`) describing
plugins; none is ``firstresult``: the harness calls every implementation and keeps every spec.

When: a kind's hook is called the first time a registry of that kind is needed
(``harness plugins``, ``registry.list_*``/``get_*``/``create_*``, validating or training a
submission), once per plugin manager; :func:`harness.registry.clear_cache` forgets the
results. Hooks must be cheap and must not import torch or tensorflow: factories are lazy
``"module:attribute"`` paths, imported only when the plugin is created.

Fields every spec shares (:class:`harness.specs.PluginSpec`):

- ``name``: the registry name (unique per kind and framework; ``corruption/fog`` style
  prefixes are allowed);
- ``factory``: a callable, or ``"module:attribute"`` imported on creation;
- ``description``: one line shown by ``harness plugins``;
- ``framework``: ``"any"`` (numpy, framework-neutral), ``"torch"`` or ``"tf"``; one name may be
  registered once per framework (``fgsm`` for torch and tf), never twice for one framework or
  beside an ``any`` variant;
- ``params``: every parameter with its default; ``create_*`` rejects any other name;
- ``source``, ``distribution``, ``version``: filled in by the harness (leave them empty).

What each factory must return is the kind's contract (:mod:`harness.contracts`), checked when
the plugin is created; a broken rule is a one-line :class:`~harness.errors.PluginError`.
"""

from __future__ import annotations

import pluggy

from .specs import AttackSpec, AugmentationSpec, BackboneSpec, DatasetSpec, DefenseSpec

hookspec = pluggy.HookspecMarker("harness")


@hookspec
def harness_register_datasets() -> list[DatasetSpec]:
    """Return the datasets this plugin provides.

    :return: :class:`~harness.specs.DatasetSpec` list. ``factory(**params)`` returns a
        :class:`harness.contracts.Dataset`: ``.params`` (a mapping identifying the content; the
        cache key) and ``.plan(*, skip_bad=False)`` -> :class:`harness.data.DatasetPlan`.
        ``needs_source=True``: the dataset reads a user-given folder or archive (``source``
        parameter, ``--source`` on the command line).
    """


@hookspec
def harness_register_backbones() -> list[BackboneSpec]:
    """Return the model architectures (backbones) this plugin provides.

    :return: :class:`~harness.specs.BackboneSpec` list. ``factory(num_classes=int,
        input_shape=(H, W, C), **params)`` returns a model of the spec's framework
        (:class:`harness.contracts.Model`): a ``torch.nn.Module`` on float32 (N, C, H, W) or a
        Keras ``Model`` on float32 (N, H, W, C), pixels in [0, 1], normalization inside, logits
        (N, num_classes) out. ``num_classes`` and ``input_shape`` come from the dataset and are
        not listed in ``params``.
    """


@hookspec
def harness_register_augmentations() -> list[AugmentationSpec]:
    """Return the augmentations and perturbations this plugin provides.

    :return: :class:`~harness.specs.AugmentationSpec` list. ``factory(**params)`` returns
        ``aug`` (:class:`harness.contracts.Augmentation`), called as ``aug(x, *, generator)``
        and returning the type, shape and dtype of ``x``: uint8 numpy (N, H, W, C) with a
        ``numpy.random.Generator`` for ``any``; float32 (N, C, H, W) in [0, 1] with a
        ``torch.Generator`` for ``torch``; float32 (N, H, W, C) in [0, 1] with a
        ``tf.random.Generator`` for ``tf``. Used in training (``augmentations = [...]``),
        evaluation and split recipes.
    """


@hookspec
def harness_register_attacks() -> list[AttackSpec]:
    """Return the adversarial attacks this plugin provides.

    :return: :class:`~harness.specs.AttackSpec` list. ``factory(**params)`` returns
        ``attack`` (:class:`harness.contracts.Attack`), called as ``attack(model, x, y=None,
        target=None)`` on float32 pixels in [0, 1] in the model's layout and returning
        adversarial images of the same type and layout, with ``attack.config.eps`` (finite,
        >= 0, pixel space) and ``attack.config.norm`` (``linf`` or ``l2``): the budget the
        harness enforces when it stores adversarial images. Optional ``attack.threat``
        (``white-box``, the default, or ``black-box``) and ``attack.config.to_dict()``.
    """


@hookspec
def harness_register_defenses() -> list[DefenseSpec]:
    """Return the defenses (training procedures) this plugin provides.

    :return: :class:`~harness.specs.DefenseSpec` list. ``params`` holds the training knobs
        (:meth:`harness.training.TrainingConfig.defaults`: seed, progress, epochs, lr,
        batch_size, augmentations, ...) and the defense's own; ``factory(**params)`` returns a
        trainer (:class:`harness.contracts.Defense`) with ``fit(model, train, val=None,
        out_dir=None, *, resume=False)`` -> :class:`harness.training.TrainingHistory`.
    """
