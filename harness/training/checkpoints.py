"""Resuming: which checkpoint ``fit(..., resume=...)`` continues from, and whether it may."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from ..errors import UsageError

#: knobs that may change between a run and its resumption
RESUMABLE_CHANGES = frozenset({"epochs", "progress", "device", "eval_batch_size"})


def find_checkpoint(resume: bool | str | Path | None, out_dir: Path | None, name: str) -> Path | None:
    """The checkpoint ``fit(..., resume=...)`` continues from: None (start afresh), ``out_dir/name`` or a path."""
    if resume is False or resume is None:
        return None
    if resume is True:
        if out_dir is None:
            raise UsageError(f"resume=True needs out_dir (where {name} is)")
        path = out_dir / name
        return path if path.is_file() else None
    path = Path(resume)
    if not path.is_file():
        raise UsageError(f"checkpoint to resume from not found: {path}")
    return path


def check_resume(path: Path, defense: str, params: Mapping[str, Any], saved_defense: str,
                 saved_params: Mapping[str, Any]) -> None:
    """UsageError when a checkpoint was written by another defense or with other parameters.

    Only :data:`RESUMABLE_CHANGES` may differ between a run and its resumption. A training knob the
    checkpoint does not name (written before the knob existed) counts as its default.
    """
    from .config import TrainingConfig

    if saved_defense != defense:
        raise UsageError(f"{path} was written by defense '{saved_defense}', not '{defense}'")
    saved_params = {**{k: v for k, v in TrainingConfig.defaults().items() if k in params}, **saved_params}
    changed = sorted(k for k in set(params) | set(saved_params)
                     if k not in RESUMABLE_CHANGES and params.get(k) != saved_params.get(k))
    if changed:
        raise UsageError(
            f"cannot resume from {path}: parameters changed: "
            + ", ".join(f"{k} {saved_params.get(k)!r} -> {params.get(k)!r}" for k in changed),
            hint="use the checkpoint's parameters, or a fresh out_dir",
        )
