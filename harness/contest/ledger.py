"""The contest ledger: every inbox entry that ``harness contest run`` saw, in arrival order, accepted (handed to
the scorer under a contest-wide unique submission name) or rejected (with the reason; never scored).

It lives in the results store's SQLite file (its own two tables), so one file holds a contest: the scorer's
``results``/``attack_runs``/``matrix`` rows and the ledger rows that say which team sent what and when. Each
entry is written in one transaction before any of its code runs: a killed runner finds it again on restart
and the scorer's own resume skips what was already scored.
"""

from __future__ import annotations

import json
import re
import sqlite3
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from ..scoring.scorer import SPEC_LIMIT
from ..scoring.store import SQLiteFile

LEDGER_SCHEMA = """
CREATE TABLE IF NOT EXISTS contest_entries (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    inbox_path TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    team TEXT NOT NULL,
    name TEXT NOT NULL DEFAULT '',
    submission TEXT NOT NULL DEFAULT '',
    track TEXT NOT NULL DEFAULT '',
    content_hash TEXT NOT NULL DEFAULT '',
    arrived_at REAL NOT NULL,
    status TEXT NOT NULL,
    reason TEXT NOT NULL DEFAULT '',
    spec TEXT NOT NULL DEFAULT '',
    baseline INTEGER NOT NULL DEFAULT 0,
    recorded_at REAL NOT NULL,
    UNIQUE (inbox_path, fingerprint)
);
CREATE TABLE IF NOT EXISTS contest_settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""
#: an entry's status: accepted (scored, or waiting to be: the scorer's store says which) or rejected
ENTRY_STATUSES = ("accepted", "rejected")


@dataclass
class ContestEntry:
    """One inbox entry as the runner recorded it."""

    #: where it was found, relative to the inbox (``TEAM/NAME.tar.gz``, ``NAME/``)
    inbox_path: str
    #: sha256 of what was found (an archive's bytes, a folder's content hash): a changed entry is a new one
    fingerprint: str
    team: str
    #: when it arrived (UTC seconds since the epoch): what the deadline and the daily limit compare
    arrived_at: float
    status: str
    reason: str = ""
    #: the name in its submission.toml ("" when unreadable)
    name: str = ""
    #: the results store's submission name of this entry (accepted only): unique in the contest
    submission: str = ""
    #: "defense" or "attack" ("" when unreadable)
    track: str = ""
    content_hash: str = ""
    #: submission.toml as submitted (at most SPEC_LIMIT characters)
    spec: str = ""
    #: one of the contest's baseline submissions (scored with the rest, no team limits)
    baseline: bool = False
    recorded_at: float = field(default_factory=time.time)
    #: arrival order, given when recorded (None before)
    id: int | None = None


def contest_submission_name(team: str, name: str, version: int) -> str:
    """The store's submission name of a team's ``version``-th accepted entry called ``name``: ``team.name.vN``
    with each part reduced to ``[a-z0-9-]`` (safe in paths, unique per team and version)."""
    return f"{slug(team)}.{slug(name)}.v{int(version)}"


def slug(text: str) -> str:
    """``text`` lower-cased with every run of other characters than ``[a-z0-9]`` turned into one ``-``."""
    return re.sub(r"[^a-z0-9]+", "-", str(text).lower()).strip("-") or "x"


class Ledger(SQLiteFile):
    """The contest tables of a results store file (created on first use)."""

    def __init__(self, path: str | Path):
        super().__init__(path, LEDGER_SCHEMA)

    def add(self, entry: ContestEntry) -> ContestEntry:
        """Record ``entry`` in one transaction and return it with its arrival number; an entry already recorded
        (same inbox path and fingerprint) is returned as it was recorded, unchanged."""
        if entry.status not in ENTRY_STATUSES:
            raise ValueError(f"entry status '{entry.status}': expected one of {', '.join(ENTRY_STATUSES)}")
        data = asdict(entry)
        data.pop("id")
        data["spec"] = data["spec"][:SPEC_LIMIT]
        data["baseline"] = int(bool(data["baseline"]))
        columns = ", ".join(data)
        with self._connection:
            self._connection.execute(
                f"INSERT OR IGNORE INTO contest_entries ({columns}) VALUES ({', '.join('?' * len(data))})",
                tuple(data.values()))
        found = self.find(entry.inbox_path, entry.fingerprint)
        assert found is not None
        return found

    def find(self, inbox_path: str, fingerprint: str) -> ContestEntry | None:
        """The recorded entry of this inbox path and fingerprint, or None."""
        found = self._entries("WHERE inbox_path = ? AND fingerprint = ?", (inbox_path, fingerprint))
        return found[0] if found else None

    def entries(self) -> list[ContestEntry]:
        """Every recorded entry, in arrival order (the order they were recorded)."""
        return self._entries("", ())

    def _entries(self, where: str, arguments: tuple) -> list[ContestEntry]:
        cursor = self._connection.execute(f"SELECT * FROM contest_entries {where} ORDER BY id", arguments)
        names = [d[0] for d in cursor.description]
        known = {f.name for f in fields(ContestEntry)}
        found = []
        for row in cursor:
            data = {k: v for k, v in zip(names, row) if k in known}
            data["baseline"] = bool(data["baseline"])
            found.append(ContestEntry(**data))
        return found

    def set_settings(self, values: dict[str, Any]) -> None:
        """Store the contest's published settings (JSON values) in one transaction, replacing those named."""
        with self._connection:
            self._connection.executemany("INSERT OR REPLACE INTO contest_settings (key, value) VALUES (?, ?)",
                                         [(k, json.dumps(v)) for k, v in values.items()])

    def settings(self) -> dict[str, Any]:
        """The contest's stored settings ({} for a store no contest ran on)."""
        return {k: json.loads(v) for k, v in self._connection.execute("SELECT key, value FROM contest_settings")}


def is_contest_store(path: str | Path) -> bool:
    """Whether the store file at ``path`` holds contest tables (without creating them)."""
    connection = sqlite3.connect(f"file:{Path(path)}?mode=ro", uri=True)
    try:
        row = connection.execute("SELECT 1 FROM sqlite_master WHERE name = 'contest_entries'").fetchone()
    finally:
        connection.close()
    return row is not None
