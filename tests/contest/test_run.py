"""``harness contest run``: one real end-to-end pass (two teams' tiny submissions trained and scored, one
rejected), a rerun that changes nothing, and the background update that scoring never waits for."""

from __future__ import annotations

import csv
import json
import os
import sys
import threading
import time
import zlib

import numpy as np
import pytest

from contest_helpers import tiny_copy, write_contest
from harness.cli.contest_cmd import site_updater
from harness.contest.ledger import Ledger
from harness.contest.runner import UPDATE_NICENESS, BackgroundUpdate, run_contest
from harness.pack import pack_submission
from harness.site import check_site

pytest.importorskip("torch")


def fake_child(started: list[float]):
    """A scoring child replaced by instant seeded logits (records when each one started)."""

    def run(entry, profile, images, scratch, *rest, **options):
        started.append(time.monotonic())
        count = len(np.load(images, mmap_mode="r"))
        logits = np.random.default_rng(zlib.crc32(entry.name.encode())).normal(size=(count, 10))
        (scratch / "work").mkdir(parents=True, exist_ok=True)
        np.save(scratch / "work" / "predictions.npy", logits.astype(np.float32))
        (scratch / "work" / "result.json").write_text(json.dumps({"train_seconds": 0.0, "predict_seconds": 0.0}))
        time.sleep(0.2)
        return "ok", ""

    return run


@pytest.fixture
def fake_children(monkeypatch) -> list[float]:
    """Scoring children replaced by instant seeded logits (the organiser's side all real); when each started."""
    from harness.scoring import scorer

    started: list[float] = []
    monkeypatch.setattr(scorer, "run_both_phases", fake_child(started))
    return started


def test_once_end_to_end_then_a_rerun_changes_nothing(tmp_path, contest_recipe, fake_children):
    inbox = tmp_path / "inbox"
    tiny_copy(inbox / "alpha" / "tiny", team="alpha")
    pack_submission(tiny_copy(tmp_path / "beta-tiny", team="beta"), inbox / "beta" / "tiny.tar.gz")
    tiny_copy(inbox / "beta" / "typo", team="beta", name="typo", changes={"small-cnn": "small-cnm"})
    contest = write_contest(tmp_path, f'name = "e2e"\nrecipe = "{contest_recipe}"\nsandbox = "none"\n')
    out = tmp_path / "runs" / "e2e"
    run = run_contest(contest, inbox, once=True, progress=False,
                      on_update=site_updater(out / "results.sqlite", out / "site"))
    with Ledger(out / "results.sqlite") as ledger:
        entries, settings = ledger.entries(), ledger.settings()
    assert [(e.inbox_path, e.team, e.status, e.submission) for e in entries] == [
        ("alpha/tiny", "alpha", "accepted", "alpha.tiny.v1"), ("beta/tiny.tar.gz", "beta", "accepted", "beta.tiny.v1"),
        ("beta/typo", "beta", "rejected", "")]
    assert "backbone.name" in entries[2].reason and "Did you mean 'small-cnn'?" in entries[2].reason
    assert settings["name"] == "e2e" and settings["split_hash"] == run.split_hash and settings["updated_at"] > 0
    records = {r.submission: r for r in run.records}
    assert sorted(records) == ["alpha.tiny.v1", "beta.tiny.v1"] and len(fake_children) == 2
    assert [(records[n].status, records[n].team) for n in sorted(records)] == [("scored", "alpha"), ("scored", "beta")]
    assert records["beta.tiny.v1"].details["spec"] == entries[1].spec and 'team = "beta"' in entries[1].spec
    with open(out / "leaderboard.csv", newline="") as handle:
        board = list(csv.DictReader(handle))
    assert sorted(r["submission"] for r in board) == sorted(2 * list(records))
    with open(out / "leaderboard-teams.csv", newline="") as handle:  # each team's best: one entry each here
        teams = [(r["team"], r["submission"]) for r in csv.DictReader(handle) if r["partition"] == "public"]
    assert sorted(teams) == [("alpha", "alpha.tiny.v1"), ("beta", "beta.tiny.v1")]
    # the site, rebuilt in the background and once more at the end: both teams ranked, the rejection explained
    assert check_site(out / "site") == []
    index = (out / "site" / "index.html").read_text()
    assert "alpha.tiny.v1" in index and "beta.tiny.v1" in index and "beta/typo" in index
    assert "small-cnm" in index and "e2e" in index
    manifest = (out / "split" / "manifest.json").stat().st_mtime_ns
    again = run_contest(contest, inbox, once=True, progress=False)  # split reused, everything recorded and stored
    assert (out / "split" / "manifest.json").stat().st_mtime_ns == manifest and len(fake_children) == 2
    assert again.entries == entries and [r.finished_at for r in again.records] == [r.finished_at for r in run.records]


