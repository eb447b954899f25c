"""Hostile submissions scored by the real scorer: each fails with its reason (or scores without the labels),
finds no labels, changes nothing outside its scratch folder and leaves the honest submission's score as it was.

``peek`` hunts the whole file system, /proc, signals, the network and writable folders, with the organiser's
real paths, pid and listening sockets planted in its ``targets.json``; under the default sandbox every one
of its success lists must be empty. A control run in a plain child (``PLAIN``) against copies proves the
hunter finds what is there to find.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import os
import shutil
import socket
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from harness.sandbox.choice import choose_isolation
from harness.sandbox.child import LOG_CAP, STDERR_TAIL
from harness.scoring.scorer import entries_from_paths, score_submissions
from harness.scoring.split import verify_split
from harness.scoring.store import ResultStore

from helpers import survivors

pytestmark = pytest.mark.slow

#: the plain child process, no isolation beyond limits
PLAIN = "none"
#: the isolation the hostile submissions face: the default (auto), or e.g. landlock or bwrap to try that one
SANDBOX = os.environ.get("HARNESS_TEST_SANDBOX", "auto")
#: peek's report: one list of successes per behaviour
BEHAVIOURS = ("found", "image_copies", "proc", "signals", "network", "wrote")
LISTENERS = ("tcp", "udp", "unix_path", "unix_abstract")


def tree_digest(folder: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        digest.update(str(path.relative_to(folder)).encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def metrics_of(db: Path, name: str) -> dict:
    with ResultStore(db) as store:
        return next(r.metrics for r in store.records() if r.submission == name)


@pytest.fixture(scope="module")
def baseline(hidden_split, submissions_dir, tiny_artifact, tmp_path_factory):
    """The honest submission alone."""
    out = tmp_path_factory.mktemp("baseline")
    entries = entries_from_paths([submissions_dir / "tiny"], {"tiny": tiny_artifact})
    score_submissions(entries, hidden_split, out / "db.sqlite", out / "board.csv", profile="cpu", timeout=240,
                      work_dir=out / "work", threads=1)
    return metrics_of(out / "db.sqlite", "tiny")


@contextlib.contextmanager
def listeners():
    """TCP, UDP, UNIX pathname and abstract sockets listening here: {name: socket}, and their targets.json keys."""
    folder = Path(tempfile.mkdtemp(prefix="peek-"))  # short: a UNIX socket path has at most 107 bytes
    made = {"tcp": socket.socket(socket.AF_INET, socket.SOCK_STREAM),
            "udp": socket.socket(socket.AF_INET, socket.SOCK_DGRAM),
            "unix_path": socket.socket(socket.AF_UNIX, socket.SOCK_STREAM),
            "unix_abstract": socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)}
    abstract = f"harness-peek-{uuid.uuid4().hex}"
    try:
        made["tcp"].bind(("127.0.0.1", 0))
        made["udp"].bind(("127.0.0.1", 0))
        made["unix_path"].bind(str(folder / "organiser.sock"))
        made["unix_abstract"].bind("\0" + abstract)
        for name in ("tcp", "unix_path", "unix_abstract"):
            made[name].listen(8)
        keys = {"tcp": list(made["tcp"].getsockname()), "udp": list(made["udp"].getsockname()),
                "unix_path": str(folder / "organiser.sock"), "unix_abstract": abstract}
        yield made, keys
    finally:
        for sock in made.values():
            sock.close()
        shutil.rmtree(folder, ignore_errors=True)


def received(made: dict[str, socket.socket]) -> list[str]:
    """The listeners that got a connection or a datagram (without waiting)."""
    got = []
    for name, sock in made.items():
        sock.setblocking(False)
        try:
            if name == "udp":
                sock.recv(4096)
            else:
                sock.accept()[0].close()
            got.append(name)
        except BlockingIOError:
            pass
    return got


def heldout_files(dataset: str = "digits", source: str = "test") -> list[str]:
    """File names of the held-out split in the session's dataset cache (what the sandbox must withhold)."""
    names = set()
    for manifest in Path(os.environ["HARNESS_CACHE_DIR"]).glob("*/manifest.json"):
        data = json.loads(manifest.read_text())
        if data.get("dataset") == dataset and source in data.get("splits", {}):
            names |= {entry["file"] for entry in data["splits"][source]["files"].values()}
    return sorted(names)


