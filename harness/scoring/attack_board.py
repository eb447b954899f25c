"""The attack track's leaderboards: attacks ranked by how often they fool the defenses, and the defenses'
``attacks`` category (their worst case over every scored attack).

An attack's success against one defense, per partition, is ``fooled / clean_correct``: of the attack-track
images the defense gets right when clean, the share whose attacked version it gets wrong (0 when it gets none
right: noted in the row's reason). The attack's score is the mean of its success over the defenses with a
scored matrix row; its 95% interval is a percentile bootstrap over the attack-track images (one draw of
images shared by every attack and defense, seeded from the split hash); attacks the sign-flip test over images
does not tell apart share a rank (``=k``, :mod:`harness.scoring.stats`). A white-box attack has one run per
defense: its row combines them. Failed and invalid attacks follow, unranked, with their reason.

:func:`with_attack_category` adds the ``attacks`` category to the defense records the defense leaderboard
shows: an image counts right iff the defense gets it right clean and on every scored attack's version of it.
docs/competition.md ("The attack track") states each rule.
"""

from __future__ import annotations

import copy
import csv
import io
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterable

import numpy as np

from ..atomic import write_text
from .leaderboard import (PARTITIONS, SCORE_CI, _percent, board_table, first_fitting, interval_cell,
                          short_headers)
from .split import ATTACKS_CATEGORY
from .stats import (ALPHA, bootstrap_weights, pack_bits, score_interval, seed_from, shared_ranks, sign_flip_test,
                    unpack_bits, wilson_interval)
from .store import AttackRecord, MatrixRecord, ScoreRecord, latest_by

#: the defense leaderboard's category of the attack track
CATEGORY = ATTACKS_CATEGORY
FRONT = ["rank", "attack", "team", "framework", "kind", "score", "score_ci_low", "score_ci_high", "defenses"]
BACK = ["clipped", "partition", "status", "reason", "isolation", "split_hash", "harness_version"]
#: a defense's column: ``vs_<defense>``
VS = "vs_"


def latest_attacks(attacks: Iterable[AttackRecord]) -> list[AttackRecord]:
    """Each attack's latest run per split and attacked defense, in the given order."""
    return latest_by(attacks, lambda r: (r.split_hash, r.attack, r.defense))


def latest_matrix(matrix: Iterable[MatrixRecord]) -> list[MatrixRecord]:
    """Each (attack, defense) cell's latest row per split, in the given order."""
    return latest_by(matrix, lambda r: (r.split_hash, r.attack, r.defense))


def _bits(row: MatrixRecord, partition: str) -> tuple[np.ndarray, np.ndarray] | None:
    """(clean, adversarial) per-image correctness of a scored row in ``partition``; None when not stored."""
    try:
        packed = row.correct[partition]
        clean, adversarial = unpack_bits(packed["clean"]), unpack_bits(packed["adversarial"])
    except (AttributeError, KeyError, TypeError, ValueError):
        return None
    return (clean, adversarial) if len(clean) == len(adversarial) else None


@dataclass
class AttackScore:
    """One attack in one partition: success per defense, the score, its interval and per-image shares."""

    name: str
    records: list[AttackRecord]
    success: dict[str, float] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    score: float = 0.0
    interval: tuple[float, float] | None = None
    #: per image: its share of the score (they sum to it); None when some row lacks per-image bits
    shares: np.ndarray | None = None

    @property
    def status(self) -> str:
        return "ok" if any(r.status == "ok" for r in self.records) else self.records[-1].status

    @property
    def ranked(self) -> bool:
        return self.status == "ok" and bool(self.success)


