"""harness site build: what the pages show (team-best, failures, rejections, history, pictures), what they must
never show (private numbers on a public site, unescaped hostile text), the partition rule and the atomic swap."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import pytest
from site_data import contest_store, record
from typer.testing import CliRunner

from harness.cli.main import app
from harness.errors import UsageError
from harness.scoring.store import ResultStore
from harness.site import build_site, check_site
from harness.site import svg
from harness.site.figures import corruption_figure, eps_figure, record_chart

BEFORE, AFTER = 1_790_000_000.0, 1_900_000_000.0  # the contest's deadline (2026-12-15) lies between


class _Rows(HTMLParser):
    """The text of each cell of one table (by id), row by row."""

    def __init__(self, table: str):
        super().__init__()
        self.table, self.inside, self.rows, self.cell = table, False, [], None

    def handle_starttag(self, tag, attrs):
        if tag == "table" and dict(attrs).get("id") == self.table:
            self.inside = True
        elif self.inside and tag == "tr":
            self.rows.append([])
        elif self.inside and tag == "td":
            self.cell = ""

    def handle_endtag(self, tag):
        if tag == "table":
            self.inside = False
        elif tag == "td" and self.cell is not None:
            self.rows[-1].append(self.cell.strip())
            self.cell = None

    def handle_data(self, data):
        if self.cell is not None:
            self.cell += data


def rows(page: Path, table: str) -> list[list[str]]:
    parser = _Rows(table)
    parser.feed(page.read_text(encoding="utf-8"))
    return [r for r in parser.rows if r]


def site_text(folder: Path) -> str:
    """Every page's HTML and every chart's words (an SVG's coordinates are no numbers of the results)."""
    pages = [p.read_text(encoding="utf-8") for p in folder.rglob("*.html")]
    words = ["".join(ET.parse(p).getroot().itertext()) for p in folder.rglob("*.svg")]
    return "\n".join(pages + words)


def private_strings(db: Path) -> set[str]:
    """How each private number could be written on a page, less those a public number is also written as."""
    def forms(value: float) -> set[str]:
        return {f"{value * 100:.1f}", repr(value), f"{value:.4g}"}
    private, public = set(), set()
    with ResultStore(db) as store:
        for r in store.records():
            for partition, found in (("private", private), ("public", public)):
                for value in (r.metrics.get(partition) or {}).values():
                    if isinstance(value, float):
                        found |= forms(value)
                for correct, total in ((r.details.get("breakdown") or {}).get(partition) or {}).values():
                    found |= forms(correct / total)
    return {s for s in private - public if len(s) > 2}


def test_public_site_holds_no_private_number(tmp_path, report_dir):
    db = contest_store(tmp_path / "c.sqlite", report_dir=report_dir)
    site = tmp_path / "site"
    assert build_site(db, site, now=BEFORE).partition == "public"
    text = site_text(site)
    secrets = private_strings(db)
    assert len(secrets) > 50
    leaked = [s for s in secrets if re.search(rf"(?<![\d.]){re.escape(s)}(?!\d)", text)]
    assert not leaked
    assert not re.search(r"\b377\b", text)  # the private partition's image count per tag
    private = build_site(db, tmp_path / "private", private=True)
    assert private.partition == "private" and "91.9" in site_text(tmp_path / "private")  # the check can fail


def test_contest_board_one_row_per_team_best_by_public_score(tmp_path, report_dir):
    db = contest_store(tmp_path / "c.sqlite", report_dir=report_dir)
    build_site(db, tmp_path / "site", now=BEFORE)
    index = tmp_path / "site" / "index.html"
    board = rows(index, "leaderboard")
    assert [(r[0], r[1], r[2]) for r in board] == [("1", "red.net.v2", "red"), ("2", "blue.cnn.v1", "blue"),
                                                    ("3", "organisers.baseline.v1 baseline", "organisers")]
    assert rows(index, "rejected") == [[rows(index, "rejected")[0][0], "red", "red/net-late", "net",
                                        "over the limit: 3 entries per day (max_per_team_per_day)"]]
    assert [r[1:] for r in rows(index, "waiting")] == [["blue", "blue.cnn.v2"]]
    assert "Digits robustness cup" in index.read_text()
    # the private board ranks the same chosen entries (red.net.v3, best on private, is not chosen)
    build_site(db, tmp_path / "private", private=True)
    board = rows(tmp_path / "private" / "index.html", "leaderboard")
    assert [r[1] for r in board] == ["blue.cnn.v1", "organisers.baseline.v1 baseline", "red.net.v2"]
    pages = sorted(p.name for p in (tmp_path / "site" / "submissions").iterdir())
    assert len(pages) == 5  # every scored entry has its page
    history = rows(next((tmp_path / "site" / "submissions").glob("red-net-v3-*.html")), "history")
    assert [r[1].replace(" (this page)", "") for r in history] == ["red.net.v1", "red.net.v2", "red.net.v3",
                                                                   "red/net-late"]
    assert [r[2] for r in history] == ["scored", "scored", "scored", "rejected"]
    assert check_site(tmp_path / "site") == []


def test_partition_follows_the_contest_deadline(tmp_path):
    db = contest_store(tmp_path / "c.sqlite")
    assert build_site(db, tmp_path / "a", now=BEFORE).partition == "public"
    assert build_site(db, tmp_path / "a", now=AFTER).partition == "private"
    assert build_site(db, tmp_path / "a", now=AFTER, private=False).partition == "public"
    hidden = contest_store(tmp_path / "d.sqlite", settings={"reveal_private": False})
    assert build_site(hidden, tmp_path / "b", now=AFTER).partition == "public"


def test_plain_store_pages_failures_history_and_pictures(tmp_path, plain_store, monkeypatch):
    site = tmp_path / "site"
    summary = build_site(plain_store, site, now=BEFORE)
    assert (summary.pages, summary.partition, summary.contest) == (7, "public", False)  # index + 6 records
    index = site / "index.html"
    assert [r[1] for r in rows(index, "leaderboard")] == ["alpha", "beta", "gamma"]  # beta: its latest (66%)
    assert rows(index, "leaderboard")[1][3] == "66.0"
    assert [(r[0], r[2], r[3]) for r in rows(index, "failures")] == [
        ("delta", "failed", "crashed: out of memory"), ("eps", "invalid", "submission.toml: unknown field 'foo'")]
    beta = sorted((site / "submissions").glob("beta-*.html"))
    assert len(beta) == 2 and all(len(rows(p, "history")) == 2 for p in beta)
    alpha = next((site / "submissions").glob("alpha-*.html")).read_text()
    assert alpha.count('src="../pictures/') == 2 and alpha.count('src="../charts/') == 1
    assert "zero-gradients" in alpha and "pgd" in alpha
    assert check_site(site) == []
    kept = [next((site / folder).iterdir()) for folder in ("pictures", "charts")]
    inodes = [path.stat().st_ino for path in kept]
    monkeypatch.setattr("harness.site.pages.record_chart", lambda *a: pytest.fail("charts drawn again"))
    monkeypatch.setattr("harness.site.pages.read_picture", lambda *a: pytest.fail("picture read again"))
    build_site(plain_store, site, now=BEFORE)  # a rebuild keeps unchanged pictures and charts (hard links)
    assert [path.stat().st_ino for path in kept] == inodes
    assert check_site(site) == []


def test_hostile_text_is_escaped(tmp_path):
    db = tmp_path / "h.sqlite"
    evil = "<script>alert(1)</script>"
    with ResultStore(db) as store:
        store.add(record(evil, f"team{evil}", 0.5, 0.5, spec=f'name = "{evil}"\n</pre>{evil}'))
        store.add(record("x", "y", 0, 0, status="failed", reason=f'<img src=x onerror="alert(2)">{evil}'))
    build_site(db, tmp_path / "site")
    text = "\n".join(p.read_text(encoding="utf-8") for p in (tmp_path / "site").rglob("*") if p.is_file())
    assert "<script>alert" not in text and "<img src=x" not in text and "</pre><script" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert check_site(tmp_path / "site") == []


def test_specs_follow_the_contest_setting_and_the_option(tmp_path):
    def spec_shown(db, folder, **options) -> bool:
        build_site(db, folder, now=BEFORE, **options)
        page = next((folder / "submissions").glob("blue-cnn-v1-*.html")).read_text()
        return 'class="spec">name = &#34;blue.cnn.v1&#34;' in page

    shown = contest_store(tmp_path / "a.sqlite")
    private = contest_store(tmp_path / "b.sqlite", settings={"publish_specs": False})
    assert spec_shown(shown, tmp_path / "a") and not spec_shown(shown, tmp_path / "b", specs=False)
    assert not spec_shown(private, tmp_path / "c") and spec_shown(private, tmp_path / "d", specs=True)
    assert "Not published" in next((tmp_path / "c" / "submissions").glob("blue-cnn-v1-*.html")).read_text()


def test_refuses_to_replace_a_folder_it_did_not_build(tmp_path, plain_store):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep me")
    with pytest.raises(UsageError, match="not a site built by harness site build"):
        build_site(plain_store, folder)
    assert (folder / "notes.txt").read_text() == "keep me"
    with pytest.raises(UsageError, match="no such results store"):
        build_site(tmp_path / "missing.sqlite", tmp_path / "site")


def test_charts_from_the_breakdown():
    breakdown = {"public": {"clean": [9, 10], "attack:fgsm{eps=0.1}": [5, 10], "attack:fgsm{eps=0.05}": [7, 10],
                            "corruption:fog@1": [8, 10], "corruption:fog@3": [4, 10], "augmentation:rotation@2":
                            [6, 10], "augmentation:flip": [1, 2]}}
    eps = eps_figure(breakdown, "public", "m")
    assert "90.0% at eps 0, 70.0% at eps 0.05, 50.0% at eps 0.1" in eps.alt
    heat = corruption_figure(breakdown, "public", "m")
    assert "fog: severity 1 80.0%, severity 3 40.0%" in heat.alt and "rotation (augmentation)" in heat.alt
    for figure in (eps, heat):
        assert ET.fromstring(svg.document(figure.panels, "t")).tag.endswith("svg")  # well-formed
    assert eps_figure(breakdown, "private", "m") is None
    document, caption, alt = record_chart({"breakdown": breakdown}, "public", "m")
    assert ET.fromstring(document).get("height") == str(svg.HEIGHT + heat.panels[0].height)  # one above the other
    assert caption.startswith("From the top: robust accuracy") and alt == f"{eps.alt} {heat.alt}"


def test_check_site_finds_broken_links_and_missing_alt(tmp_path):
    page = tmp_path / "index.html"
    page.write_text('<html><head><meta name="viewport" content="width=device-width"><title>t</title>'
                    '<link rel="stylesheet" href="style.css"></head><body><a href="gone.html">x</a>'
                    '<img src="a.svg"><img src="https://cdn.example/x.png" alt="x"><a href="../up.html">u</a>'
                    '</body></html>')
    (tmp_path / "a.svg").write_text("<svg/>")
    (tmp_path / "style.css").write_text("body { background: url('missing.png') }")
    (tmp_path / "other.html").write_text("<p>no head</p>")
    problems = check_site(tmp_path)
    assert any("gone.html" in p and "names no file" in p for p in problems)
    assert any("without alt" in p for p in problems)
    assert any("external URL 'https://cdn.example/x.png'" in p for p in problems)
    assert any("leaves the site folder" in p for p in problems)
    assert any(p.startswith("style.css") and "missing.png" in p for p in problems)
    assert "other.html: no <title>" in problems and 'other.html: no <meta name="viewport">' in problems
    result = CliRunner().invoke(app, ["site", "check", str(tmp_path)])
    assert result.exit_code == 1


def test_cli_build_and_check(tmp_path, plain_store):
    runner = CliRunner()
    result = runner.invoke(app, ["site", "build", str(plain_store), "--out", str(tmp_path / "site"), "--private"])
    assert result.exit_code == 0, result.output
    assert "7 pages" in result.output and "private partition" in result.output
    result = runner.invoke(app, ["site", "check", str(tmp_path / "site")])
    assert result.exit_code == 0 and "ok" in result.output
    result = runner.invoke(app, ["site", "build", str(plain_store), "--out", str(tmp_path / "s2"),
                                 "--split-hash", "ffff"])
    assert result.exit_code == 2 and "--split-hash ffff: matches no split" in result.output


def test_attack_track_pages(tmp_path, plain_store):
    from harness.scoring.store import AttackRecord, MatrixRecord

    with ResultStore(plain_store) as store:
        defenses = {r.submission: r for r in store.records() if r.status == "scored"}
        for name, status, reason in (("blur-attack", "ok", ""), ("broken", "failed", "crashed: <boom>")):
            attack = AttackRecord(name, "reds", "torch", "submission", "cpu", name.ljust(64, "0"), record(
                "x", "y", 0, 0).split_hash, "0.test", status, reason)
            store.add_attack(attack)
            if status != "ok":
                continue
            for number, defense in enumerate(defenses.values()):
                store.add_matrix(MatrixRecord(name, "submission", attack.key, defense.submission, defense.team,
                                              defense.key, defense.split_hash, "0.test", "scored", metrics={
                                                  "public": {"count": 20, "clean_correct": 10, "fooled": 3 + number,
                                                             "success": (3 + number) / 10}}))
    build_site(plain_store, tmp_path / "site")
    attacks = tmp_path / "site" / "attacks.html"
    board = rows(attacks, "attacks")
    assert [(r[0], r[1]) for r in board] == [("1", "blur-attack"), ("-", "broken")]
    assert board[1][-3:-1] == ["failed", "crashed: <boom>"]  # its reason, as text
    alpha = next((tmp_path / "site" / "submissions").glob("alpha-*.html"))
    assert rows(alpha, "against") == [["blur-attack", "submission", "scored", "30.0", ""]]
    assert 'href="attacks.html"' in (tmp_path / "site" / "index.html").read_text()
    assert check_site(tmp_path / "site") == []


def test_a_contest_before_its_first_result(tmp_path):
    from harness.contest.ledger import ContestEntry, Ledger

    db = tmp_path / "new.sqlite"
    with Ledger(db) as ledger:
        ledger.add(ContestEntry("a/x", "f1", "a", 1_790_000_000, "rejected", reason="invalid: no submission.toml"))
        ledger.set_settings({"name": "Just started", "deadline": 1_800_000_000, "reveal_private": False})
    summary = build_site(db, tmp_path / "site", now=BEFORE)
    assert (summary.pages, summary.contest) == (1, True)
    index = tmp_path / "site" / "index.html"
    assert "No scored submission yet." in index.read_text()
    assert rows(index, "rejected")[0][-1] == "invalid: no submission.toml"
    assert check_site(tmp_path / "site") == []
