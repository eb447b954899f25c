"""Rendering the site: Jinja2 templates (autoescape on: names, reasons and specs come from submitters) into a
fresh folder that replaces the old one at once (:func:`harness.atomic.atomic_directory`).

Layout: ``index.html`` (the defense board), ``attacks.html`` (with attack runs), ``submissions/<name>-<key12>.html``
(one per record), ``style.css``, ``sort.js``, ``charts/<sha>.svg`` and ``pictures/<sha>.png``. Charts and pictures
are named by their content: one that an earlier build already wrote is hard-linked from it, not rewritten.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
from pathlib import Path
from typing import Any

from .. import __version__
from ..atomic import atomic_directory
from .build import MARKER, StoreView, attack_board, board, contest_entries, utc
from .figures import record_figures

HERE = Path(__file__).resolve().parent
#: a picture bigger than this is not copied (the report step draws far smaller ones)
PICTURE_LIMIT = 16 * 1024 * 1024
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: the report's pictures: (key in details["report"]["pictures"], caption, alt text with {name})
PICTURES = (
    ("explain", "What the model looks at: clean (left) and FGSM-adversarial (right) validation images",
     "Explain grid of {name}: validation images, clean and FGSM-adversarial, each with the model's top-5 classes, "
     "saliency maps and Grad-CAM"),
    ("activations", "First convolution layers' activation maps, clean vs adversarial",
     "Activation maps of {name}'s first convolution layers for a few validation images, clean and adversarial"),
)
#: the longest text value of details shown under "how it was obtained"
DETAIL_TEXT = 300


class Assets:
    """Content-addressed files of one build: written once, hard-linked from ``previous`` when already there."""

    def __init__(self, root: Path, previous: Path | None):
        self.root, self.previous = root, previous
        self.kept = self.written = 0

    def add(self, data: bytes, folder: str, suffix: str) -> str:
        """The site-relative path of ``data`` stored as ``folder/<sha256>.suffix``."""
        name = f"{folder}/{hashlib.sha256(data).hexdigest()[:24]}{suffix}"
        target = self.root / name
        if target.exists():
            return name
        target.parent.mkdir(exist_ok=True)
        old = self.previous / name if self.previous is not None else None
        if old is not None and old.is_file() and old.stat().st_size == len(data):
            try:
                os.link(old, target)
                self.kept += 1
                return name
            except OSError:  # another file system, no hard links: write it
                pass
        target.write_bytes(data)
        self.written += 1
        return name


def read_picture(folder: Any, name: Any) -> bytes | None:
    """The PNG ``folder/name`` when it is a plain file name, a regular file (no link), under ``PICTURE_LIMIT``
    and a PNG; else None."""
    if not isinstance(folder, str) or not isinstance(name, str) or not name or "/" in name or "\\" in name \
            or name.startswith("."):
        return None
    path = Path(folder) / name
    try:
        info = os.lstat(path)
        if not stat.S_ISREG(info.st_mode) or info.st_size > PICTURE_LIMIT:
            return None
        data = path.read_bytes()
    except OSError:
        return None
    return data if data.startswith(PNG_SIGNATURE) else None


def environment():
    """The Jinja2 environment: templates of this package, autoescape on everywhere, undefined names fail."""
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    return Environment(loader=FileSystemLoader(str(HERE / "templates")), autoescape=True,
                       undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)


def page_name(submission: str, key: str) -> str:
    """A record page's site-relative path: ``submissions/<slug>-<key12>.html`` (safe whatever the name)."""
    from ..contest.ledger import slug

    return f"submissions/{slug(submission)[:80]}-{key[:12]}.html"


def _scalar(value: Any) -> str:
    if isinstance(value, (dict, list)):
        value = json.dumps(value, sort_keys=True)
    text = str(value)
    return text if len(text) <= DETAIL_TEXT else text[:DETAIL_TEXT] + "…"


def metric_rows(values: dict[str, Any]) -> list[dict[str, str]]:
    """(name, top-1 %, 95% interval, note) rows of one partition's metrics."""
    from .build import _percent

    unscored = values.get("unscored") or {}
    rows = []
    if "clean_top5" in values:
        rows.append({"name": "clean (top-5)", "value": _percent(values["clean_top5"]), "interval": "", "note": ""})
    for key, value in values.items():
        if not key.startswith("top1_"):
            continue
        category = key.removeprefix("top1_")
        low, high = _percent(values.get(f"{category}_ci_low")), _percent(values.get(f"{category}_ci_high"))
        rows.append({"name": category, "value": _percent(value), "interval": f"{low}–{high}" if low and high else "",
                     "note": f"not scored (counts 0): {unscored[category]}" if category in unscored else ""})
    if "score" in values:
        low, high = _percent(values.get("score_ci_low")), _percent(values.get("score_ci_high"))
        rows.append({"name": "score (mean of the categories)", "value": _percent(values["score"]),
                     "interval": f"{low}–{high}" if low and high else "", "note": ""})
    return rows