def attack_scores(attacks: list[AttackRecord], matrix: list[MatrixRecord], partition: str) -> list[AttackScore]:
    """Every attack's :class:`AttackScore` in ``partition`` (its latest runs; matrix rows of those runs)."""
    attacks = latest_attacks(attacks)
    keys = {r.key for r in attacks}
    rows = [m for m in latest_matrix(matrix) if m.attack_key in keys]
    scores: dict[str, AttackScore] = {}
    for record in attacks:
        scores.setdefault(record.attack, AttackScore(record.attack, [])).records.append(record)
    counts = {len(b[0]) for m in rows if m.status == "scored" and (b := _bits(m, partition)) is not None}
    split_hash = attacks[0].split_hash if attacks else ""
    size = counts.pop() if len(counts) == 1 else 0  # every row on the same images
    weights = bootstrap_weights(size, seed=seed_from(f"{split_hash}:{partition}:attacks")) if size else None
    for score in scores.values():
        for record in score.records:
            if record.status != "ok" and record.defense:
                score.failed[record.defense] = f"{record.status}: {record.reason}"
        mine = [m for m in rows if m.attack == score.name]
        fooled, clean = [], []
        for row in sorted(mine, key=lambda m: m.defense):
            if row.status != "scored":
                score.failed[row.defense] = f"{row.status}: {row.reason}"
                continue
            values = row.metrics.get(partition) or {}
            score.success[row.defense] = float(values.get("success", 0.0))
            if not values.get("clean_correct"):
                score.notes.append(f"{row.defense} gets no image right when clean (counts 0)")
            bits = _bits(row, partition)
            if bits is not None:
                clean.append(bits[0])
                fooled.append(bits[0] & ~bits[1])
        if not score.success:
            continue
        score.score = float(np.mean(list(score.success.values())))
        if len(fooled) == len(score.success) and len({len(f) for f in fooled}) == 1:
            fooled_m, clean_m = np.asarray(fooled, dtype=np.float64), np.asarray(clean, dtype=np.float64)
            totals = clean_m.sum(axis=1, keepdims=True)
            score.shares = (np.divide(fooled_m, totals, out=np.zeros_like(fooled_m), where=totals > 0).sum(axis=0)
                            / len(fooled))
            if weights is not None and weights.shape[1] == fooled_m.shape[1]:
                hit, right = weights @ fooled_m.T, weights @ clean_m.T  # replicates x defenses
                replicates = np.divide(hit, right, out=np.zeros_like(hit, dtype=np.float64), where=right > 0)
                low, high = np.percentile(replicates.mean(axis=1), [2.5, 97.5])
                score.interval = (float(min(low, score.score)), float(max(high, score.score)))
    return list(scores.values())


def attack_columns(matrix: Iterable[MatrixRecord]) -> list[str]:
    """The attack CSV's columns: ``vs_<defense>`` for each defense of the matrix (sorted) between the fixed ones."""
    return FRONT + [f"{VS}{d}" for d in sorted({m.defense for m in matrix})] + BACK


def attack_leaderboard_rows(attacks: list[AttackRecord], matrix: list[MatrixRecord],
                            partition: str) -> list[dict[str, object]]:
    """Rows of one partition, ranked (shared ranks: 1, =2, =2, 4); attacks that failed, are invalid or fooled no
    scored defense follow, unranked, with their reason. ``vs_<defense>``: the success against it, or "failed"."""
    scores = attack_scores(attacks, matrix, partition)
    ranked = sorted((s for s in scores if s.ranked), key=lambda s: (-s.score, s.name))
    rest = sorted((s for s in scores if not s.ranked), key=lambda s: s.name)
    seed = seed_from(f"{ranked[0].records[0].split_hash}:{partition}:attacks") if ranked else 0

    def differ(i: int, j: int) -> bool:
        a, b = ranked[i].shares, ranked[j].shares
        if a is not None and b is not None and a.shape == b.shape:
            return sign_flip_test(a - b, seed=seed) < ALPHA
        return ranked[i].score != ranked[j].score

    rows = []
    for score, rank in zip(ranked + rest, shared_ranks(len(ranked), differ) + [""] * len(rest)):
        last = score.records[-1]
        reasons = [f"vs {d}: {why}" for d, why in sorted(score.failed.items())] + score.notes
        if score.status != "ok":
            reasons = [r.reason for r in score.records if r.status != "ok" and not r.defense][:1] or reasons
        elif not score.success:
            reasons = ["no defense scored against it"] + reasons
        cells: dict[str, object] = {f"{VS}{d}": round(v, 4) for d, v in score.success.items()}
        cells.update({f"{VS}{d}": "failed" for d in score.failed})
        ok = score.ranked
        rows.append({
            "rank": rank, "attack": score.name, "team": last.team, "framework": last.framework, "kind": last.kind,
            "score": round(score.score, 4) if ok else "",
            "score_ci_low": round(score.interval[0], 4) if ok and score.interval else "",
            "score_ci_high": round(score.interval[1], 4) if ok and score.interval else "",
            "defenses": len(score.success), **cells,
            "clipped": sum(int((r.clipped or {}).get("clipped", 0)) for r in score.records) if ok else "",
            "partition": partition, "status": score.status, "reason": "; ".join(reasons),
            "isolation": ";".join(sorted({r.isolation for r in score.records if r.isolation})),
            "split_hash": last.split_hash[:16], "harness_version": last.harness_version,
        })
    return rows