def organiser_targets(split: Path, out: Path, *, db: Path, board: Path, outside: Path, other: Path,
                      harness_dir: Path, stdlib_dir: Path, sockets: dict) -> dict:
    """targets.json for peek: the organiser's real paths, pid and listeners (a perfect guesser)."""
    names = heldout_files()
    assert names, "the session cache holds no held-out split files"
    return {"split": str(split), "labels": str(split / "organiser" / "labels.npy"), "db": str(db),
            "leaderboard": str(board), "outside": str(outside), "canary": str(outside / "canary.txt"),
            "work": str(out / "work"), "other_submission": str(other), "harness_dir": str(harness_dir),
            "stdlib_dir": str(stdlib_dir), "organiser_pid": os.getpid(), "heldout_files": names, **sockets}


def real_code_dirs() -> list[Path]:
    import harness

    return [Path(harness.__file__).resolve().parent, Path(json.__file__).resolve().parent.parent]


@pytest.fixture(scope="module")
def hostile(hidden_split, submissions_dir, tiny_artifact, tmp_path_factory):
    """tiny + every hostile submission in one store, against this module's copy of the split; peek last and
    alone, so that what a leaking sandbox would let it vandalise cannot stop the others' runs."""
    out = tmp_path_factory.mktemp("hostile")
    split = out / "split"
    shutil.copytree(hidden_split, split)
    db, board, outside = out / "results.sqlite", out / "leaderboard.csv", out / "outside"
    outside.mkdir()
    (outside / "canary.txt").write_text("untouched\n")
    subs = out / "subs"
    names = ["tiny", "flood", "hog", "peek"]
    for name in names + ["forkbomb"]:
        shutil.copytree(submissions_dir / name, subs / name)
    digests = {name: tree_digest(subs / name) for name in names + ["forkbomb"]}
    score_submissions(entries_from_paths([subs / n for n in ("tiny", "flood", "hog")], {"tiny": tiny_artifact}),
                      split, db, board, profile="cpu", timeout=240, work_dir=out / "work", threads=1, memory_gb=4,
                      sandbox=SANDBOX)
    with ResultStore(db) as store:
        before = {r.submission: (r.status, r.reason, r.finished_at) for r in store.records()}
    started = time.monotonic()
    score_submissions(entries_from_paths([subs / "forkbomb"]), split, db, board, profile="cpu", timeout=14,
                      work_dir=out / "work", threads=1, sandbox=SANDBOX)
    bomb_seconds = time.monotonic() - started
    planted = [folder / "planted.txt" for folder in real_code_dirs()]
    existed = {path for path in planted if path.exists()}
    with listeners() as (made, sockets):
        targets = organiser_targets(split, out, db=db, board=board, outside=outside, other=subs / "tiny",
                                    harness_dir=real_code_dirs()[0], stdlib_dir=real_code_dirs()[1], sockets=sockets)
        (subs / "peek" / "targets.json").write_text(json.dumps(targets))
        digests["peek"] = tree_digest(subs / "peek")  # with its targets.json
        try:
            score_submissions(entries_from_paths([subs / "peek"]), split, db, board, profile="cpu", timeout=240,
                              work_dir=out / "work", threads=1, memory_gb=4, sandbox=SANDBOX)
            got = received(made)
        finally:
            strays = [path for path in planted if path.exists() and path not in existed]
            for path in strays:  # a leaking sandbox wrote into the real code: undo it
                path.unlink()
    return {"db": db, "board": board, "work": out / "work", "outside": outside, "subs": subs, "names": names,
            "digests": digests, "before": before, "bomb_seconds": bomb_seconds, "split": split,
            "targets": targets, "received": got, "strays": strays}


