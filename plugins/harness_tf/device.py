"""Device selection for the TensorFlow plugins.

TensorFlow places work on the first GPU by itself; the harness only adds the
``HARNESS_DEVICE`` switch. ``HARNESS_DEVICE=cpu`` hides every GPU from
TensorFlow as soon as this module is imported (before TensorFlow touches them),
so nothing lands on a GPU by accident. Device names are TensorFlow's
(``"/CPU:0"``, ``"/GPU:0"``); ``cuda`` and ``cuda:N`` are accepted as aliases.
"""

from __future__ import annotations

import os
import re

import tensorflow as tf

from harness.errors import UsageError

DEVICE_ENV = "HARNESS_DEVICE"
_PATTERN = re.compile(r"^/?(?:device:)?(cpu|gpu|cuda)(?::(\d+))?$", re.IGNORECASE)


def _parse(requested: str, what: str) -> tuple[str, int]:
    match = _PATTERN.match(requested.strip())
    if not match:
        raise UsageError(f"{what} is not a TensorFlow device", hint="use auto, cpu, gpu, gpu:0 (or cuda, cuda:0)")
    kind = "CPU" if match.group(1).lower() == "cpu" else "GPU"
    return kind, int(match.group(2) or 0)


def hide_gpus_when_cpu_requested() -> None:
    """With ``HARNESS_DEVICE=cpu``, make GPUs invisible to TensorFlow (a no-op once TF has started them)."""
    requested = os.environ.get(DEVICE_ENV, "").strip()
    if not requested or not _PATTERN.match(requested) or _parse(requested, DEVICE_ENV)[0] != "CPU":
        return
    try:
        tf.config.set_visible_devices([], "GPU")
    except RuntimeError:  # GPUs already initialised: placement below still keeps work on the CPU
        pass


def resolve_device(device: str | None = "auto") -> str:
    """``"auto"``/None: ``HARNESS_DEVICE`` if set, else the first GPU when present, else the CPU.

    Returns a TensorFlow device name (``"/CPU:0"``, ``"/GPU:1"``); a device that does not
    exist is a UsageError saying why.
    """
    if device is None or str(device) == "auto":
        requested = os.environ.get(DEVICE_ENV, "").strip()
        if not requested:
            return "/GPU:0" if tf.config.list_logical_devices("GPU") else "/CPU:0"
        what, fallback = f"{DEVICE_ENV}={requested!r}", f"unset {DEVICE_ENV} or set it to cpu"
    else:
        requested, what, fallback = str(device), f"device {str(device)!r}", "use auto or cpu"
    kind, index = _parse(requested, what)
    if kind == "GPU":
        count = len(tf.config.list_logical_devices("GPU"))
        if count == 0:
            raise UsageError(f"{what} but TensorFlow sees no GPU", hint=fallback)
        if index >= count:
            raise UsageError(f"{what} but only {count} GPU(s) are visible to TensorFlow")
    return f"/{kind}:{index}"


def auto_device() -> str:
    """The first GPU when present, else the CPU; ``HARNESS_DEVICE`` (e.g. ``cpu``, ``gpu:1``) overrides."""
    return resolve_device("auto")


hide_gpus_when_cpu_requested()
