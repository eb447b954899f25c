"""``harness score``: every submission trained and predicted in its own child process, scored here.

The organiser's process alone reads labels and tags; it reads each submission's
TOML only, never its code. What ``harness submission validate`` finds from the TOML
alone (unknown profile, invalid TOML, unknown field or plugin name) is recorded as
``invalid`` with the problem before any child starts (:func:`invalid_reason`). Each
child is started, watched and read back by :mod:`harness.scoring.child_run`
(isolated, limited, logs capped). A crash, timeout, NaN output or wrong number of
rows marks the submission ``failed`` with the reason; scoring goes on. Finished
results go to the SQLite store in one transaction each; a rerun skips what is there.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import numpy as np

from .. import __version__
from ..chunks import spans
from ..errors import UsageError, suggest
from ..submission import SUBMISSION_FILE, content_hash
from ..toml_schema import Problem
from ..sandbox.choice import choose_isolation
from ..sandbox.limits import default_limits
from .adaptive import AdaptiveCategory, adaptive_categories, exported_model, read_adaptive_outcome, run_both_phases
from .child_run import Entry, Job, RunSettings, open_predictions, read_entry
from .report import MAX_IMAGES, report_details
from .split import HiddenSplit, open_split
from .stats import pack_bits, score_interval, seed_from, wilson_interval
from .store import ResultStore, ScoreRecord, result_key

DEFAULT_TIMEOUT = 3600.0


def score_metrics(top1: np.ndarray, split: HiddenSplit, *, top5_clean: np.ndarray | None = None,
                  unscored: Mapping[str, str] = {}, seed: int = 0) -> tuple[dict[str, dict[str, Any]],
                                                                         dict[str, dict[str, str]]]:
    """(metrics, correct) per partition from per-image top-1 correctness ``top1`` (split order; for adaptive
    images the organiser passes robust correctness). Metrics: clean top-1 (and top-5 from ``top5_clean``, per
    image), ``top1_<category>`` with its Wilson interval ``<category>_ci_low``/``_ci_high``, and the score (the
    mean of the category accuracies) with its stratified bootstrap interval ``score_ci_low``/``_ci_high``
    (seeded by ``seed`` and the partition: :mod:`harness.scoring.stats`). A category of ``unscored``
    ({category: reason}) could not be measured: it counts 0 in the score, its reason is kept in
    ``values["unscored"]``. ``correct``: {partition: {category: packed per-image correctness}} (unscored: all
    wrong, as the score counts them), for paired tests between stored records."""
    top1 = np.asarray(top1, dtype=bool).reshape(-1)
    if len(top1) != len(split.ids):
        raise ValueError(f"top-1 correctness has {len(top1)} values, expected {len(split.ids)} (one per image)")
    categories = list(split.summary.get("categories") or dict.fromkeys(split.categories))  # recipe order
    category_of, code = text_codes(split.categories)
    metrics: dict[str, dict[str, Any]] = {}
    correct: dict[str, dict[str, str]] = {}
    for number, (partition, mask) in enumerate((("public", split.public), ("private", ~split.public))):
        values: dict[str, Any] = {}
        clean = mask & (category_of == code.get("clean", -1))
        if clean.any():
            values["clean_top1"] = float(top1[clean].mean())
            if top5_clean is not None:
                values["clean_top5"] = float(np.asarray(top5_clean, dtype=bool).reshape(-1)[clean].mean())
        counts, lost, packed = [], {}, {}
        for category in categories:
            chosen = mask & (category_of == code.get(category, -1))
            if not chosen.any():
                continue
            hits = top1[chosen] & (category not in unscored)
            packed[category] = pack_bits(hits)
            values[f"top1_{category}"] = float(hits.mean())
            if category in unscored:
                lost[category] = str(unscored[category])
                continue
            counts.append((int(hits.sum()), len(hits)))
            values[f"{category}_ci_low"], values[f"{category}_ci_high"] = wilson_interval(*counts[-1])
        values["score"] = float(np.mean([values[f"top1_{c}"] for c in packed])) if packed else 0.0
        if packed:
            values["score_ci_low"], values["score_ci_high"] = score_interval(counts, len(lost), seed=seed + number)
        if lost:
            values["unscored"] = lost
        metrics[partition], correct[partition] = values, packed
    return metrics, correct


def breakdown(top1: np.ndarray, split: HiddenSplit) -> dict[str, dict[str, list[int]]]:
    """{partition: {perturbation tag: [correct, total]}} from per-image correctness (split order; adaptive images
    robust), tags in first-seen order: what the site's per-perturbation pictures draw (:func:`split.parse_tag`)."""
    top1 = np.asarray(top1, dtype=bool).reshape(-1)
    tags, code = text_codes(split.perturbations or ["clean"] * len(top1))
    names = list(code)
    found: dict[str, dict[str, list[int]]] = {}
    for partition, mask in (("public", split.public), ("private", ~split.public)):
        counts: dict[str, list[int]] = {}
        present, first = np.unique(tags[mask], return_index=True)
        for number in present[np.argsort(first)]:  # first-seen order
            chosen = mask & (tags == number)
            counts[names[number]] = [int(top1[chosen].sum()), int(chosen.sum())]
        found[partition] = counts
    return found


