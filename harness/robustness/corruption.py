"""Corruption accuracy (ImageNet-C protocol) and mCE, for any framework.

The benchmark is the 15 ImageNet-C corruptions at severities 1-5; the 4 held-out
ones (ImageNet-C's validation corruptions) are kept apart so a participant who
augments with the 15 is still tested on unseen ones. Corruptions are augmentation
plugins named ``corruption/<name>`` and ``corruption-holdout/<name>`` (framework
"any", built into ``harness_corruptions``), created through the registry.

mCE (Hendrycks & Dietterich 2019): for each corruption c,
``CE_c = sum_s E(model, c, s) / sum_s E(baseline, c, s)``; mCE is the mean of CE_c
over the corruptions both have. The baseline is a named submission's
per-(corruption, severity) errors, e.g. the CSV this module writes for it.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from ..atomic import write_text
from ..errors import UsageError
from ..perturb.severity import SEVERITIES, check_severity

#: the 15 benchmark corruptions, in ImageNet-C's order (noise, blur, weather, digital)
CORRUPTIONS = (
    "gaussian-noise", "shot-noise", "impulse-noise",
    "defocus-blur", "glass-blur", "motion-blur", "zoom-blur",
    "snow", "frost", "fog",
    "brightness", "contrast", "elastic-transform", "pixelate", "jpeg-compression",
)
#: ImageNet-C's 4 validation corruptions, held out from the benchmark mean
HOLDOUT_CORRUPTIONS = ("speckle-noise", "gaussian-blur", "spatter", "saturate")
ALL_CORRUPTIONS = CORRUPTIONS + HOLDOUT_CORRUPTIONS
#: registry prefix of each group: ``corruption/fog``, ``corruption-holdout/spatter``
GROUPS = {"benchmark": "corruption", "holdout": "corruption-holdout"}
CSV_FIELDS = ("corruption", "group", "severity", "accuracy", "error", "count")

#: predict_fn(uint8 images (N, H, W, C)) -> logits or predicted labels (N,)
PredictFn = Callable[[np.ndarray], np.ndarray]


def corruption_group(name: str) -> str:
    """"benchmark" or "holdout" for a corruption name (short, like ``fog``)."""
    if name in CORRUPTIONS:
        return "benchmark"
    if name in HOLDOUT_CORRUPTIONS:
        return "holdout"
    from ..errors import suggest

    raise UsageError(f"Unknown corruption '{name}'.{suggest(name, ALL_CORRUPTIONS)} "
                     f"Available: {', '.join(ALL_CORRUPTIONS)}")


def registry_name(name: str) -> str:
    """The augmentation registry name of corruption ``name``: ``corruption/fog``."""
    return f"{GROUPS[corruption_group(name)]}/{name}"


def short_name(name: str) -> str:
    """``fog`` from ``fog`` or ``corruption/fog``."""
    return name.rpartition("/")[2]


def resolve_corruptions(corruptions: str | Iterable[str] | None) -> tuple[str, ...]:
    """Short names from None (the 15), "benchmark", "holdout", "all", or names (short or registry)."""
    if corruptions is None or corruptions == "benchmark":
        return CORRUPTIONS
    if corruptions == "holdout":
        return HOLDOUT_CORRUPTIONS
    if corruptions == "all":
        return ALL_CORRUPTIONS
    names = [corruptions] if isinstance(corruptions, str) else list(corruptions)
    resolved = tuple(short_name(str(name)) for name in names)
    for name in resolved:
        corruption_group(name)
    return resolved


def create_corruption(name: str, severity: int, seed: int | None = None) -> Callable[..., np.ndarray]:
    """The registered corruption ``name`` at ``severity``: ``corrupt(images, generator=...) -> images``."""
    from .. import registry

    return registry.create_augmentation(registry_name(short_name(name)), severity=severity, seed=seed)


def _predictions(predict_fn: PredictFn, images: np.ndarray) -> np.ndarray:
    out = np.asarray(predict_fn(images))
    return out.argmax(axis=1) if out.ndim == 2 else out.astype(np.int64)


def _hits(predict_fn: PredictFn, images: np.ndarray, labels: np.ndarray) -> int:
    """How many of one chunk's ``images`` ``predict_fn`` gets right."""
    return int(np.count_nonzero(_predictions(predict_fn, images) == labels))


