"""Code-free export of a trained model, and loading it back without the submission's code.

An export folder::

    export.json     {"format", "framework", "num_classes", "input_shape", "file", "seconds", "max_abs_diff"}
    model.pt2       torch: ``torch.export`` program (batch dimension dynamic), takes float32 N,C,H,W in [0, 1]
    saved_model/    TensorFlow: SavedModel whose ``serve`` function takes float32 N,H,W,C in [0, 1]

Both give logits, in inference mode (BatchNorm running statistics, no dropout). :func:`export_model`
runs where the submission's code may run (it traces the model); :func:`load_exported` imports
only the framework and the harness's runtime, so white-box attacks can run on a model whose
code never enters their process. The exported file itself is still untrusted input: load it
only in a sandboxed child.
"""

from __future__ import annotations

import functools
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .atomic import atomic_directory, write_json
from .errors import HarnessError, UsageError

INFO_FILE = "export.json"
#: framework -> (export.json "format", the model file or folder inside the export folder)
FORMATS = {"torch": ("torch.export", "model.pt2"), "tf": ("saved_model", "saved_model")}
#: the exported model's logits on a probe batch must match the model's within this (relative to the logit scale)
TOLERANCE = 1e-3
#: probe batch size: not the export example's (2), so the dynamic batch dimension is exercised
PROBE_BATCH = 3


class NotExportable(HarnessError):
    """The model could not be exported code-free (the message says why, in one line)."""


def _one_line(exc: BaseException) -> str:
    """``Type: first line of the message`` plus its first ``- `` detail line (framework errors span pages, the
    cause often in a bullet below), at most 400 characters."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    detail = next((line[2:] for line in lines[1:] if line.startswith("- ")), "")
    text = " ".join(filter(None, (lines[0] if lines else "", detail)))
    line = f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    return line if len(line) <= 400 else line[:397] + "..."


def export_model(loaded: Any, out: Path) -> dict[str, Any]:
    """Export ``loaded`` (a :class:`harness.workflow.LoadedModel`) into folder ``out``, atomically; its info.

    The exported program's logits on a probe batch (another batch size than the export example's) must
    match the model's: a forward pass that depends on Python-side state or randomness fails. Any failure
    raises :class:`NotExportable` with the reason, and ``out`` is left as it was."""
    framework = loaded.runtime.name
    if framework not in FORMATS:
        raise NotExportable(f"no code-free export for framework '{framework}'")
    fmt, file = FORMATS[framework]
    shape = tuple(int(v) for v in loaded.info["input_shape"])
    started = time.perf_counter()
    probe = np.random.default_rng(0).random((PROBE_BATCH, *shape), dtype=np.float32)
    try:
        with atomic_directory(out) as tmp:
            export = _export_torch if framework == "torch" else _export_tf
            expected, got = export(loaded.model, shape, tmp / file, probe)
            diff = _check_logits(expected, got, int(loaded.info["num_classes"]))
            info = {"format": fmt, "framework": framework, "num_classes": int(loaded.info["num_classes"]),
                    "input_shape": list(shape), "file": file, "seconds": round(time.perf_counter() - started, 3),
                    "max_abs_diff": diff}
            write_json(tmp / INFO_FILE, info)
    except NotExportable:
        raise
    except Exception as exc:  # noqa: BLE001 - whatever the tracer or saver raises is the reason
        raise NotExportable(f"{fmt} failed: {_one_line(exc)}") from exc
    return info


def _check_logits(expected: np.ndarray, got: np.ndarray, num_classes: int) -> float:
    """The largest difference between the model's and the export's probe logits (non-finite ones must sit in
    the same places); NotExportable beyond tolerance."""
    if got.shape != (PROBE_BATCH, num_classes) or expected.shape != got.shape:
        raise NotExportable(f"exported model gives logits of shape {tuple(got.shape)} for {PROBE_BATCH} images, "
                            f"the model {tuple(expected.shape)}; expected ({PROBE_BATCH}, {num_classes})")
    finite = np.isfinite(expected)
    if (finite != np.isfinite(got)).any():
        raise NotExportable("exported model's logits are non-finite where the model's are not (or the reverse)")
    diff = float(np.max(np.abs(expected - got)[finite])) if finite.any() else 0.0
    scale = max(1.0, float(np.max(np.abs(expected[finite]))) if finite.any() else 1.0)
    if diff > TOLERANCE * scale:
        raise NotExportable(f"exported model's logits differ from the model's by {diff:.3g} on the probe batch "
                            "(randomness or Python-side state in the forward pass?)")
    return diff


# --------------------------------------------------------------------------- torch


def _export_torch(model: Any, shape: tuple[int, ...], path: Path, probe: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``torch.export`` of ``model`` in eval mode on the CPU (dynamic batch) saved to ``path``; the model's and
    the exported program's logits on float32 N,H,W,C ``probe``. The model gets its device and modes back."""
    import torch

    h, w, c = shape
    modes = [(module, module.training) for module in model.modules()]
    device = next((t.device for t in (*model.parameters(), *model.buffers())), torch.device("cpu"))
    try:
        model.to("cpu").eval()
        x = torch.from_numpy(probe).permute(0, 3, 1, 2)
        with torch.no_grad():
            expected = model(x).float().numpy()
        example = torch.rand(2, c, h, w, generator=torch.Generator().manual_seed(0))
        program = torch.export.export(model, (example,), dynamic_shapes=({0: torch.export.Dim("batch")},))
        torch.export.save(program, str(path))
        with torch.no_grad():
            got = program.module()(x).float().numpy()
    finally:
        model.to(device)
        for module, training in modes:
            module.training = training
    return expected, got