def row(board: Path, name: str) -> dict[str, str]:
    with open(board, newline="") as handle:
        return next(r for r in csv.DictReader(handle) if r["submission"] == name and r["partition"] == "public")


def test_honest_score_is_unchanged_by_hostile_neighbours(hostile, baseline):
    assert metrics_of(hostile["db"], "tiny") == baseline
    assert row(hostile["board"], "tiny")["status"] == "scored"


def test_memory_hog_is_stopped_by_the_address_space_limit(hostile):
    hog = row(hostile["board"], "hog")
    assert (hog["status"], hog["reason"]) == ("failed", "crashed: MemoryError")


def test_flood_is_capped_and_still_scored(hostile):
    assert row(hostile["board"], "flood")["status"] == "scored"
    logs = next(hostile["work"].glob("flood-*"))
    for name in ("stdout.log", "stderr.log"):
        size = (logs / name).stat().st_size
        assert LOG_CAP <= size <= LOG_CAP + STDERR_TAIL + 200, (name, size)
        assert b"[harness: log capped at" in (logs / name).read_bytes()


def test_fork_bomb_is_killed_whole_on_timeout(hostile):
    bomb = row(hostile["board"], "forkbomb")
    assert (bomb["status"], bomb["reason"]) == ("failed", "timeout: no result after 14 s (process group killed)")
    assert hostile["bomb_seconds"] < 90
    forks = next(hostile["work"].glob("forkbomb-*/work/forks.txt"))
    assert int(forks.read_text()) > 0
    time.sleep(0.5)
    assert survivors("harness-forkbomb-marker") == []


def test_peek_finds_reads_reaches_and_writes_nothing(hostile):
    """Under the default sandbox the perfect guesser gets nothing, though it tried everything."""
    report = json.loads(next(hostile["work"].glob("peek-*/work/peek-report.json")).read_text())
    assert report["targets_read"] and report["errors"] == []
    assert {name: report["tried"][name] > 0 for name in BEHAVIOURS} == dict.fromkeys(BEHAVIOURS, True)
    if not choose_isolation(SANDBOX).mapped:  # Landlock, no PID namespace: other processes' command lines
        # are world-readable (documented: paths, never contents); every other /proc read must still fail
        assert all(entry.startswith("cmdline ") for entry in report["proc"]), report["proc"]
        report["proc"] = []
    assert {name: report[name] for name in BEHAVIOURS} == {name: [] for name in BEHAVIOURS}
    assert report["walk"]["capped"] is None  # it walked everything it could see
    assert hostile["received"] == [] and hostile["strays"] == []
    if choose_isolation(SANDBOX).mapped:  # Landlock has no mount namespace: the child names real paths
        assert report["cwd"] == "/sandbox/work"  # the same whatever the organiser's folders are
        code = ("harness_dir", "stdlib_dir")  # code folders: shown read-only at their own paths, by design
        paths = [v for k, v in hostile["targets"].items() if k not in code and isinstance(v, str) and v[:1] == "/"]
        assert not any(p in arg or "organiser" in arg or "pytest" in arg for arg in report["argv"] for p in paths)
    assert row(hostile["board"], "peek")["status"] == "scored"  # predicted at chance, without the labels
    assert row(hostile["board"], "peek")["isolation"] == choose_isolation(SANDBOX).kind  # recorded with the result


def test_nothing_outside_scratch_changed(hostile):
    verify_split(hostile["split"])  # no file of the split changed, added or removed
    assert [p.name for p in hostile["outside"].iterdir()] == ["canary.txt"]
    assert (hostile["outside"] / "canary.txt").read_text() == "untouched\n"
    for name, digest in hostile["digests"].items():
        assert tree_digest(hostile["subs"] / name) == digest, f"{name}'s folder changed"
    with ResultStore(hostile["db"]) as store:
        records = {r.submission: (r.status, r.reason, r.finished_at) for r in store.records()}
    assert sorted(records) == sorted(hostile["names"] + ["forkbomb"])  # one row each, none added or removed
    assert {k: v for k, v in records.items() if k in hostile["before"]} == hostile["before"]  # forkbomb, peek
    with open(hostile["board"], newline="") as handle:
        assert len(list(csv.DictReader(handle))) == 2 * len(records)