def text_codes(values: list[str]) -> tuple[np.ndarray, dict[str, int]]:
    """(int32 code per value, {value: code} in first-seen order): per-image texts compared as small numbers
    (a large split's tags as a numpy text array would take tens of bytes per image)."""
    code: dict[str, int] = {}
    codes = np.fromiter((code.setdefault(v, len(code)) for v in values), dtype=np.int32, count=len(values))
    return codes, code


#: the longest submission.toml a record keeps as its spec (characters)
SPEC_LIMIT = 65_536


def submission_spec(entry: Entry) -> str:
    """``entry``'s submission.toml as submitted (at most ``SPEC_LIMIT`` characters; "" when unreadable)."""
    try:
        return (entry.root / SUBMISSION_FILE).read_text(encoding="utf-8", errors="replace")[:SPEC_LIMIT]
    except OSError:
        return ""


def correctness(logits: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """Per image: is its label among the ``k`` highest logits (a memory map is read a chunk at a time)."""
    labels = np.asarray(labels).reshape(-1)
    if k >= logits.shape[1]:
        return np.ones(len(labels), dtype=bool)
    found = np.empty(len(labels), dtype=bool)
    for part in spans(len(labels)):
        top = np.argpartition(-np.asarray(logits[part], dtype=np.float32), k - 1, axis=1)[:, :k]
        found[part] = (top == labels[part].reshape(-1, 1)).any(axis=1)
    return found


def predicted_classes(logits: np.ndarray) -> np.ndarray:
    """Per image: the class of its highest logit (a memory map is read a chunk at a time)."""
    found = np.empty(len(logits), dtype=np.int64)
    for part in spans(len(logits)):
        found[part] = np.asarray(logits[part], dtype=np.float32).argmax(axis=1)
    return found


#: child 1's and the export's clean predictions of an adaptive category may differ on this share of its images
#: (float noise near a tie) before the category is flagged ``export-mismatch``
EXPORT_MISMATCH_SHARE = 0.02
EXPORT_MISMATCH = "export-mismatch"


def adaptive_results(top1: np.ndarray, logits: np.ndarray, split: HiddenSplit, categories: list[AdaptiveCategory],
                     scratch: Path, flags: list[str], details: dict[str, Any]) -> dict[str, str]:
    """Put each adaptive category's robust correctness into ``top1`` (in place: clean and adversarial predictions
    of the exported model both equal the label), its flags (``"<category>: <flag>"``) into ``flags`` and how it
    was obtained into ``details["adaptive"]``; return {category: reason} of those that could not be measured.

    A category whose export predicts the clean images otherwise than child 1 did (more than
    ``EXPORT_MISMATCH_SHARE`` of them) is flagged ``export-mismatch``: the model attacked is not the one scored."""
    if not categories:
        return {}
    missing = "the adaptive phase left no result for it"
    try:
        outcome = read_adaptive_outcome(scratch).categories
    except UsageError as exc:
        outcome, missing = {}, f"the adaptive phase left no outcome ({exc.message})"
    unscored, record = {}, {}
    predicted = predicted_classes(logits)
    for category in categories:
        result = outcome.get(category.name)
        labels = split.labels[category.indices]
        if result is None:
            unscored[category.name] = missing
            top1[category.indices] = False
            continue
        top1[category.indices] = result.robust_correct(labels)
        record[category.name] = {"status": result.status, "reason": result.reason, **result.details}
        if result.status != "ok":
            unscored[category.name] = result.reason
            continue
        found = list(result.flags)
        differ = int((result.clean_logits.argmax(axis=1) != predicted[category.indices]).sum())
        record[category.name]["export_disagreements"] = differ
        if differ > EXPORT_MISMATCH_SHARE * len(labels):
            found.append(EXPORT_MISMATCH)
        flags += [f"{category.name}: {flag}" for flag in found]
    details["adaptive"] = record
    return unscored


EXECUTORS = ("local", "ray")


def invalid_reason(entry: Entry, profile: str | None) -> str:
    """The first problem ``harness submission validate`` finds without importing the submission's code, as one
    line ("" when none). A submission with plugin modules of its own gets the TOML-only checks; the plugin
    names its modules register are checked by its child."""
    from ..submission import read_toml, submission_file, toml_problems, validate_submission

    try:
        data = read_toml(submission_file(entry.root))
    except UsageError as exc:
        return exc.message.split(": ", 1)[-1]  # the problem without the organiser's path
    if data.get("plugins"):  # its own modules (what needs_sandbox asks, on the TOML already read)
        problems = toml_problems(data, entry.root)
    else:
        problems = validate_submission(entry.root)
    profiles = data.get("profiles")
    profiles = profiles if isinstance(profiles, dict) else {}
    if profile is not None and profile not in profiles:
        problems.append(Problem("profiles", f"no profile '{profile}'.{suggest(profile, profiles)} "
                                            f"Profiles: {', '.join(profiles) or 'none'}"))
    if not problems:
        return ""
    more = f" (and {len(problems) - 1} more: run harness submission validate)" if len(problems) > 1 else ""
    return f"{problems[0]}{more}"


def local_runs(jobs: list[Job], split: HiddenSplit, settings: RunSettings, categories: list[AdaptiveCategory],
               event: Callable[[str, Entry, str], None]) -> Iterator[tuple[Job, str, str, str]]:
    """The local executor: one submission after the other on this machine (child 1, exporting its model when the
    split has adaptive categories or an attack track, then the adaptive phase's children); yields (job, status,
    reason, isolation)."""
    isolation = choose_isolation(settings.sandbox)
    limits = default_limits(settings.timeout, settings.threads, settings.memory_gb)
    for job in jobs:
        event("running", job.entry, "")
        status, reason = run_both_phases(job.entry, settings.profile, split.images_path, job.scratch,
                                         settings.timeout, settings.threads, isolation, limits, settings.withhold,
                                         categories, num_classes=int(split.summary["num_classes"]),
                                         export=split.attack_track is not None, explain=settings.explain)
        yield job, status, reason, isolation.kind


def score_submissions(
    entries: list[Entry],
    split_dir: str | Path,
    db: str | Path,
    leaderboard: str | Path | None,
    *,
    profile: str | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    work_dir: str | Path = "runs/score",
    threads: int | None = None,
    skip: dict[str, str] | None = None,
    retry_failed: bool = False,
    sandbox: str = "auto",
    memory_gb: float | None = None,
    on_event: Callable[[str, Entry, str], None] | None = None,
    executor: str = "local",
    ray_options: Any = None,
    progress: bool = True,
    explain: int = 0,
) -> list[ScoreRecord]:
    """Score ``entries`` on the split (verified first); return every record of this split.

    ``retry_failed`` scores again the submissions whose stored result is a failure.
    ``skip`` maps submission names to a reason (e.g. needs a GPU): recorded nowhere,
    only reported, so they are scored once the hardware allows. ``sandbox`` is auto (the first of
    bwrap, ns, landlock that works here, else a UsageError), one of those (a UsageError when it cannot
    run) or none (no isolation; each record says how it was run); ``memory_gb`` caps each child's
    address space (default: the machine's memory without a GPU, none with one). ``executor``
    "local" runs the children here one after the other; "ray" runs them as Ray tasks
    (``ray_options``: a :class:`harness.scoring.ray_executor.RayOptions`). ``on_event(kind,
    entry, detail)`` reports "cached", "skipped", "invalid", "queued" (ray), "running", "scored" and
    "failed". ``progress``: a bar on a terminal, else a line per submission with elapsed time
    (:mod:`harness.progress`). ``explain`` N > 0: each child also reports on N validation images, which the
    organiser checks and draws into ``work_dir/reports/<name>-<key12>/`` (:mod:`harness.scoring.report`); a
    scored record's details gain ``history`` and ``report``.

    Attack submissions (``track = "attack"``) are not trained: when the split has an attack track they and the
    recipe's baselines are run after the defenses (:mod:`harness.scoring.attack_track`, always on this
    machine), every scored defense classifies their images, and the attack leaderboard is written next to
    ``leaderboard`` (:func:`attack_leaderboard_path`); the defense leaderboard gains the ``attacks`` category.
    Without an attack track they are reported "skipped".
    """
    from ..progress import stage

    if executor not in EXECUTORS:
        raise UsageError(f"--executor '{executor}': expected one of {', '.join(EXECUTORS)}")
    split = open_split(split_dir)
    if executor == "local" or split.attack_track is not None:  # the attack track runs here, whatever the executor
        choose_isolation(sandbox)  # an isolation that cannot run is an error before anything starts
    num_classes = int(split.summary["num_classes"])
    event = on_event or (lambda kind, entry, detail: None)
    profile_name = profile or "base"
    work_dir = Path(work_dir)
    if not 0 <= explain <= MAX_IMAGES:
        raise UsageError(f"--explain {explain}: expected 0 to {MAX_IMAGES} images")
    settings = RunSettings(profile, timeout, threads, sandbox, memory_gb,
                           (split.summary.get("dataset"), split.summary.get("source")), explain)
    categories = adaptive_categories(split)
    with ResultStore(db) as store, stage("score", enabled=progress) as report:
        jobs = []
        attack_entries = [entry for entry in entries if entry.track == "attack"]
        for entry in attack_entries if split.attack_track is None else ():
            event("skipped", entry, "an attack submission: the split has no attack track")
        for entry in entries:
            if entry.track == "attack":
                continue
            key = result_key(entry.content_hash, split.split_hash, __version__, profile_name)
            if retry_failed:
                store.forget_failure(key)
            if store.has(key):
                event("cached", entry, "already scored: kept")
            elif skip and entry.name in skip:
                event("skipped", entry, skip[entry.name])
            elif reason := invalid_reason(entry, profile):
                store.add(_record(entry, split, profile_name, "invalid", reason))
                event("invalid", entry, reason)
            else:
                jobs.append(Job(entry, key, work_dir / f"{entry.name}-{key[:12]}"))
        if executor == "ray":
            from .ray_executor import ray_runs

            runs = ray_runs(jobs, split, settings, categories, ray_options, event)
        else:
            runs = local_runs(jobs, split, settings, categories, event)
        report.bar("scoring", len(jobs))
        report.line(f"{len(jobs)} to run, {len(entries) - len(attack_entries) - len(jobs)} cached, skipped or "
                    "invalid")
        for job, status, reason, isolation in runs:
            entry = job.entry
            metrics: dict[str, Any] = {}
            timings: dict[str, Any] = {}
            correct: dict[str, Any] = {}
            flags: list[str] = []
            details: dict[str, Any] = {"isolation": isolation, "spec": submission_spec(entry)}
            if status == "ok":
                try:
                    logits = open_predictions(job.scratch / "work" / "predictions.npy", len(split.ids), num_classes)
                    timings = json.loads((job.scratch / "work" / "result.json").read_text())
                    top1 = correctness(logits, split.labels, 1)
                    unscored = adaptive_results(top1, logits, split, categories, job.scratch, flags, details)
                    seed = seed_from(split.split_hash)
                    metrics, correct = score_metrics(top1, split, top5_clean=correctness(logits, split.labels, 5),
                                                     unscored=unscored, seed=seed)
                    details.update(bootstrap_seed=seed, export=timings.get("export"),
                                   breakdown=breakdown(top1, split))
                    export_dir, _ = exported_model(job.scratch)
                    if export_dir is not None:  # where the attack track finds it
                        details["export_dir"] = str(export_dir.resolve())
                    status = "scored"
                except (UsageError, ValueError, OSError) as exc:
                    status, reason = "failed", getattr(exc, "message", str(exc))
            if status == "scored" and explain > 0:  # never fails the record: a bad report is recorded as failed
                details.update(report_details(job.scratch / "work", work_dir / "reports" / job.scratch.name,
                                              timings.get("report"), name=entry.name, num_classes=num_classes,
                                              images=explain))
            store.add(_record(entry, split, profile_name, status, reason, metrics, timings, isolation, correct,
                              flags, details))
            report.done(f"{entry.name} {status}" + (f" ({reason})" if reason else ""))
            event(status, entry, reason)
            if leaderboard is not None:
                write_boards(store, split.split_hash, leaderboard)
        if split.attack_track is not None:
            from .attack_track import run_attack_track

            report.line(f"attack track: {len(attack_entries)} attack submissions, "
                        f"{len(split.attack_track.baselines)} baselines ({split.attack_track.access} access)")
            run_attack_track(split, attack_entries, store, profile=profile_name, settings=settings,
                             isolation=choose_isolation(sandbox), work_dir=work_dir, retry_failed=retry_failed,
                             invalid=lambda entry: invalid_reason(entry, profile), event=event)
        records = store.records(split.split_hash)
        if leaderboard is not None:
            write_boards(store, split.split_hash, leaderboard)
    return records


def attack_leaderboard_path(leaderboard: str | Path) -> Path:
    """Where the attack leaderboard goes: beside the defense leaderboard, ``<name>-attacks.csv``."""
    leaderboard = Path(leaderboard)
    return leaderboard.with_name(f"{leaderboard.stem}-attacks{leaderboard.suffix or '.csv'}")


def write_boards(store: ResultStore, split_hash: str, leaderboard: str | Path) -> None:
    """The defense leaderboard (with the ``attacks`` category when the split has attack results) and, when there
    are attack runs, the attack leaderboard beside it; each written atomically."""
    from .attack_board import with_attack_category, write_attack_leaderboard
    from .leaderboard import write_leaderboard

    matrix = store.matrix_records(split_hash)
    write_leaderboard(with_attack_category(store.records(split_hash), matrix), leaderboard)
    attacks = store.attack_records(split_hash)
    if attacks:
        write_attack_leaderboard(attacks, matrix, attack_leaderboard_path(leaderboard))


def _record(entry: Entry, split: HiddenSplit, profile: str, status: str, reason: str,
            metrics: dict[str, Any] | None = None, timings: dict[str, Any] | None = None,
            isolation: str = "", correct: dict[str, Any] | None = None, flags: list[str] | None = None,
            details: dict[str, Any] | None = None) -> ScoreRecord:
    """The store record of ``entry``'s result on ``split``."""
    timings = timings or {}
    return ScoreRecord(
        submission=entry.name, team=entry.team, framework=entry.framework, profile=profile,
        content_hash=entry.content_hash, split_hash=split.split_hash, harness_version=__version__,
        status=status, reason=reason, metrics=metrics or {},
        train_seconds=timings.get("train_seconds"), predict_seconds=timings.get("predict_seconds"),
        isolation=isolation, correct=correct or {}, flags=list(flags or []), details=dict(details or {}),
    )


def entries_from_paths(paths: list[str | Path], artifacts: dict[str, Path] | None = None,
                       unpack_to: str | Path = "runs/score/archives") -> list[Entry]:
    """Entries for submission folders (or folders of them) and ``.tar.gz`` archives of ``harness submission
    pack`` (unpacked safely into ``unpack_to`` first); ``artifacts`` maps names to trained models."""
    from ..pack import expand_archives
    from ..submission import find_submissions

    artifacts = dict(artifacts or {})
    entries = []
    for folder in find_submissions(expand_archives(list(paths), unpack_to)):
        try:
            entry = read_entry(folder)
        except UsageError:  # unreadable TOML: named after its folder, recorded invalid by score_submissions
            entry = Entry(root=folder.resolve(), name=folder.name, team="?", framework="?",
                          content_hash=content_hash(folder))
        if entry.name in artifacts:
            entry = read_entry(folder, artifacts.pop(entry.name).resolve())
        entries.append(entry)
    names = [e.name for e in entries]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise UsageError(f"two submissions are called '{duplicates[0]}' ({SUBMISSION_FILE} name field)")
    if artifacts:
        raise UsageError(f"--artifact names unknown submission '{next(iter(artifacts))}'")
    return entries
