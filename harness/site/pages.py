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
import re
import shutil
import stat
from pathlib import Path
from typing import Any

from .. import __version__
from ..atomic import atomic_directory
from .build import MARKER, StoreView, attack_board, board, contest_entries, utc
from .figures import record_chart

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
#: what an asset is called (what a cache entry of the previous build may name)
ASSET_NAME = re.compile(r"(charts/[0-9a-f]{24}\.svg|pictures/[0-9a-f]{24}\.png)")
#: the longest text value of details shown under "how it was obtained"
DETAIL_TEXT = 300


class Assets:
    """Content-addressed files of one build: written once, hard-linked from ``previous`` (the site being replaced)
    when already there. ``cache`` (from the previous build's marker file, valid for the same harness version)
    maps a source's identity to the names it gave, so a rebuild neither rereads an unchanged picture nor redraws
    the charts of a record (stored records never change) before linking them."""

    def __init__(self, root: Path, previous: Path | None, cache: dict[str, Any], writer: "Writer"):
        self.root, self.previous, self.old_cache, self.writer = root, previous, cache, writer
        self.cache: dict[str, Any] = {}
        self.names: set[str] = set()
        self.kept = self.written = self.bytes = 0

    def add(self, data: bytes, folder: str, suffix: str, source: Path | None = None) -> str:
        """The site-relative path of ``data`` stored as ``folder/<sha256>.suffix`` (hard-linked from ``source``, the
        file it was read from, when the file system allows: no new inode to write)."""
        name = f"{folder}/{hashlib.sha256(data).hexdigest()[:24]}{suffix}"
        if not self._link(name):
            self.bytes += len(data)
            self.written += 1
            try:
                if source is None:
                    raise OSError("no source")
                os.link(source, self.root / name)
            except OSError:
                self.writer.write(self.root / name, data)
        return name

    def _link(self, name: str) -> bool:
        """Whether ``name`` is in this build now: already, or hard-linked from the previous build (else the caller
        writes it; either way it counts as there from now on)."""
        if name in self.names:
            return True
        self.names.add(name)
        target = self.root / name
        target.parent.mkdir(exist_ok=True)
        if self.previous is None:
            return False
        try:
            os.link(self.previous / name, target)
        except OSError:  # not there, or another file system: written instead
            return False
        self.kept += 1
        self.bytes += target.stat().st_size
        return True

    def cached(self, key: str) -> Any:
        """What the previous build stored under ``key`` when every file it names is linked into this build."""
        value = self.old_cache.get(key)
        try:
            names = [value] if isinstance(value, str) else [v[0] for v in value]
        except (TypeError, IndexError, KeyError):
            return None
        if not all(isinstance(n, str) and ASSET_NAME.fullmatch(n) and self._link(n) for n in names):
            return None
        self.cache[key] = value
        return value

    def remember(self, key: str, value: Any) -> Any:
        self.cache[key] = value
        return value

    def picture(self, folder: Any, name: Any) -> str | None:
        """A report picture (:func:`read_picture`) added by its content; None when it is not usable."""
        path = picture_path(folder, name)
        if path is None:
            return None
        try:
            info = os.lstat(path)
        except OSError:
            return None
        key = "picture:" + hashlib.sha256(f"{path}\0{info.st_size}\0{info.st_mtime_ns}".encode()).hexdigest()[:24]
        found = self.cached(key)
        if found is not None:
            return found
        data = read_picture(folder, name)
        return None if data is None else self.remember(key, self.add(data, "pictures", ".png", source=path))


class Writer:
    """Files written by a few threads: creating a file costs about 1 ms on this project's VMs (inode allocation,
    outside the GIL), so the writes overlap each other and the rendering. :meth:`wait` raises the first error."""

    def __init__(self, threads: int = 4):
        from concurrent.futures import ThreadPoolExecutor

        self.pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="site-writer")
        self.pending: list[Any] = []

    def write(self, path: Path, data: bytes) -> int:
        self.pending.append(self.pool.submit(path.write_bytes, data))
        return len(data)

    def wait(self) -> None:
        try:
            for future in self.pending:
                future.result()
        finally:
            self.pool.shutdown(wait=True, cancel_futures=True)


def picture_path(folder: Any, name: Any) -> Path | None:
    """``folder/name`` when ``name`` is a plain file name; else None."""
    if not isinstance(folder, str) or not isinstance(name, str) or not name or "/" in name or "\\" in name \
            or name.startswith("."):
        return None
    return Path(folder) / name