@dataclass
class CorruptionResult:
    """Accuracy per (corruption, severity), the benchmark mean, and mCE when a baseline was given."""

    #: rows of :data:`CSV_FIELDS`
    rows: list[dict[str, Any]]
    clean_accuracy: float | None = None
    seed: int = 0
    baseline: str | None = None
    #: CE_c per corruption (only with a baseline)
    corruption_errors: dict[str, float] = field(default_factory=dict)

    def accuracy(self, corruption: str, severity: int) -> float:
        for row in self.rows:
            if row["corruption"] == corruption and row["severity"] == severity:
                return row["accuracy"]
        raise KeyError((corruption, severity))

    def errors(self) -> dict[str, dict[int, float]]:
        """corruption -> severity -> error (1 - accuracy)."""
        table: dict[str, dict[int, float]] = {}
        for row in self.rows:
            table.setdefault(row["corruption"], {})[int(row["severity"])] = float(row["error"])
        return table

    def mean_accuracy(self, group: str = "benchmark") -> float | None:
        """Mean accuracy over the group's (corruption, severity) cells (15 x 5 for the full benchmark)."""
        values = [row["accuracy"] for row in self.rows if row["group"] == group]
        return float(np.mean(values)) if values else None

    @property
    def mce(self) -> float | None:
        """Mean corruption error over the benchmark corruptions relative to the baseline (None without one)."""
        values = [v for name, v in self.corruption_errors.items() if name in CORRUPTIONS]
        return float(np.mean(values)) if values else None

    def to_csv(self) -> str:
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=CSV_FIELDS, lineterminator="\n")
        writer.writeheader()
        for row in self.rows:
            writer.writerow({**row, "accuracy": f"{row['accuracy']:.6f}", "error": f"{row['error']:.6f}"})
        return buffer.getvalue()

    def write_csv(self, path: str | Path) -> Path:
        """Write the per-(corruption, severity) table atomically."""
        write_text(path, self.to_csv())
        return Path(path)

    def to_dict(self) -> dict[str, Any]:
        return {
            "clean_accuracy": self.clean_accuracy,
            "mean_accuracy": self.mean_accuracy("benchmark"),
            "holdout_mean_accuracy": self.mean_accuracy("holdout"),
            "mce": self.mce,
            "baseline": self.baseline,
            "corruption_errors": dict(self.corruption_errors),
            "seed": self.seed,
            "rows": [dict(row) for row in self.rows],
        }