#: tiny made smaller still: one epoch of a narrower network (seconds, most of them the child's start)
SMALLER = {"epochs = 2": "epochs = 1", "width = 16, hidden = 64": "width = 8, hidden = 32"}


@pytest.mark.slow
def test_a_real_child_trains_and_scores_an_archive_entry(tmp_path, contest_split):
    inbox = tmp_path / "inbox"
    pack_submission(tiny_copy(tmp_path / "tiny", team="gamma", changes=SMALLER), inbox / "gamma" / "tiny.tar.gz")
    contest = write_contest(tmp_path, f'name = "real"\nsplit = "{contest_split}"\nsandbox = "none"\n'
                                      'timeout = 300\nexplain = 0\n')
    [record] = run_contest(contest, inbox, once=True, progress=False).records
    assert (record.submission, record.team, record.status) == ("gamma.tiny.v1", "gamma", "scored"), record.reason
    assert record.metrics["public"]["score"] > 0.3  # trained, not guessing (10 classes)


def test_a_slow_update_runs_beside_scoring(tmp_path, contest_split, fake_children):
    started = fake_children
    inbox = tmp_path / "inbox"
    for team in ("alpha", "beta", "gamma", "delta"):
        tiny_copy(inbox / team / "tiny", team=team)
    contest = write_contest(tmp_path, f'name = "bg"\nsplit = "{contest_split}"\nsandbox = "none"\n')
    updates: list[tuple[float, float]] = []

    def slow_update() -> None:
        begun = time.monotonic()
        time.sleep(0.5)
        updates.append((begun, time.monotonic()))

    run = run_contest(contest, inbox, once=True, on_update=slow_update, progress=False)
    assert [r.status for r in run.records] == ["scored"] * 4 and len(started) == 4
    assert any(begun < child < ended for begun, ended in updates for child in started), (updates, started)
    assert 1 < len(updates) < 4 + 4  # coalesced: fewer runs than the 4 recorded entries and 4 stored results
    assert updates[-1][0] > started[-1]  # the last one ran after the last result


def test_background_update_coalesces_and_survives_errors():
    gate, calls, lines = threading.Event(), [], []

    def callback() -> None:
        calls.append(time.monotonic())
        gate.wait(5)
        if len(calls) == 1:
            raise RuntimeError("disk full")

    update = BackgroundUpdate(callback, lines.append)
    for _ in range(20):  # one running (blocked), the rest coalesce into one waiting
        update.poke()
        time.sleep(0.005)
    gate.set()
    update.close()
    assert len(calls) == 2 and lines == ["update failed: RuntimeError: disk full"]


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="a thread's own niceness is Linux's")
def test_background_update_runs_below_the_scoring_priority():
    seen = []
    with BackgroundUpdate(lambda: seen.append(os.getpriority(os.PRIO_PROCESS, threading.get_native_id()))) as update:
        update.poke()
    assert seen == [min(os.getpriority(os.PRIO_PROCESS, 0) + UPDATE_NICENESS, 19)]
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == os.getpriority(os.PRIO_PROCESS, 0)