def read_picture(folder: Any, name: Any) -> bytes | None:
    """The PNG ``folder/name`` when it is a plain file name, a regular file (no link), under ``PICTURE_LIMIT``
    and a PNG; else None."""
    path = picture_path(folder, name)
    if path is None:
        return None
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
    from .build import percent

    unscored = values.get("unscored") or {}
    rows = []
    if "clean_top5" in values:
        rows.append({"name": "clean (top-5)", "value": percent(values["clean_top5"]), "interval": "", "note": ""})
    for key, value in values.items():
        if not key.startswith("top1_"):
            continue
        category = key.removeprefix("top1_")
        low, high = percent(values.get(f"{category}_ci_low")), percent(values.get(f"{category}_ci_high"))
        rows.append({"name": category, "value": percent(value), "interval": f"{low}–{high}" if low and high else "",
                     "note": f"not scored (counts 0): {unscored[category]}" if category in unscored else ""})
    if "score" in values:
        low, high = percent(values.get("score_ci_low")), percent(values.get("score_ci_high"))
        rows.append({"name": "score (mean of the categories)", "value": percent(values["score"]),
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


def previous_build(out: Path) -> tuple[Path | None, dict[str, Any]]:
    """The site being replaced (None when ``out`` is none) and its asset cache (empty when another harness
    version wrote it, or unreadable)."""
    if not (out / MARKER).is_file():
        return None, {}
    try:
        marker = json.loads((out / MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return out, {}
    cache = marker.get("cache") if isinstance(marker, dict) and marker.get("harness_version") == __version__ else {}
    return out, cache if isinstance(cache, dict) else {}


def write_site(view: StoreView, out: Path, partition: str, now: float, *, specs: bool = True) -> tuple[int, int]:
    """Render every page of ``view`` into a fresh folder replacing ``out``; (pages, bytes) written. ``specs``
    False: no submission.toml on any page."""
    from ..robustness.checks import FLAGS
    from ..scoring.attack_board import with_attack_category

    env = environment()
    records = with_attack_category(view.records, view.matrix)
    page_of_record = {id(r): page_name(r.submission, r.key) for r in records}
    page_of: dict[str, str] = {}
    for record in sorted(records, key=lambda r: (r.finished_at, r.key)):
        page_of[record.submission] = page_of_record[id(record)]  # a name links to its latest record
    defense = board(view, records, partition, page_of)
    attacks = attack_board(view, partition)
    waiting = contest_entries(view, records, page_of) if view.contest else {"rejected": [], "waiting": []}
    settings = view.settings
    updated = max([r.finished_at for r in view.records] + [a.finished_at for a in view.attacks]
                  + [e.recorded_at for e in view.entries] + [0.0])
    site = {"title": str(settings.get("name") or "Leaderboard"), "contest": view.contest, "partition": partition,
            "deadline": _deadline_text(settings.get("deadline")), "updated": utc(updated) if updated else "",
            "built": utc(now), "split": (view.split_hash or "")[:16], "version": __version__,
            "revealed": bool(settings.get("reveal_private")), "attacks": attacks is not None}
    previous, cache = previous_build(out)
    history = Histories(view, records, page_of_record, partition)
    entry_of = {e.submission: e for e in view.entries if e.status == "accepted" and e.submission}
    against = _against(view, partition)
    pages = []
    writer = Writer()
    with atomic_directory(out) as tmp:
        try:
            os.chmod(tmp, 0o755)  # a web server's user reads it (mkdtemp makes it 0700)
            assets = Assets(tmp, previous, cache, writer)
            for name in ("style.css", "sort.js"):
                shutil.copyfile(HERE / "static" / name, tmp / name)
            (tmp / "submissions").mkdir()
            pages.append(writer.write(tmp / "index.html", env.get_template("index.html").render(
                site=site, root="", board=defense, entries=waiting).encode()))
            if attacks is not None:
                pages.append(writer.write(tmp / "attacks.html", env.get_template("attacks.html").render(
                    site=site, root="", board=attacks).encode()))
            template = env.get_template("submission.html")
            for record in records:
                entry = entry_of.get(record.submission)
                pictures, report = _pictures(record, assets)
                pages.append(writer.write(tmp / page_of_record[id(record)], template.render(
                    site=site, root="../", record=record, entry=entry, baseline=bool(entry and entry.baseline),
                    metrics=metric_rows((record.metrics or {}).get(partition) or {}),
                    flags=[(f, FLAGS.get(f.rsplit(": ", 1)[-1], "")) for f in record.flags],
                    how=how_obtained(record, entry), adaptive=adaptive_rows(record.details or {}),
                    against=against.get(record.key, []), figures=_figures(record, partition, assets),
                    pictures=pictures, report=report, spec=_spec(record, entry) if specs else None,
                    history=history.of(record, entry)
                ).encode()))
            marker = {"harness_version": __version__, "partition": partition, "built_at": now, "cache": assets.cache}
            text = json.dumps(marker).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            pages.append(writer.write(tmp / MARKER, (text + "\n").encode()))  # no markup, even there
        finally:
            writer.wait()  # before the folder is swapped in (or removed on an error)
        size = sum(pages) + assets.bytes + sum((tmp / n).stat().st_size for n in ("style.css", "sort.js"))
    return len(pages) - 1, size


def _figures(record, partition: str, assets: Assets) -> list[dict[str, str]]:
    """The record's charts in the site (one SVG file): reused from the previous build (a stored record never
    changes) or drawn."""
    key = f"charts:{record.key}:{partition}"
    found = assets.cached(key)
    if found is None:
        chart = record_chart(record.details or {}, partition, record.submission)
        found = assets.remember(key, [] if chart is None else [[assets.add(chart[0].encode(), "charts", ".svg"),
                                                                 chart[1], chart[2]]])
    return [{"src": "../" + name, "caption": caption, "alt": alt} for name, caption, alt in found]


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
        name = assets.picture(report.get("dir"), pictures.get(key))
        if name is not None:
            found.append({"src": "../" + name, "caption": caption, "alt": alt.format(name=record.submission)})
    status = {"status": _scalar(report.get("status", "")), "reason": _scalar(report.get("reason", ""))}
    return found, status


def _against(view: StoreView, partition: str) -> dict[str, list[dict[str, str]]]:
    """{defense record key: the attack track's rows against it (attack, status, success in the partition)}."""
    from .build import percent

    rows: dict[str, list[dict[str, str]]] = {}
    for row in view.matrix:
        values = (row.metrics or {}).get(partition) or {}
        rows.setdefault(row.defense_key, []).append({
            "attack": row.attack, "kind": row.attack_kind, "status": row.status, "reason": row.reason,
            "success": percent(values.get("success")) if row.status == "scored" else ""})
    return rows


class Histories:
    """Every other version of a record: a contest team's entries of the same TOML name (arrival order), else
    every record of the same submission name (indexed once per build)."""

    def __init__(self, view: StoreView, records, page_of_record: dict[int, str], partition: str):
        self.partition, self.page_of_record = partition, page_of_record
        self.latest: dict[str, Any] = {}
        self.by_name: dict[str, list] = {}
        for record in sorted(records, key=lambda r: (r.finished_at, r.key)):
            self.latest[record.submission] = record
            self.by_name.setdefault(record.submission, []).append(record)
        self.entries: dict[tuple[str, str], list] = {}
        for entry in view.entries:
            self.entries.setdefault((entry.team, entry.name), []).append(entry)

    def _score(self, record) -> str:
        from .build import percent

        if record is None or record.status != "scored":
            return ""
        return percent((record.metrics.get(self.partition) or {}).get("score"))

    def of(self, record, entry) -> list[dict[str, Any]]:
        if entry is not None:
            rows = []
            for other in self.entries.get((entry.team, entry.name), []):
                found = self.latest.get(other.submission) if other.status == "accepted" else None
                status = "rejected" if other.status == "rejected" else (found.status if found else "waiting")
                rows.append({"when": utc(other.arrived_at), "name": other.submission or other.inbox_path,
                             "page": self.page_of_record.get(id(found), "") if found is not None else "",
                             "status": status, "score": self._score(found),
                             "reason": other.reason or (found.reason if found else ""),
                             "current": other.submission == record.submission and other.status == "accepted"})
            return rows
        return [{"when": utc(other.finished_at), "name": f"{other.submission} ({other.content_hash[:12]})",
                 "page": self.page_of_record[id(other)], "status": other.status, "score": self._score(other),
                 "reason": other.reason, "current": other is record} for other in self.by_name[record.submission]]
