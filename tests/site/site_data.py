"""Synthetic results stores for the site tests: ScoreRecords and ledger entries written directly (no training)."""

from __future__ import annotations

import base64
import struct
import zlib
from pathlib import Path

from harness.contest.ledger import ContestEntry, Ledger, contest_submission_name
from harness.contest.spec import parse_deadline
from harness.scoring.store import ResultStore, ScoreRecord

SPLIT = "ab" * 32
CATEGORIES = ("clean", "noise", "fgsm")
TAGS = ("clean", "corruption:fog@1", "corruption:fog@3", "augmentation:rotation@2", "attack:fgsm{eps=0.05}",
        "attack:fgsm{eps=0.1}", "adaptive:pgd{eps=0.1,norm=linf,steps=10}")


def png(width: int = 8, height: int = 6, shade: int = 90) -> bytes:
    """A tiny valid grey PNG (written by hand: the test needs bytes, not a drawing library)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    raw = b"".join(b"\x00" + bytes([shade]) * width for _ in range(height))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def metrics(score: float, offset: float = 0.0) -> dict:
    """One partition's metrics: every category at ``score`` (+ ``offset`` for the noise category)."""
    values = {"clean_top1": score, "clean_top5": min(1.0, score + 0.1)}
    for category in CATEGORIES:
        value = score + (offset if category == "noise" else 0.0)
        values[f"top1_{category}"] = value
        values[f"{category}_ci_low"], values[f"{category}_ci_high"] = value - 0.05, value + 0.05
    values["score"] = score + offset / len(CATEGORIES)
    values["score_ci_low"], values["score_ci_high"] = values["score"] - 0.04, values["score"] + 0.04
    return values


def record(submission: str, team: str, public: float, private: float, *, status: str = "scored", reason: str = "",
           finished_at: float = 1_790_000_000.0, spec: str = "", content: str = "", report_dir: Path | None = None,
           flags: tuple[str, ...] = ()) -> ScoreRecord:
    """A record with both partitions, a breakdown of every TAG, a 5-epoch history and (optionally) pictures."""
    details: dict = {"isolation": "ns", "spec": spec or f'name = "{submission}"\nteam = "{team}"\n',
                     "bootstrap_seed": 1234}
    if status == "scored":
        details["breakdown"] = {
            "public": {tag: [int(public * 40) - i, 40] for i, tag in enumerate(TAGS)},
            "private": {tag: [int(private * 377) - i, 377] for i, tag in enumerate(TAGS)}}
        details["history"] = [{"epoch": e, "train_loss": 2.0 / e, "train_top1": 0.5 + 0.08 * e, "val_loss": 2.2 / e,
                               "val_top1": 0.45 + 0.08 * e, "lr": 0.1} for e in range(1, 6)]
        details["adaptive"] = {"pgd": {"status": "ok", "attack": "pgd", "eps": 0.1, "norm": "linf",
                                       "params": {"steps": 10}, "labels": "predicted", "seed": 99}}
    if report_dir is not None:
        details["report"] = {"status": "ok", "reason": "", "dir": str(report_dir),
                             "pictures": {"explain": "explain.png", "activations": "activations.png"}}
    return ScoreRecord(
        submission=submission, team=team, framework="torch", profile="cpu",
        content_hash=content or base64.b16encode(submission.encode()).decode().lower().ljust(64, "0")[:64],
        split_hash=SPLIT, harness_version="0.test", status=status, reason=reason,
        metrics={"public": metrics(public), "private": metrics(private)} if status == "scored" else {},
        train_seconds=1.5, predict_seconds=0.5, finished_at=finished_at, isolation="ns", flags=list(flags),
        details=details)


def contest_store(db: Path, settings: dict | None = None, report_dir: Path | None = None) -> Path:
    """A contest store: team red sent three versions of one submission (the second is its best), blue one, one
    baseline, one rejected entry and one accepted entry not scored yet; ``report_dir``: red's best has pictures."""
    plan = [  # team, name, public, private, baseline
        ("red", "net", 0.40, 0.7171, False), ("red", "net", 0.70, 0.3131, False), ("red", "net", 0.55, 0.9191, False),
        ("blue", "cnn", 0.60, 0.6161, False), ("organisers", "baseline", 0.50, 0.5151, True)]
    versions: dict[tuple[str, str], int] = {}
    with ResultStore(db) as store, Ledger(db) as ledger:
        for number, (team, name, public, private, baseline) in enumerate(plan):
            versions[team, name] = versions.get((team, name), 0) + 1
            submission = contest_submission_name(team, name, versions[team, name])
            ledger.add(ContestEntry(f"{team}/{name}-{number}", f"fp{number}", team, 1_790_000_000 + number * 60,
                                    "accepted", name=name, submission=submission, track="defense",
                                    spec=f'name = "{name}"\n', baseline=baseline))
            store.add(record(submission, team, public, private, finished_at=1_790_000_100 + number,
                             report_dir=report_dir if number == 1 else None))
        ledger.add(ContestEntry("red/net-late", "fp9", "red", 1_790_001_000, "rejected", name="net",
                                reason="over the limit: 3 entries per day (max_per_team_per_day)", track="defense"))
        ledger.add(ContestEntry("blue/cnn-2", "fp10", "blue", 1_790_001_100, "accepted", name="cnn",
                                submission="blue.cnn.v2", track="defense"))
        ledger.set_settings({"name": "Digits robustness cup", "deadline": parse_deadline("2026-12-15T23:59:00Z"),
                             "reveal_private": True, "split_hash": SPLIT, **(settings or {})})
    return db