def how_obtained(record, entry) -> list[tuple[str, str]]:
    """(what, value) lines: isolation, profile, versions, seeds, timings, export."""
    details = record.details or {}
    lines = [("status", record.status), ("isolation", record.isolation or str(details.get("isolation", ""))),
             ("profile", record.profile), ("framework", record.framework),
             ("harness version", record.harness_version), ("split", record.split_hash[:16]),
             ("content hash", record.content_hash[:16]), ("finished", utc(record.finished_at))]
    if entry is not None:
        lines += [("arrived", utc(entry.arrived_at)), ("inbox entry", entry.inbox_path)]
    if "bootstrap_seed" in details:
        lines.append(("bootstrap seed", _scalar(details["bootstrap_seed"])))
    for name, value in (("train seconds", record.train_seconds), ("predict seconds", record.predict_seconds)):
        if value is not None:
            lines.append((name, f"{float(value):.2f}"))
    export = details.get("export")
    if isinstance(export, dict):
        lines += [(f"export {k}", _scalar(v)) for k, v in export.items() if not isinstance(v, (dict, list))]
    elif export not in (None, ""):
        lines.append(("export", _scalar(export)))
    return [(k, v) for k, v in lines if v not in ("", None)]


def adaptive_rows(details: dict[str, Any]) -> list[dict[str, str]]:
    """One row per adaptive category: how it was attacked (attack, eps, norm, params, labels) and its status."""
    rows = []
    adaptive = details.get("adaptive")
    for category, info in (adaptive.items() if isinstance(adaptive, dict) else ()):
        if not isinstance(info, dict):
            continue
        rows.append({"category": str(category), "status": _scalar(info.get("status", "")),
                     "attack": _scalar(info.get("attack", "")), "eps": _scalar(info.get("eps", "")),
                     "norm": _scalar(info.get("norm", "")), "params": _scalar(info.get("params") or ""),
                     "labels": _scalar(info.get("labels", "")), "reason": _scalar(info.get("reason", ""))})
    return rows


def write_site(view: StoreView, out: Path, partition: str, now: float) -> tuple[int, int]:
    """Render every page of ``view`` into a fresh folder replacing ``out``; (pages, bytes) written."""
    from ..robustness.checks import FLAGS
    from .build import with_attack_category

    env = environment()
    records = with_attack_category(view.records, view.matrix)
    page_of_record = {id(r): page_name(r.submission, r.key) for r in records}
    page_of: dict[str, str] = {}
    for record in sorted(records, key=lambda r: (r.finished_at, r.key)):
        page_of[record.submission] = page_of_record[id(record)]  # a name links to its latest record
    defense = board(view, partition, page_of)
    attacks = attack_board(view, partition)
    waiting = contest_entries(view, records, page_of) if view.contest else {"rejected": [], "waiting": []}
    settings = view.settings
    updated = max([r.finished_at for r in view.records] + [e.recorded_at for e in view.entries] + [0.0])
    site = {"title": str(settings.get("name") or "Leaderboard"), "contest": view.contest, "partition": partition,
            "deadline": _deadline_text(settings.get("deadline")), "updated": utc(updated) if updated else "",
            "built": utc(now), "split": (view.split_hash or "")[:16], "version": __version__,
            "revealed": bool(settings.get("reveal_private")), "attacks": attacks is not None}
    previous = out if out.is_dir() and (out / MARKER).is_file() else None
    pages = 0
    with atomic_directory(out) as tmp:
        os.chmod(tmp, 0o755)  # a web server's user reads it (mkdtemp makes it 0700)
        assets = Assets(tmp, previous)
        for name in ("style.css", "sort.js"):
            shutil.copyfile(HERE / "static" / name, tmp / name)
        (tmp / "submissions").mkdir()
        _write(tmp / "index.html", env.get_template("index.html").render(
            site=site, root="", board=defense, entries=waiting))
        pages += 1
        if attacks is not None:
            _write(tmp / "attacks.html", env.get_template("attacks.html").render(site=site, root="", board=attacks))
            pages += 1
        entry_of = {e.submission: e for e in view.entries if e.status == "accepted" and e.submission}
        template = env.get_template("submission.html")
        for record in records:
            entry = entry_of.get(record.submission)
            figures = [{"src": "../" + assets.add(f.svg.encode(), "charts", ".svg"), "alt": f.alt,
                        "caption": f.caption} for f in record_figures(record.details or {}, partition,
                                                                          record.submission)]
            pictures, report = _pictures(record, assets)
            _write(tmp / page_of_record[id(record)], template.render(
                site=site, root="../", record=record, entry=entry, baseline=bool(entry and entry.baseline),
                metrics=metric_rows((record.metrics or {}).get(partition) or {}),
                flags=[(f, FLAGS.get(f.rsplit(": ", 1)[-1], "")) for f in record.flags],
                how=how_obtained(record, entry), adaptive=adaptive_rows(record.details or {}),
                against=_against(view, record, partition), figures=figures, pictures=pictures, report=report,
                spec=_spec(record, entry), history=_history(view, record, records, entry, partition,
                                                            page_of_record)))
            pages += 1
        _write(tmp / MARKER, json.dumps({"harness_version": __version__, "partition": partition,
                                         "built_at": now}) + "\n")
        size = sum(p.stat().st_size for p in tmp.rglob("*") if p.is_file())
    return pages, size