def write_attack_leaderboard(attacks: list[AttackRecord], matrix: list[MatrixRecord], path: str | Path) -> Path:
    """Both partitions' attack rows as one CSV, replaced atomically."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=attack_columns(matrix), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for partition in PARTITIONS:
        writer.writerows(attack_leaderboard_rows(attacks, matrix, partition))
    write_text(path, buffer.getvalue())
    return Path(path)


#: columns the terminal table leaves to the CSV
TERMINAL_HIDDEN = ("team", "framework", "score_ci_low", "score_ci_high", "defenses", "partition", "status", "reason",
                   "isolation", "split_hash", "harness_version")


def render_attack_leaderboard(columns: list[str], rows: list[dict[str, object]], title: str, width: int = 80):
    """A rich Table of attack rows that fits ``width`` columns: success and score in percent, the score's 95%
    interval, one column per defense (headers abbreviated with a legend when needed; left to the CSV when even
    that does not fit, after the kind and the interval), failed and invalid rows in red with rank "-"."""
    shown = [c for c in columns if c not in TERMINAL_HIDDEN]
    at = shown.index("score") + 1
    with_ci = shown[:at] + [SCORE_CI] + shown[at:]
    headers = {c: {SCORE_CI: "95% CI"}.get(c, c.removeprefix(VS)) for c in with_ci}
    short = short_headers([headers[c] for c in with_ci if c.startswith(VS)] + ["clipped"])
    legend = "; ".join(f"{a} = {n}" for n, a in short.items())
    abbreviated = {c: short.get(h, h) for c, h in headers.items()}
    no_vs = [c for c in with_ci if not c.startswith(VS)]
    no_kind = [c for c in with_ci if c != "kind"]
    return first_fitting((_attack_table(chosen, names, rows, title, note) for chosen, names, note in (
        (with_ci, headers, ""), (with_ci, abbreviated, legend), (no_kind, abbreviated, f"{legend}; kind in the CSV"),
        ([c for c in no_kind if c != SCORE_CI], abbreviated, f"{legend}; kind in the CSV"),
        (no_vs, headers, "success per defense in the CSV"))), width)


def _attack_table(shown: list[str], headers: dict[str, str], rows: list[dict[str, object]], title: str,
                  note: str):
    caption = ("success (%) per defense: share of the images it gets right when clean that the attack's image "
               "fools; score = the mean over defenses")
    caption += "; 95% CI: the score's interval" if SCORE_CI in shown else "; 95% intervals in the CSV"
    if any(str(row.get("rank", "")).startswith("=") for row in rows):
        caption += "; =k: rank shared (no significant difference)"
    caption += "; clipped: images moved into the budget" + (f"; {note}" if note else "")
    table = board_table(title, caption, shown, headers, ("attack", "kind"))
    for row in rows:
        cells = []
        for column in shown:
            value = row.get(column, "")
            if column == SCORE_CI:
                value = interval_cell(row)
            elif value not in ("", None) and (column.startswith(VS) or column == "score"):
                value = _percent(value) or value
            elif column == "rank" and not row.get("rank"):
                value = "-"
            cells.append(str(value))
        table.add_row(*cells, style=None if row.get("rank") else "red")
    return table


def attack_failure_lines(rows: list[dict[str, object]]) -> list[str]:
    """"ATTACK: STATUS: REASON" for each unranked row."""
    return [f"{row['attack']}: {row['status']}: {row['reason']}" for row in rows if not row.get("rank")]


def attack_note_lines(rows: list[dict[str, object]]) -> list[str]:
    """"ATTACK: REASON" for each ranked row with a note (a defense it failed against, one right on no clean
    image)."""
    return [f"{row['attack']}: {row['reason']}" for row in rows if row.get("rank") and row.get("reason")]


# --------------------------------------------------------------------------- the defenses' attacks category


def with_attack_category(records: list[ScoreRecord], matrix: list[MatrixRecord]) -> list[ScoreRecord]:
    """Copies of the scored defense ``records`` whose metrics gain the category ``attacks`` per partition: an
    attack-track image counts right iff the defense gets it right clean and on every scored attack's version
    of it (the worst case over every submitted and baseline attack). ``top1_attacks`` with its Wilson interval,
    ``correct[partition]["attacks"]``, and the score and its interval recomputed over every category, as the
    scorer computes them. A defense without a scored matrix row (while the split has some rows) gets
    ``unscored["attacks"]``: the reasons of its failed rows (it counts 0). Records of a split without matrix
    rows, records not scored and records without per-image correctness (older stores) are returned unchanged."""
    rows = latest_matrix(matrix)
    result = []
    for record in records:
        split_rows = [m for m in rows if m.split_hash == record.split_hash]
        if not split_rows or record.status != "scored" or not record.correct:
            result.append(record)
            continue
        mine = [m for m in split_rows if m.defense_key == record.key]
        scored = [m for m in mine if m.status == "scored"]
        reason = None if scored else ("; ".join(dict.fromkeys(f"{m.attack}: {m.reason}" for m in mine))
                                      or "no attack was scored against it")
        metrics, correct = copy.deepcopy(record.metrics), copy.deepcopy(record.correct)
        seed = int(record.details.get("bootstrap_seed", seed_from(record.split_hash)))
        for number, partition in enumerate(PARTITIONS):
            if partition not in metrics or partition not in correct:
                continue
            count = next((len(b[0]) for m in split_rows if (b := _bits(m, partition)) is not None), 0)
            if not count:
                continue
            bits = np.zeros(count, dtype=bool)
            if scored:
                pairs = [_bits(m, partition) for m in scored]
                if any(p is None or len(p[0]) != count for p in pairs):
                    continue
                bits = pairs[0][0] & np.logical_and.reduce([p[1] for p in pairs])
            metrics[partition] = _recomputed(metrics[partition], correct[partition], bits, reason, seed + number)
        result.append(replace(record, metrics=metrics, correct=correct))
    return result


def _recomputed(values: dict, packed: dict[str, str], bits: np.ndarray, reason: str | None, seed: int) -> dict:
    """``values`` with the attacks category added (``packed`` gains its bits) and the score recomputed."""
    unscored = dict(values.get("unscored") or {})
    unscored.pop(CATEGORY, None)
    if reason is not None:
        unscored[CATEGORY] = reason
    packed[CATEGORY] = pack_bits(bits)
    kept = {k: v for k, v in values.items() if k not in ("score", "score_ci_low", "score_ci_high", "unscored")
            and k not in (f"top1_{CATEGORY}", f"{CATEGORY}_ci_low", f"{CATEGORY}_ci_high")}
    kept[f"top1_{CATEGORY}"] = float(bits.mean())
    if reason is None:
        kept[f"{CATEGORY}_ci_low"], kept[f"{CATEGORY}_ci_high"] = wilson_interval(int(bits.sum()), len(bits))
    accuracies, counts = [], []
    for category, text in packed.items():
        hits = unpack_bits(text)
        accuracies.append(float(hits.mean()) if len(hits) else 0.0)
        if category not in unscored and len(hits):
            counts.append((int(hits.sum()), len(hits)))
    kept["score"] = float(np.mean(accuracies))
    kept["score_ci_low"], kept["score_ci_high"] = score_interval(counts, len(unscored), seed=seed)
    if unscored:
        kept["unscored"] = unscored
    return kept