def test_fork_bomb_in_a_plain_process_is_killed_whole(hidden_split, submissions_dir, tmp_path):
    """The same without bubblewrap: the process group (and RLIMIT_NPROC, for users other than root)."""
    score_submissions(entries_from_paths([submissions_dir / "forkbomb"]), hidden_split, tmp_path / "db.sqlite",
                      tmp_path / "board.csv", profile="cpu", timeout=14, work_dir=tmp_path / "work", threads=1,
                      sandbox=PLAIN)
    bomb = row(tmp_path / "board.csv", "forkbomb")
    assert (bomb["status"], bomb["reason"]) == ("failed", "timeout: no result after 14 s (process group killed)")
    time.sleep(0.5)
    assert survivors("harness-forkbomb-marker") == []


def test_peek_in_a_plain_process_finds_reaches_and_writes(hidden_split, submissions_dir, tmp_path):
    """The control: in a plain child (root can do all of it) the hunter finds, reads, signals, connects and
    writes, so its empty lists under the sandbox mean something. Every target is a copy or a decoy here."""
    split, decoys, subs = tmp_path / "split", tmp_path / "decoys", tmp_path / "subs"
    shutil.copytree(hidden_split, split)
    (decoys / "outside").mkdir(parents=True)
    (decoys / "outside" / "canary.txt").write_text("untouched\n")
    for name in ("results.sqlite", "leaderboard.csv"):
        (decoys / name).write_text("decoy\n")
    for name in ("harness", "stdlib"):
        (decoys / name).mkdir()
    for name in ("peek", "tiny"):
        shutil.copytree(submissions_dir / name, subs / name)
    with listeners() as (made, sockets):
        targets = organiser_targets(split, tmp_path, db=decoys / "results.sqlite", board=decoys / "leaderboard.csv",
                                    outside=decoys / "outside", other=subs / "tiny", harness_dir=decoys / "harness",
                                    stdlib_dir=decoys / "stdlib", sockets=sockets)
        (subs / "peek" / "targets.json").write_text(json.dumps(targets))
        started = time.monotonic()
        score_submissions(entries_from_paths([subs / "peek"]), split, tmp_path / "db.sqlite", tmp_path / "board.csv",
                          profile="cpu", timeout=240, work_dir=tmp_path / "work", threads=1, memory_gb=4,
                          sandbox=PLAIN)
        seconds = time.monotonic() - started
        got = received(made)
    report = json.loads(next((tmp_path / "work").glob("peek-*/work/peek-report.json")).read_text())
    print(f"control run: {seconds:.1f} s, walk {report['walk']}, step seconds {report['seconds']}")
    assert report["errors"] == [] and report["targets_read"]
    pid = os.getpid()
    assert str(split / "organiser" / "labels.npy") in report["found"]
    assert str(split / "images" / "images.npy") in report["image_copies"]
    assert {Path(p).name for p in report["found"]} >= set(targets["heldout_files"])  # the session cache's
    # its environment and memory (its command line names the organiser only when pytest runs in this process,
    # not in a pytest-xdist worker started by python -c)
    assert {f"environ {pid}", f"maps {pid}", f"mem {pid}"} <= set(report["proc"])
    assert f"kill0 {pid}" in report["signals"]
    assert f"tcp 127.0.0.1:{sockets['tcp'][1]}" in report["network"]
    assert sorted(got) == sorted(LISTENERS)  # and the listeners did receive
    assert str(subs / "tiny" / "planted.txt") in report["wrote"]
    assert (subs / "tiny" / "submission.toml").read_text().endswith("peek was here\n")
    wrote = {Path(p) for p in report["wrote"]}
    allowed = [split, decoys, subs, tmp_path / "work"]
    assert all(any(p.is_relative_to(a) for a in allowed) for p in wrote), wrote  # copies and decoys only
