"""``harness score`` end to end: real children, hostile submissions, resume after the organiser is killed."""

from __future__ import annotations

import csv
import json
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from harness.plugins import CHILD_PLUGIN_ENV
from harness.sandbox.choice import choose_isolation
from harness.scoring.scorer import entries_from_paths, score_submissions
from harness.scoring.store import ResultStore
from helpers import survivors

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def scored(hidden_split, submissions_dir, tmp_path_factory):
    """The tiny submission and the hostile ones, scored once for every test in this module."""
    out = tmp_path_factory.mktemp("scored")
    db, board = out / "results.sqlite", out / "leaderboard.csv"
    names = ["tiny", "crash", "nan", "few", "snoop"]
    entries = entries_from_paths([submissions_dir / n for n in names])
    score_submissions(entries, hidden_split, db, board, profile="cpu", timeout=240, work_dir=out / "work", threads=1)
    started = time.monotonic()
    score_submissions(entries_from_paths([submissions_dir / "hang"]), hidden_split, db, board, profile="cpu",
                      timeout=8, work_dir=out / "work", threads=1)
    return {"db": db, "board": board, "work": out / "work", "hang_seconds": time.monotonic() - started}


def rows(board: Path, partition: str = "public") -> dict[str, dict[str, str]]:
    with open(board, newline="") as handle:
        return {r["submission"]: r for r in csv.DictReader(handle) if r["partition"] == partition}


def test_honest_submission_is_scored(scored):
    tiny = rows(scored["board"])["tiny"]
    assert tiny["status"] == "scored" and tiny["rank"] == "1"
    assert 0.5 < float(tiny["clean_top1"]) <= 1.0
    assert float(tiny["top1_fgsm"]) < float(tiny["clean_top1"])  # the reference is tiny itself: transfer hurts
    for column in ("top1_clean", "top1_noise", "top1_fgsm", "score", "train_seconds", "predict_seconds"):
        assert tiny[column] != ""
    header = next(csv.reader(open(scored["board"])))
    assert header == ["rank", "submission", "team", "framework", "clean_top1", "clean_top5", "top1_clean",
                      "clean_ci_low", "clean_ci_high", "top1_noise", "noise_ci_low", "noise_ci_high", "top1_fgsm",
                      "fgsm_ci_low", "fgsm_ci_high", "score", "score_ci_low", "score_ci_high", "partition",
                      "train_seconds", "predict_seconds", "status", "reason", "flags", "isolation", "split_hash",
                      "harness_version"]
    assert float(tiny["score_ci_low"]) <= float(tiny["score"]) <= float(tiny["score_ci_high"])
    assert tiny["isolation"] == choose_isolation("auto").kind  # how it was scored, in the published table


@pytest.mark.parametrize("name, reason", [
    ("crash", "crashed: RuntimeError: boom: the submission's training crashed"),
    ("nan", "predictions contain 1200 NaN or infinite values"),
    ("few", "wrong predictions shape (119, 10): expected (120, 10), one row of class scores per hidden image"),
    ("hang", "timeout: no result after 8 s (process group killed)"),
])
def test_bad_submissions_fail_with_their_reason(scored, name, reason):
    row = rows(scored["board"])[name]
    assert (row["status"], row["reason"], row["rank"]) == ("failed", reason, "")


def test_a_hang_is_killed_with_its_whole_process_group(scored):
    assert scored["hang_seconds"] < 60
    assert list(scored["work"].glob("hang-*/work/grandchild.pid")), \
        "the hanging submission should have started a grandchild"
    time.sleep(0.5)
    assert survivors("harness-hang-submission") == []  # its own marker: other workers' tests hang too


def test_snooping_submission_finds_no_labels(scored, hidden_split):
    report = json.loads(next(scored["work"].glob("snoop-*/work/snoop-report.json")).read_text())
    # under bubblewrap the dataset cache is visible read-only for training: its train and val labels are the
    # child's input; the held-out split (the recipe's source, here test) is withheld
    training = re.compile(r"file /sandbox/cache/[^/]+/(train|val)_labels\.npy$")
    assert [found for found in report["found"] if not training.match(found)] == []
    assert not any(str(hidden_split) in arg or "organiser" in arg for arg in report["argv"])
    allowed = ("HARNESS_CACHE_DIR", "HARNESS_DATA_DIR", "HARNESS_DEVICE", *CHILD_PLUGIN_ENV)  # plugin switches
    assert all(not key.startswith("HARNESS_") or key in allowed for key in report["environment"])
    assert rows(scored["board"])["snoop"]["status"] == "scored"  # it predicted, at chance, without the labels


def test_rerun_skips_finished_work(scored, hidden_split, submissions_dir):
    events = []
    entries = entries_from_paths([submissions_dir / n for n in ("tiny", "crash", "hang")])
    score_submissions(entries, hidden_split, scored["db"], scored["board"], profile="cpu", timeout=8,
                      work_dir=scored["work"], on_event=lambda kind, entry, detail: events.append((kind, entry.name)))
    assert events == [("cached", "tiny"), ("cached", "crash"), ("cached", "hang")]
    with ResultStore(scored["db"]) as store:
        assert sorted(r.submission for r in store.records()) == ["crash", "few", "hang", "nan", "snoop", "tiny"]
    events.clear()
    score_submissions(entries[1:2], hidden_split, scored["db"], scored["board"], profile="cpu", timeout=60,
                      work_dir=scored["work"], retry_failed=True,
                      on_event=lambda kind, entry, detail: events.append((kind, entry.name)))
    assert events == [("running", "crash"), ("failed", "crash")]  # retried, failed again, still one row
    with ResultStore(scored["db"]) as store:
        assert [r.submission for r in store.records()].count("crash") == 1