def load_corruption_errors(path: str | Path) -> dict[str, dict[int, float]]:
    """corruption -> severity -> error from a CSV written by :meth:`CorruptionResult.write_csv`."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"baseline corruption table not found: {path}")
    table: dict[str, dict[int, float]] = {}
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = {"corruption", "severity", "error"} - set(reader.fieldnames or ())
        if missing:
            raise UsageError(f"{path}: baseline table lacks column(s) {', '.join(sorted(missing))}")
        for row in reader:
            table.setdefault(row["corruption"], {})[int(row["severity"])] = float(row["error"])
    return table


def corruption_errors(errors: Mapping[str, Mapping[int, float]], baseline: Mapping[str, Mapping[int, float]]
                      ) -> dict[str, float]:
    """CE_c = sum over severities of the model's errors / the baseline's, for corruptions both have.

    Only severities both have count; a baseline without errors on a corruption (sum 0) is skipped.
    """
    out = {}
    for name, by_severity in errors.items():
        base = baseline.get(name)
        if not base:
            continue
        common = sorted(set(by_severity) & {int(s) for s in base})
        denominator = sum(float(base[s]) for s in common)
        if common and denominator > 0:
            out[name] = sum(float(by_severity[s]) for s in common) / denominator
    return out


def mce(errors: Mapping[str, Mapping[int, float]], baseline: Mapping[str, Mapping[int, float]]) -> float | None:
    """Mean corruption error over the benchmark corruptions (None when there is none in common)."""
    values = [v for name, v in corruption_errors(errors, baseline).items() if name in CORRUPTIONS]
    return float(np.mean(values)) if values else None


def corruption_accuracy(
    predict_fn: PredictFn,
    images: np.ndarray,
    labels: np.ndarray,
    corruptions: str | Iterable[str] | None = None,
    severities: Sequence[int] = SEVERITIES,
    seed: int = 0,
    *,
    baseline: Mapping[str, Mapping[int, float]] | str | Path | None = None,
    baseline_name: str | None = None,
    csv_path: str | Path | None = None,
    clean: bool = True,
    progress: bool = False,
) -> CorruptionResult:
    """Accuracy of ``predict_fn`` on every (corruption, severity) of uint8 NHWC ``images``.

    ``predict_fn`` takes uint8 images and returns logits (N, classes) or labels (N,), e.g.
    ``lambda x: runtime.predict_logits(model, x)``. ``corruptions``: None or "benchmark"
    (the 15), "holdout" (the 4), "all", or names. Each (corruption, severity) gets its
    own seed derived from ``seed``, so a cell's images do not depend on which others
    run. ``baseline``: errors (corruption -> severity -> error) or the path of a CSV
    this function wrote for the baseline submission; gives CE per corruption and mCE.
    ``csv_path``: where to write the table (atomically). ``progress``: a bar on a terminal, else
    a line per corruption (:mod:`harness.progress`). ``images`` may be a memory map: each cell corrupts,
    predicts and counts one chunk at a time (:mod:`harness.chunks`; the random stream runs on, so the
    numbers are those of the whole array at once).
    """
    from ..chunks import spans
    from ..progress import stage

    images = np.asarray(images)  # a memory map stays one: only a chunk at a time is read
    labels = np.asarray(labels).astype(np.int64)
    if len(images) != len(labels):
        raise UsageError(f"got {len(labels)} labels for {len(images)} images")
    names = resolve_corruptions(corruptions)
    severities = tuple(check_severity(s) for s in severities)
    count = len(labels)
    rows = []
    with stage("corruptions", len(names), enabled=progress) as report:
        for name in names:
            index = ALL_CORRUPTIONS.index(name)
            for severity in severities:
                cell_seed = int(np.random.SeedSequence([int(seed), index, severity]).generate_state(1)[0])
                corrupt = create_corruption(name, severity)
                rng = np.random.default_rng(cell_seed)  # runs on across chunks: the images of one call
                hits = sum(_hits(predict_fn, corrupt(images[part], generator=rng), labels[part])
                           for part in spans(count))
                accuracy = hits / count if count else 0.0
                rows.append({"corruption": name, "group": corruption_group(name), "severity": severity,
                             "accuracy": accuracy, "error": 1.0 - accuracy, "count": count})
            cells = [row["accuracy"] for row in rows[-len(severities):]] if severities else []
            report.done(f"{name} done (accuracy {np.mean(cells) if cells else 0.0:.1%} over "
                        f"{len(severities)} severities)")
    clean_accuracy = None
    if clean and count:
        clean_accuracy = sum(_hits(predict_fn, images[part], labels[part]) for part in spans(count)) / count
    result = CorruptionResult(rows, clean_accuracy, int(seed))
    if baseline is not None:
        if isinstance(baseline, (str, Path)):
            baseline_name = baseline_name or Path(baseline).stem
            baseline = load_corruption_errors(baseline)
        result.baseline = baseline_name or "baseline"
        result.corruption_errors = corruption_errors(result.errors(), baseline)
    if csv_path is not None:
        result.write_csv(csv_path)
    return result
