"""The results store: SQLite, one row per (submission content, split, harness version, profile).

A row is written in one transaction when a submission's scoring ends, so a killed
organiser leaves finished rows intact and nothing half-done; a rerun skips every key
already present. The store keeps every result (the history, :func:`latest` picks the
leaderboard's); its ``latest_results`` view holds each submission's latest row per split.

The attack track adds two tables to the same file (created on open, in older stores too):
``attack_runs`` (:class:`AttackRecord`, one per attack run: per attacked defense for white-box access) and
``matrix`` (:class:`MatrixRecord`, one per (attack run, defense): how often the attack fooled it).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

SCHEMA = """
CREATE TABLE IF NOT EXISTS results (
    key TEXT PRIMARY KEY,
    submission TEXT NOT NULL,
    team TEXT NOT NULL,
    framework TEXT NOT NULL,
    profile TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    split_hash TEXT NOT NULL,
    harness_version TEXT NOT NULL,
    status TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    metrics TEXT NOT NULL DEFAULT '{}',
    train_seconds REAL,
    predict_seconds REAL,
    finished_at REAL NOT NULL,
    isolation TEXT NOT NULL DEFAULT '',
    flags TEXT NOT NULL DEFAULT '[]',
    details TEXT NOT NULL DEFAULT '{}',
    correct TEXT NOT NULL DEFAULT '{}'
);
"""
ATTACK_SCHEMA = """
CREATE TABLE IF NOT EXISTS attack_runs (
    key TEXT PRIMARY KEY,
    attack TEXT NOT NULL,
    team TEXT NOT NULL,
    framework TEXT NOT NULL,
    kind TEXT NOT NULL,
    profile TEXT NOT NULL,
    content_hash TEXT NOT NULL,
    split_hash TEXT NOT NULL,
    harness_version TEXT NOT NULL,
    status TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    defense TEXT NOT NULL DEFAULT '',
    defense_key TEXT NOT NULL DEFAULT '',
    clipped TEXT NOT NULL DEFAULT '{}',
    details TEXT NOT NULL DEFAULT '{}',
    isolation TEXT NOT NULL DEFAULT '',
    finished_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS matrix (
    key TEXT PRIMARY KEY,
    attack TEXT NOT NULL,
    attack_kind TEXT NOT NULL,
    attack_key TEXT NOT NULL,
    defense TEXT NOT NULL,
    defense_team TEXT NOT NULL,
    defense_key TEXT NOT NULL,
    split_hash TEXT NOT NULL,
    harness_version TEXT NOT NULL,
    status TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    metrics TEXT NOT NULL DEFAULT '{}',
    correct TEXT NOT NULL DEFAULT '{}',
    details TEXT NOT NULL DEFAULT '{}',
    finished_at REAL NOT NULL
);
"""
#: each submission's latest result per split (what the leaderboard shows): sqlite3 results.sqlite
#: "SELECT submission, status, reason FROM latest_results"
VIEW = """
CREATE VIEW IF NOT EXISTS latest_results AS
SELECT * FROM results AS r WHERE NOT EXISTS (
    SELECT 1 FROM results AS later WHERE later.split_hash = r.split_hash AND later.submission = r.submission
    AND (later.finished_at > r.finished_at OR (later.finished_at = r.finished_at AND later.key > r.key)));
"""
#: a record's status: scored (metrics filled in); invalid (``harness submission validate`` found the problem in
#: the reason before any child started: unknown profile, invalid TOML, unknown field or plugin name); failed (the
#: child's own failure: "crashed: ...", "timeout: ...", unreadable, wrong-shaped or non-finite predictions)
STATUSES = ("scored", "invalid", "failed")
#: columns added since the first schema: (name, definition), added to older stores when opened
ADDED_COLUMNS = (("isolation", "TEXT NOT NULL DEFAULT ''"), ("flags", "TEXT NOT NULL DEFAULT '[]'"),
                 ("details", "TEXT NOT NULL DEFAULT '{}'"), ("correct", "TEXT NOT NULL DEFAULT '{}'"))
#: columns holding JSON
JSON_COLUMNS = ("metrics", "flags", "details", "correct")
#: an attack run's status: ok (its images were checked and classified), invalid (found wrong before it ran),
#: failed (crashed, timed out, wrong shape or count, non-finite values); a matrix row's: scored or failed
ATTACK_STATUSES = ("ok", "invalid", "failed")
MATRIX_STATUSES = ("scored", "failed")
#: the attack tables' JSON columns
ATTACK_JSON = ("clipped", "details")
MATRIX_JSON = ("metrics", "correct", "details")


def result_key(content_hash: str, split_hash: str, harness_version: str, profile: str) -> str:
    """The store key: what was scored, against what, by which harness, with which budget."""
    return hashlib.sha256(f"{content_hash}\0{split_hash}\0{harness_version}\0{profile}".encode()).hexdigest()


def attack_key(content_hash: str, split_hash: str, harness_version: str, profile: str, defense_key: str = "") -> str:
    """An attack run's key: the attack's content, the split, the harness, the budget and (white-box) the attacked
    defense's result key."""
    text = f"attack\0{content_hash}\0{split_hash}\0{harness_version}\0{profile}\0{defense_key}"
    return hashlib.sha256(text.encode()).hexdigest()


def matrix_key(attack_key: str, defense_key: str) -> str:
    """A matrix row's key: (attack run, defense result)."""
    return hashlib.sha256(f"matrix\0{attack_key}\0{defense_key}".encode()).hexdigest()


@dataclass
class ScoreRecord:
    """One finished scoring: status "scored", "invalid" or "failed" (with the reason; see ``STATUSES``)."""

    submission: str
    team: str
    framework: str
    profile: str
    content_hash: str
    split_hash: str
    harness_version: str
    status: str
    reason: str = ""
    #: {"public": {"clean_top1": .., "clean_top5": .., "top1_<category>": .., "<category>_ci_low": .., "_ci_high",
    #: "score": .., "score_ci_low": .., "score_ci_high": .., "unscored": {category: reason}}, "private": {...}}
    metrics: dict[str, Any] = field(default_factory=dict)
    train_seconds: float | None = None
    predict_seconds: float | None = None
    finished_at: float = field(default_factory=time.time)
    #: how the child was isolated: bwrap, ns, landlock or none ("" in stores older than the column)
    isolation: str = ""
    #: sanity checks that fired while it was scored (names of :data:`harness.robustness.FLAGS`)
    flags: list[str] = field(default_factory=list)
    #: how the result was obtained: isolation, attack settings, seeds, export
    details: dict[str, Any] = field(default_factory=dict)
    #: {"public": {category: packed per-image top-1 correctness}, "private": ...}: :func:`stats.pack_bits`, in
    #: split order within the partition; what the paired test compares ({} in stores older than the column)
    correct: dict[str, dict[str, str]] = field(default_factory=dict)

    @property
    def key(self) -> str:
        return result_key(self.content_hash, self.split_hash, self.harness_version, self.profile)


@dataclass
class AttackRecord:
    """One attack run of the attack track: status "ok", "invalid" or "failed" (with the reason)."""

    #: the attack submission's name or a baseline's label
    attack: str
    team: str
    framework: str
    #: "submission" or "baseline"
    kind: str
    profile: str
    content_hash: str
    split_hash: str
    harness_version: str
    status: str
    reason: str = ""
    #: white-box: the attacked defense's submission name and its ScoreRecord key; transfer: ""
    defense: str = ""
    defense_key: str = ""
    #: {"outside_budget": images, "outside_box": images, "clipped": images changed by clipping}
    clipped: dict[str, int] = field(default_factory=dict)
    #: hyperparameters, seconds, target, surrogate, access, isolation
    details: dict[str, Any] = field(default_factory=dict)
    isolation: str = ""
    finished_at: float = field(default_factory=time.time)

    @property
    def key(self) -> str:
        return attack_key(self.content_hash, self.split_hash, self.harness_version, self.profile, self.defense_key)


@dataclass
class MatrixRecord:
    """One (attack run, defense) cell: the defense's predictions on the attack's images, status "scored" or
    "failed" (with the reason)."""

    attack: str
    attack_kind: str
    attack_key: str
    defense: str
    defense_team: str
    defense_key: str
    split_hash: str
    harness_version: str
    status: str
    reason: str = ""
    #: {"public": {"count": n, "clean_correct": c, "fooled": f, "success": f / c (0.0 when c is 0)}, "private": ..}
    metrics: dict[str, Any] = field(default_factory=dict)
    #: {"public": {"clean": packed bits, "adversarial": packed bits}, "private": ...} in attack-track image order
    #: within the partition; "adversarial": the defense's prediction on the attack's image equals the label
    correct: dict[str, dict[str, str]] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    finished_at: float = field(default_factory=time.time)

    @property
    def key(self) -> str:
        return matrix_key(self.attack_key, self.defense_key)


class SQLiteFile:
    """A SQLite file as every harness store opens it (created on first use): write-ahead log, each commit on
    disk before it returns, autocommit outside ``with connection`` transactions; ``schema`` run on open."""

    def __init__(self, path: str | Path, schema: str):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._connection = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        self._connection.execute("PRAGMA journal_mode=WAL")
        self._connection.execute("PRAGMA synchronous=FULL")
        self._connection.executescript(schema)

    def close(self) -> None:
        self._connection.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class ResultStore(SQLiteFile):
    """A SQLite results database (created on first use)."""

    def __init__(self, path: str | Path):
        super().__init__(path, SCHEMA)
        present = {row[1] for row in self._connection.execute("PRAGMA table_info(results)")}
        for name, definition in ADDED_COLUMNS:
            if name not in present:
                self._connection.execute(f"ALTER TABLE results ADD COLUMN {name} {definition}")
        self._connection.executescript(VIEW)
        self._connection.executescript(ATTACK_SCHEMA)

    def has(self, key: str) -> bool:
        return self._connection.execute("SELECT 1 FROM results WHERE key = ?", (key,)).fetchone() is not None

    def add(self, record: ScoreRecord) -> bool:
        """Insert ``record`` in one transaction; False when its key was already there (never duplicated)."""
        return self._insert("results", record.key, asdict(record), JSON_COLUMNS)  # JSON keeps the category order

    def forget_failure(self, key: str) -> bool:
        """Delete the row of ``key`` if it records a failure (to score it again); True when one went."""
        with self._connection:
            cursor = self._connection.execute("DELETE FROM results WHERE key = ? AND status != 'scored'", (key,))
        return cursor.rowcount == 1

    def records(self, split_hash: str | None = None) -> list[ScoreRecord]:
        """Every record (of one split when given), oldest first."""
        return self._select("results", split_hash, JSON_COLUMNS, ScoreRecord)

    def _insert(self, table: str, key: str, data: dict[str, Any], json_columns: tuple[str, ...]) -> bool:
        for name in json_columns:
            data[name] = json.dumps(data[name])
        columns = ", ".join(["key", *data])
        placeholders = ", ".join("?" * (len(data) + 1))
        with self._connection:
            cursor = self._connection.execute(
                f"INSERT OR IGNORE INTO {table} ({columns}) VALUES ({placeholders})", (key, *data.values()))
        return cursor.rowcount == 1

    def _select(self, table: str, split_hash: str | None, json_columns: tuple[str, ...], kind: type) -> list:
        query = f"SELECT * FROM {table}" + (" WHERE split_hash = ?" if split_hash else "") + " ORDER BY finished_at"
        cursor = self._connection.execute(query, (split_hash,) if split_hash else ())
        names = [d[0] for d in cursor.description]
        records = []
        for row in cursor:
            data = dict(zip(names, row))
            data.pop("key")
            for name in json_columns:
                data[name] = json.loads(data[name])
            records.append(kind(**data))
        return records

    def add_attack(self, record: AttackRecord) -> bool:
        """Insert an attack run in one transaction; False when its key was already there."""
        return self._insert("attack_runs", record.key, asdict(record), ATTACK_JSON)

    def has_attack(self, key: str) -> bool:
        return self._connection.execute("SELECT 1 FROM attack_runs WHERE key = ?", (key,)).fetchone() is not None

    def forget_attack_failure(self, key: str) -> bool:
        """Delete the attack run of ``key`` if it did not end ok (to run it again), with its matrix rows; True when
        one went."""
        with self._connection:
            cursor = self._connection.execute("DELETE FROM attack_runs WHERE key = ? AND status != 'ok'", (key,))
            if cursor.rowcount == 1:
                self._connection.execute("DELETE FROM matrix WHERE attack_key = ?", (key,))
        return cursor.rowcount == 1

    def attack_records(self, split_hash: str | None = None) -> list[AttackRecord]:
        """Every attack run (of one split when given), oldest first."""
        return self._select("attack_runs", split_hash, ATTACK_JSON, AttackRecord)

    def add_matrix(self, record: MatrixRecord) -> bool:
        """Insert a matrix row in one transaction; False when its key was already there."""
        return self._insert("matrix", record.key, asdict(record), MATRIX_JSON)

    def has_matrix(self, key: str) -> bool:
        return self._connection.execute("SELECT 1 FROM matrix WHERE key = ?", (key,)).fetchone() is not None

    def matrix_records(self, split_hash: str | None = None) -> list[MatrixRecord]:
        """Every matrix row (of one split when given), oldest first."""
        return self._select("matrix", split_hash, MATRIX_JSON, MatrixRecord)

    def latest_split(self) -> str | None:
        row = self._connection.execute("SELECT split_hash FROM results ORDER BY finished_at DESC LIMIT 1").fetchone()
        return row[0] if row else None


def latest_by(records: Iterable[Any], slot: Callable[[Any], tuple]) -> list[Any]:
    """The latest record (by ``finished_at``, then key) of each ``slot(record)``, in the order of ``records``."""
    records = list(records)
    chosen: dict[tuple, Any] = {}
    for record in records:
        held = chosen.get(slot(record))
        if held is None or (record.finished_at, record.key) >= (held.finished_at, held.key):
            chosen[slot(record)] = record
    kept = {id(r) for r in chosen.values()}
    return [r for r in records if id(r) in kept]


def latest(records: list[ScoreRecord]) -> list[ScoreRecord]:
    """Each submission's latest record per split, in the order of ``records``."""
    return latest_by(records, lambda r: (r.split_hash, r.submission))
