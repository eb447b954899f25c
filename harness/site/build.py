"""``build_site``: the static site of a results store (and its contest ledger), written atomically.

What each page shows is gathered here from the store (``results``, ``attack_runs``, ``matrix``) and, for a
contest store (:func:`harness.contest.ledger.is_contest_store`), the ledger; :mod:`.pages` renders it. Only the
partition shown is ever read into a page: a public build holds no private number.
"""

from __future__ import annotations

import math
import sqlite3
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..scoring.attack_board import attack_leaderboard_rows
from ..scoring.leaderboard import category_columns, flag_lines, leaderboard_rows
from ..scoring.store import AttackRecord, MatrixRecord, ResultStore, ScoreRecord, latest

#: the marker file of a built site: ``build_site`` replaces only folders that hold it (or empty ones)
MARKER = ".harness-site"


@dataclass
class SiteSummary:
    """What a build wrote."""

    out: Path
    pages: int
    bytes: int
    seconds: float
    #: the partition the site shows: "public" or "private"
    partition: str
    contest: bool = False


@dataclass
class StoreView:
    """Everything a build reads from the store file, for one split."""

    records: list[ScoreRecord]
    attacks: list[AttackRecord]
    matrix: list[MatrixRecord]
    split_hash: str | None
    contest: bool = False
    entries: list[Any] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)


def read_store(db: str | Path, split_hash: str | None = None) -> StoreView:
    """The records of one split (``split_hash`` or a prefix of it; default: the contest's split, else the latest
    scored) with its attack runs and matrix rows, and the ledger of a contest store."""
    from ..contest.ledger import Ledger, is_contest_store

    db = Path(db)
    if not db.is_file():
        raise UsageError(f"{db}: no such results store", hint="run: harness score ... --db FILE")
    try:
        contest = is_contest_store(db)
    except sqlite3.DatabaseError as exc:
        raise UsageError(f"{db}: not a results store ({exc})") from None
    entries, settings = [], {}
    if contest:
        with Ledger(db) as ledger:
            entries, settings = ledger.entries(), ledger.settings()
    with ResultStore(db) as store:
        chosen = None
        if split_hash:
            known = {r.split_hash for r in store.records()} | {a.split_hash for a in store.attack_records()}
            matches = sorted(h for h in known if h.startswith(split_hash))
            if len(matches) != 1:
                raise UsageError(f"--split-hash {split_hash}: " + ("matches no split of the store" if not matches
                                 else f"matches {len(matches)} splits; give more characters"))
            chosen = matches[0]
        else:
            chosen = settings.get("split_hash") if isinstance(settings.get("split_hash"), str) else None
            chosen = chosen or store.latest_split()
        if chosen is None:
            return StoreView([], [], [], None, contest, entries, settings)
        return StoreView(store.records(chosen), store.attack_records(chosen), store.matrix_records(chosen), chosen,
                         contest, entries, settings)


def deadline_seconds(value: Any) -> float | None:
    """The contest deadline from the ledger's ``deadline`` setting: UTC epoch seconds, as ``harness contest run``
    stores it (:meth:`harness.contest.spec.ContestSpec.settings`); None when absent or not a finite number."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def choose_partition(private: bool | None, settings: dict[str, Any], now: float) -> str:
    """``private`` True/False decides; None: private once the contest says ``reveal_private`` and its deadline has
    passed, else public."""
    if private is not None:
        return "private" if private else "public"
    deadline = deadline_seconds(settings.get("deadline"))
    revealed = settings.get("reveal_private") is True and deadline is not None and now >= deadline
    return "private" if revealed else "public"


def utc(seconds: Any) -> str:
    """``2026-11-30 10:04 UTC`` ("" for no time)."""
    try:
        return datetime.fromtimestamp(float(seconds), timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    except (TypeError, ValueError, OverflowError, OSError):
        return ""


def chosen_records(view: StoreView, records: list[ScoreRecord]) -> tuple[list[ScoreRecord], dict[str, Any]]:
    """The records the board ranks and {submission: its ledger entry}. A plain store: each submission's latest
    record. A contest store: per team its scored (non-baseline) entry with the best public score (ties: the
    earlier arrival), plus every scored baseline; the same entries whatever partition is shown."""
    latest_records = latest(records)
    if not view.contest:
        return latest_records, {}
    entry_of = {e.submission: e for e in view.entries if e.status == "accepted" and e.submission}
    best: dict[str, tuple[tuple, ScoreRecord]] = {}
    chosen = []
    for record in latest_records:
        if record.status != "scored":
            continue
        entry = entry_of.get(record.submission)
        if entry is not None and entry.baseline:
            chosen.append(record)
            continue
        team = entry.team if entry is not None else record.team
        public = (record.metrics.get("public") or {}).get("score")
        order = (-(float(public) if public is not None else -1.0), entry.id if entry is not None else 0,
                 record.submission)
        if team not in best or order < best[team][0]:
            best[team] = (order, record)
    chosen += [record for _, record in best.values()]
    return chosen, entry_of


def percent(value: Any) -> str:
    """A fraction as a percentage with one decimal ("93.1"); "" when it is not a finite number."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return ""
    return f"{number * 100:.1f}" if math.isfinite(number) else ""