def test_leaderboard_command_public_and_private(scored):
    from typer.testing import CliRunner

    from harness.cli.main import app

    runner = CliRunner()
    public = runner.invoke(app, ["leaderboard", str(scored["board"])], env={"COLUMNS": "200"})
    assert public.exit_code == 0, public.output
    assert "public leaderboard" in public.output and "tiny" in public.output
    assert "crash: failed: crashed: RuntimeError" in public.output
    private = runner.invoke(app, ["leaderboard", str(scored["db"]), "--private"], env={"COLUMNS": "200"})
    assert private.exit_code == 0 and "private leaderboard" in private.output
    missing = runner.invoke(app, ["leaderboard", "nowhere.csv"])
    assert missing.exit_code == 2 and "nowhere.csv: no such leaderboard CSV or results store" in missing.output


def test_killed_organiser_resumes_without_lost_or_duplicated_rows(hidden_split, submissions_dir, tmp_path):
    folder = tmp_path / "subs"
    for name in ("one", "two"):  # killed after the first: the second is lost work the rerun must do
        shutil.copytree(submissions_dir / "tiny", folder / name)
        text = (folder / name / "submission.toml").read_text().replace('name = "tiny"', f'name = "{name}"')
        (folder / name / "submission.toml").write_text(text.replace("epochs = 4", "epochs = 1"))
    db, board = tmp_path / "results.sqlite", tmp_path / "board.csv"
    command = [sys.executable, "-m", "harness.cli.main", "score", str(folder), "--split", str(hidden_split),
               "-P", "cpu", "--db", str(db), "--leaderboard", str(board), "--work-dir", str(tmp_path / "work"),
               "--threads", "1"]
    organiser = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    count = 0
    while time.monotonic() < deadline and count < 1:
        time.sleep(0.2)
        if db.exists():
            try:
                count = sqlite3.connect(db).execute("SELECT COUNT(*) FROM results").fetchone()[0]
            except sqlite3.OperationalError:
                count = 0
    assert count == 1, "the first submission should be scored before the kill"
    organiser.send_signal(signal.SIGKILL)
    organiser.wait()
    first = sqlite3.connect(db).execute("SELECT submission, finished_at FROM results").fetchall()
    with open(board, newline="") as handle:  # the CSV on disk is complete and parseable
        assert [r["submission"] for r in csv.DictReader(handle)] == ["one", "one"]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, timeout=400)
    rows_after = sqlite3.connect(db).execute("SELECT submission, finished_at FROM results").fetchall()
    assert sorted(r[0] for r in rows_after) == ["one", "two"]
    assert first[0] in rows_after  # the finished row was kept, not redone
    with open(board, newline="") as handle:
        assert len(list(csv.DictReader(handle))) == 4


def test_a_given_artifact_of_a_submission_with_its_own_plugins_is_scored(hidden_split, submissions_dir, tmp_path):
    """--artifact: the child registers the plugin modules of its own copy of the submission (the organiser's path
    is not in its view) before rebuilding the model; before, this crashed with "Unknown backbone 'nan-net'"."""
    from harness.submission import load_submission
    from harness.workflow import train_submission

    folder = shutil.copytree(submissions_dir / "nan", tmp_path / "nan")
    artifact = train_submission(load_submission(folder, "cpu"), tmp_path / "model", progress=False)
    board = tmp_path / "leaderboard.csv"
    score_submissions(entries_from_paths([folder], {"nan": artifact}), hidden_split, tmp_path / "results.sqlite",
                      board, profile="cpu", timeout=120, work_dir=tmp_path / "work", threads=1)
    row = rows(board)["nan"]
    assert (row["status"], row["reason"]) == ("failed", "predictions contain 1200 NaN or infinite values")


@pytest.mark.parametrize("name, edit, profile, reason", [
    ("tiny", None, "gpu", "profiles: no profile 'gpu'. Did you mean 'cpu'? Profiles: cpu"),
    ("crash", None, "gpu", "profiles: no profile 'gpu'."),  # with plugin modules of its own: the TOML-only checks
    ("tiny", ("[defense]", "[defense\n"), "cpu", "not valid TOML"),
    ("tiny", ('name = "standard"', 'name = "nonexistent"'), "cpu", "defense.name: "),
    ("tiny", ("seed = 0", "seed = 0\nsede = 1"), "cpu", "sede: unknown field"),
])
def test_what_validate_finds_is_recorded_invalid_before_any_child(hidden_split, submissions_dir, tmp_path,
                                                                  monkeypatch, name, edit, profile, reason):
    import harness.scoring.scorer as scorer

    def no_child(*args, **kwargs):
        raise AssertionError("a child was started for an invalid submission")

    monkeypatch.setattr(scorer, "run_both_phases", no_child)
    folder = tmp_path / name
    shutil.copytree(submissions_dir / name, folder)
    if edit:
        toml = folder / "submission.toml"
        toml.write_text(toml.read_text().replace(*edit))
    events = []
    records = score_submissions(entries_from_paths([folder]), hidden_split, tmp_path / "r.sqlite",
                                tmp_path / "b.csv", profile=profile, work_dir=tmp_path / "work",
                                on_event=lambda kind, entry, detail: events.append(kind))
    assert [(r.submission, r.status) for r in records] == [(name, "invalid")] and events == ["invalid"]
    assert reason in records[0].reason and str(tmp_path) not in records[0].reason
    assert "\n" not in records[0].reason
    assert not (tmp_path / "work").exists()