@functools.cache
def _exported_module_class() -> type:
    import torch

    class ExportedModule(torch.nn.Module):
        """An exported program as an ``nn.Module``: it was exported in eval mode and stays so;
        ``train()``/``eval()`` (which the unlifted program refuses) change nothing."""

        def __init__(self, program: torch.nn.Module):
            super().__init__()
            self.program = program

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.program(x)

        def train(self, mode: bool = True) -> "ExportedModule":
            return self

    return ExportedModule


def _load_torch(path: Path, device: str) -> Any:
    import torch

    program = torch.export.load(str(path))
    if torch.device(device).type != "cpu":
        from torch.export.passes import move_to_device_pass

        program = move_to_device_pass(program, device)  # constants baked into the graph move too
    return _exported_module_class()(program.module())


# --------------------------------------------------------------------------- TensorFlow


def _export_tf(model: Any, shape: tuple[int, ...], path: Path, probe: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """SavedModel of ``model``'s inference call (float32 N,H,W,C -> logits) at ``path``; the model's and the
    saved function's logits on ``probe``.

    Only the traced call and the variables are saved, not the Keras object (no submission class in the file);
    custom gradients in the graph (e.g. Keras's swish) are saved with it."""
    import tensorflow as tf

    expected = np.asarray(model(tf.constant(probe), training=False), dtype=np.float32)
    root = tf.Module()
    root.weights = list(model.variables)  # tracked, so the function's captured variables are saved
    root.serve = tf.function(lambda x: model(x, training=False),
                             input_signature=[tf.TensorSpec([None, *shape], tf.float32, name="images")])
    tf.saved_model.save(root, str(path), signatures={"serving_default": root.serve})
    return expected, np.asarray(root.serve(tf.constant(probe)), dtype=np.float32)


class _SavedModelClassifier:
    """A loaded SavedModel's ``serve`` function as a Keras-like callable: ``model(x, training=False)``
    gives logits and gradients flow through it (what the TF runtime and ART's TensorFlowV2Classifier call)."""

    def __init__(self, saved: Any):
        self.saved = saved  # keeps the restored variables alive
        self.serve = saved.serve

    def __call__(self, x: Any, training: bool = False) -> Any:
        import tensorflow as tf

        return self.serve(tf.cast(x, tf.float32))


def _load_tf(path: Path) -> Any:
    import tensorflow as tf

    saved = tf.saved_model.load(str(path))
    if not hasattr(saved, "serve"):
        raise UsageError(f"{path}: SavedModel has no 'serve' function (not a harness export)")
    return _SavedModelClassifier(saved)


# --------------------------------------------------------------------------- loading


@dataclass
class ExportedModel:
    """An exported model loaded back: ``model`` works with every function of ``runtime``
    (the framework's :mod:`harness.frameworks` runtime) that white-box evaluation uses."""

    model: Any
    runtime: Any
    info: dict[str, Any]

    def predict_logits(self, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """float32 (N, classes) logits for uint8 N,H,W,C ``images``."""
        return self.runtime.predict_logits(self.model, images, batch_size)


def read_export_info(folder: Path) -> dict[str, Any]:
    """``export.json`` of an export folder, checked; UsageError naming the file and field otherwise."""
    path = Path(folder) / INFO_FILE
    if not path.is_file():
        raise UsageError(f"{folder}: not an exported model (no {INFO_FILE})")
    try:
        info = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise UsageError(f"{path}: unreadable: {exc}") from None
    if not isinstance(info, dict):
        raise UsageError(f"{path}: expected a JSON object")
    framework = info.get("framework")
    if framework not in FORMATS:
        raise UsageError(f"{path}: field 'framework' must be one of {', '.join(FORMATS)}, got {framework!r}")
    fmt, file = FORMATS[framework]
    if info.get("format") != fmt or info.get("file") != file:
        raise UsageError(f"{path}: fields 'format'/'file' must be '{fmt}'/'{file}' for framework '{framework}'")
    shape = info.get("input_shape")
    if not (isinstance(shape, list) and len(shape) == 3 and all(isinstance(v, int) and v > 0 for v in shape)):
        raise UsageError(f"{path}: field 'input_shape' must be [height, width, channels], got {shape!r}")
    if not (isinstance(info.get("num_classes"), int) and info["num_classes"] > 0):
        raise UsageError(f"{path}: field 'num_classes' must be a positive integer, got {info.get('num_classes')!r}")
    return info


def load_exported(folder: Path, threads: int | None = None) -> ExportedModel:
    """Load an export folder written by :func:`export_model` on the runtime's device (CUDA when present);
    imports the framework and the harness's runtime only, never a submission's or plugin's module."""
    from .frameworks import get_runtime

    folder = Path(folder)
    info = read_export_info(folder)
    runtime = get_runtime(info["framework"])
    runtime.configure(threads=threads)
    path = folder / info["file"]
    if not path.exists():
        raise UsageError(f"{folder}: exported model file {info['file']} is missing")
    try:
        model = _load_torch(path, runtime.device_name()) if info["framework"] == "torch" else _load_tf(path)
    except HarnessError:
        raise
    except Exception as exc:  # noqa: BLE001 - a corrupt or foreign file: one line naming it
        raise UsageError(f"{path}: cannot load exported model: {_one_line(exc)}") from None
    return ExportedModel(model, runtime, info)
