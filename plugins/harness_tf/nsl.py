"""NSL adversarial regularization, shared by the defense and the ``nsl-perturb`` attack.

- :func:`adv_reg_config`: validated knobs -> ``nsl.configs.make_adv_reg_config(...)``;
- :func:`wrap`: a Keras model -> ``nsl.keras.AdversarialRegularization`` fed
  ``{"image": x, "label": y}`` dictionaries. It wraps a functional *view* of the
  model (same layers and weights, input named ``image``), so compiling the wrapper
  never recompiles the caller's model, and the model stays the thing to save.
"""

from __future__ import annotations

from numbers import Integral, Real
from typing import Any, Callable

import tf_keras as keras

from harness.errors import UsageError

from .nsl_compat import import_nsl

FEATURE_KEY = "image"
LABEL_KEY = "label"
NORMS = ("infinity", "l2")


def _positive(defense: str, name: str, value: Any, allow_zero: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, Real) or value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise UsageError(f"{defense}: {name} must be a number {bound}, got {value!r}")
    return float(value)


def adv_reg_config(defense: str, *, multiplier: float = 0.2, adv_step_size: float = 0.2,
                   adv_grad_norm: str = "infinity", pgd_iterations: int = 1, pgd_epsilon: float | None = None,
                   clip_value_min: float | None = 0.0, clip_value_max: float | None = 1.0,
                   random_init: bool = False) -> Any:
    """``nsl.configs.AdvRegConfig`` from checked knobs; ``defense`` names the caller in errors."""
    multiplier = _positive(defense, "multiplier", multiplier, allow_zero=True)
    adv_step_size = _positive(defense, "adv_step_size", adv_step_size)
    if adv_grad_norm not in NORMS:
        raise UsageError(f"{defense}: adv_grad_norm must be one of {', '.join(NORMS)}, got {adv_grad_norm!r}")
    if isinstance(pgd_iterations, bool) or not isinstance(pgd_iterations, Integral) or pgd_iterations < 1:
        raise UsageError(f"{defense}: pgd_iterations must be an integer >= 1, got {pgd_iterations!r}")
    if pgd_epsilon is not None:
        pgd_epsilon = _positive(defense, "pgd_epsilon", pgd_epsilon)
    for name, value in (("clip_value_min", clip_value_min), ("clip_value_max", clip_value_max)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, Real)):
            raise UsageError(f"{defense}: {name} must be a number or None, got {value!r}")
    if clip_value_min is not None and clip_value_max is not None and clip_value_min >= clip_value_max:
        raise UsageError(f"{defense}: clip_value_min must be below clip_value_max, got {clip_value_min!r} "
                         f">= {clip_value_max!r}")
    if not isinstance(random_init, bool):
        raise UsageError(f"{defense}: random_init must be true or false, got {random_init!r}")
    nsl = import_nsl()
    # NSL looks the bounds up by feature name when the features are a dict (as :func:`wrap` feeds
    # them): a bare number would match no feature and clip nothing
    return nsl.configs.make_adv_reg_config(
        multiplier=multiplier, adv_step_size=adv_step_size, adv_grad_norm=adv_grad_norm,
        pgd_iterations=int(pgd_iterations), pgd_epsilon=pgd_epsilon,
        clip_value_min=None if clip_value_min is None else {FEATURE_KEY: float(clip_value_min)},
        clip_value_max=None if clip_value_max is None else {FEATURE_KEY: float(clip_value_max)},
        random_init=random_init)


def wrap(model: keras.Model, config: Any, input_shape: tuple[int, ...],
         loss: Callable[..., Any] | keras.losses.Loss | None = None, optimizer: Any = "sgd") -> Any:
    """``nsl.keras.AdversarialRegularization`` around a view of ``model``, compiled with ``loss``.

    ``loss`` (default: sparse cross-entropy on logits) is the labelled loss NSL also
    uses on the adversarial neighbours; ``optimizer`` is only recorded by ``compile``.
    """
    nsl = import_nsl()
    inputs = keras.Input(shape=input_shape, name=FEATURE_KEY)
    view = keras.Model(inputs, model(inputs), name=f"{model.name}_view")
    wrapper = nsl.keras.AdversarialRegularization(view, label_keys=[LABEL_KEY], adv_config=config)
    wrapper.compile(optimizer=optimizer, loss=loss or keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return wrapper