def board(view: StoreView, records: list[ScoreRecord], partition: str, page_of: dict[str, str]) -> dict[str, Any]:
    """The defense board of ``partition`` from ``records`` (the view's, with the attacks category): columns, ranked
    rows (with links), failures, notes."""
    chosen, entry_of = chosen_records(view, records)
    rows = leaderboard_rows(chosen, partition)
    categories = [c for c in category_columns(chosen) if c != "top1_clean"]
    teams_entries: dict[str, int] = {}
    for entry in view.entries:
        if entry.status == "accepted" and not entry.baseline:
            teams_entries[entry.team] = teams_entries.get(entry.team, 0) + 1
    ranked = []
    for row in rows:
        if row["status"] != "scored":
            continue
        entry = entry_of.get(str(row["submission"]))
        cells = []
        for column in categories:
            value = row.get(column, "")
            text = percent(value)
            cells.append({"text": text or ("n/a" if value not in ("", None) else ""),
                          "title": "" if text or value in ("", None) else f"not scored (counts 0): {value}",
                          "sort": value if text else -1})
        ranked.append({
            "rank": row["rank"], "submission": row["submission"], "page": page_of.get(str(row["submission"]), ""),
            "team": entry.team if entry is not None else row["team"], "framework": row["framework"],
            "baseline": bool(entry is not None and entry.baseline),
            "entries": teams_entries.get(entry.team, 0) if entry is not None and not entry.baseline else "",
            "score": percent(row.get("score")), "score_sort": row.get("score", ""),
            "interval": (f"{percent(row.get('score_ci_low'))}–{percent(row.get('score_ci_high'))}"
                         if percent(row.get("score_ci_low")) and percent(row.get("score_ci_high")) else ""),
            "clean": percent(row.get("clean_top1")), "cells": cells,
            "flags": str(row.get("flags") or "").replace(";", "; "), "isolation": row.get("isolation", ""),
        })
    failures = []
    for record in sorted(latest(view.records), key=lambda r: (r.finished_at, r.submission)):
        if record.status == "scored":
            continue
        entry = entry_of.get(record.submission)
        failures.append({"submission": record.submission, "page": page_of.get(record.submission, ""),
                         "team": entry.team if entry is not None else record.team, "status": record.status,
                         "reason": record.reason, "finished": utc(record.finished_at)})
    return {"categories": [c.removeprefix("top1_") for c in categories], "rows": ranked, "failures": failures,
            "notes": flag_lines(rows), "shared": any(str(r["rank"]).startswith("=") for r in ranked),
            "isolations": sorted({str(r["isolation"]) for r in ranked if r["isolation"]})}


def attack_board(view: StoreView, partition: str) -> dict[str, Any] | None:
    """The attack board of ``partition`` (None when the split has no attack runs)."""
    if not view.attacks:
        return None
    rows = attack_leaderboard_rows(view.attacks, view.matrix, partition)
    defenses = sorted({m.defense for m in view.matrix})
    shown = []
    for row in rows:
        shown.append({
            "rank": row["rank"], "attack": row["attack"], "team": row["team"], "kind": row["kind"],
            "framework": row["framework"], "score": percent(row.get("score")), "score_sort": row.get("score", ""),
            "interval": (f"{percent(row.get('score_ci_low'))}–{percent(row.get('score_ci_high'))}"
                         if percent(row.get("score_ci_low")) and percent(row.get("score_ci_high")) else ""),
            "cells": [percent(row.get(f"vs_{d}")) or str(row.get(f"vs_{d}", "")) for d in defenses],
            "clipped": row.get("clipped", ""), "status": row["status"], "reason": row["reason"],
            "isolation": row.get("isolation", ""),
        })
    return {"defenses": defenses, "rows": shown, "shared": any(str(r["rank"]).startswith("=") for r in shown)}


def contest_entries(view: StoreView, records: list[ScoreRecord], page_of: dict[str, str]) -> dict[str, list]:
    """A contest's rejected entries (with reasons) and accepted ones not yet in the store."""
    stored = {r.submission for r in records} | {a.attack for a in view.attacks}  # attack entries: attack runs
    rejected, waiting = [], []
    for entry in view.entries:
        item = {"arrived": utc(entry.arrived_at), "team": entry.team, "name": entry.name,
                "inbox_path": entry.inbox_path, "reason": entry.reason, "submission": entry.submission,
                "page": page_of.get(entry.submission, "")}
        if entry.status == "rejected":
            rejected.append(item)
        elif entry.submission not in stored:
            waiting.append(item)
    return {"rejected": rejected, "waiting": waiting}


def build_site(db: str | Path, out: str | Path, *, private: bool | None = None, now: float | None = None,
               split_hash: str | None = None, specs: bool | None = None) -> SiteSummary:
    """Write the static site of the store ``db`` into ``out`` (replaced as a whole, atomically; pictures and charts
    that did not change are hard-linked from the previous build, not rewritten). ``private``: True shows the
    private partition, False the public one, None follows the contest (private once ``reveal_private`` is set and
    ``now`` (default: the clock) is past its deadline). ``split_hash`` (or a prefix): that split's results
    (default: the contest's split, else the latest scored). A folder ``out`` that is neither empty nor a site
    built here is refused (a UsageError): the build replaces the whole folder. ``specs``: show each result's
    submission.toml (None: as the contest's ``publish_specs`` setting says, shown when unset)."""
    from .pages import write_site

    started = time.perf_counter()
    out = Path(out)
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / MARKER).is_file())):
        raise UsageError(f"{out}: exists and is not a site built by harness site build (no {MARKER} file)",
                         hint="choose a new or empty folder: the build replaces the whole folder")
    now = time.time() if now is None else float(now)
    view = read_store(db, split_hash)
    partition = choose_partition(private, view.settings, now)
    if specs is None:
        specs = view.settings.get("publish_specs") is not False
    pages, size = write_site(view, out, partition, now, specs=specs)
    return SiteSummary(out, pages, size, time.perf_counter() - started, partition, view.contest)