def _write(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")


def _deadline_text(value: Any) -> str:
    from .build import deadline_seconds

    seconds = deadline_seconds(value)
    return utc(seconds) if seconds is not None else ""


def _spec(record, entry) -> str:
    spec = (record.details or {}).get("spec")
    if not isinstance(spec, str) or not spec:
        spec = entry.spec if entry is not None else ""
    return spec


def _pictures(record, assets: Assets) -> tuple[list[dict[str, str]], dict[str, str]]:
    """The report's pictures copied into the site, and the report's status line."""
    report = (record.details or {}).get("report")
    if not isinstance(report, dict):
        return [], {}
    found = []
    pictures = report.get("pictures") if isinstance(report.get("pictures"), dict) else {}
    for key, caption, alt in PICTURES:
        data = read_picture(report.get("dir"), pictures.get(key))
        if data is not None:
            found.append({"src": "../" + assets.add(data, "pictures", ".png"), "caption": caption,
                          "alt": alt.format(name=record.submission)})
    status = {"status": _scalar(report.get("status", "")), "reason": _scalar(report.get("reason", ""))}
    return found, status


def _against(view: StoreView, record, partition: str) -> list[dict[str, str]]:
    """The attack track's rows against this defense: attack, status, success in the partition shown."""
    from .build import _percent

    rows = []
    for row in view.matrix:
        if row.defense_key != record.key:
            continue
        values = (row.metrics or {}).get(partition) or {}
        rows.append({"attack": row.attack, "kind": row.attack_kind, "status": row.status, "reason": row.reason,
                     "success": _percent(values.get("success")) if row.status == "scored" else ""})
    return rows


def _history(view: StoreView, record, records, entry, partition: str, page_of_record) -> list[dict[str, Any]]:
    """Every other version: a contest team's entries of the same TOML name (arrival order), else every record of
    the same submission name."""
    from .build import _percent

    if entry is not None:
        by_name: dict[str, Any] = {}
        for other in records:
            held = by_name.get(other.submission)
            if held is None or (other.finished_at, other.key) >= (held.finished_at, held.key):
                by_name[other.submission] = other
        rows = []
        for other in view.entries:
            if other.team != entry.team or other.name != entry.name:
                continue
            found = by_name.get(other.submission) if other.status == "accepted" else None
            status = "rejected" if other.status == "rejected" else (found.status if found else "waiting")
            score = (found.metrics.get(partition) or {}).get("score") if found and found.status == "scored" else None
            rows.append({"when": utc(other.arrived_at), "name": other.submission or other.inbox_path,
                         "page": page_of_record.get(id(found), "") if found is not None else "",
                         "status": status, "score": _percent(score),
                         "reason": other.reason or (found.reason if found else ""),
                         "current": other.submission == record.submission and other.status == "accepted"})
        return rows
    rows = []
    for other in sorted((r for r in records if r.submission == record.submission),
                        key=lambda r: (r.finished_at, r.key)):
        score = (other.metrics.get(partition) or {}).get("score") if other.status == "scored" else None
        rows.append({"when": utc(other.finished_at), "name": f"{other.submission} ({other.content_hash[:12]})",
                     "page": page_of_record[id(other)], "status": other.status, "score": _percent(score),
                     "reason": other.reason, "current": other is record})
    return rows
