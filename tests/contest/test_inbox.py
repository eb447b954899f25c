"""The inbox on folders alone (nothing scored): what is an entry, settling, arrival times and order, snapshots."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

from contest_helpers import tiny_copy
from harness.contest.inbox import InboxWatch, fingerprint, scan_inbox, take
from harness.pack import pack_submission
from harness.submission import content_hash

DAY = 86400.0
T0 = 1_800_000_000.0  # 2027-01-15 08:00 UTC


def set_mtime(path: Path, seconds: float) -> None:
    for item in [path, *path.rglob("*")] if path.is_dir() else [path]:
        os.utime(item, (seconds, seconds))


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_team_folders_top_level_entries_and_ignored_names(tmp_path):
    inbox = tmp_path / "inbox"
    tiny_copy(inbox / "alpha" / "first", team="alpha")
    pack_submission(tiny_copy(tmp_path / "packed", team="alpha", name="packed"), inbox / "alpha" / "packed.tar.gz")
    tiny_copy(inbox / "solo", team="beta")
    pack_submission(inbox / "solo", inbox / "solo.tar.gz")
    (inbox / "alpha" / "upload.tar.gz.part").write_bytes(b"half")
    (inbox / "alpha" / "notes.txt").write_text("not an entry")
    tiny_copy(inbox / "alpha" / ".hidden", team="alpha")
    tiny_copy(inbox / ".trash" / "old", team="alpha")
    (inbox / "alpha" / "later.tmp").mkdir()
    (inbox / "empty-team").mkdir()
    os.symlink(inbox / "solo", inbox / "alpha" / "link")
    found = {item.inbox_path: (item.kind, item.team_folder) for item in scan_inbox(inbox)}
    assert found == {"alpha/first": ("folder", "alpha"), "alpha/packed.tar.gz": ("archive", "alpha"),
                     "alpha/link": ("link", "alpha"), "solo": ("folder", None), "solo.tar.gz": ("archive", None)}


def test_settle_arrival_order_and_mtime_cap(tmp_path):
    inbox = tmp_path / "inbox"
    clock = Clock(T0)
    watch = InboxWatch(inbox, settle_seconds=5, clock=clock)
    set_mtime(tiny_copy(inbox / "beta" / "b", team="beta"), T0 - 100)
    set_mtime(tiny_copy(inbox / "alpha" / "a", team="alpha"), T0 - 100)  # same time: the inbox path decides
    set_mtime(tiny_copy(inbox / "gamma" / "g", team="gamma"), T0 - 300)
    set_mtime(tiny_copy(inbox / "delta" / "future", team="delta"), T0 + DAY)  # a clock ahead: capped
    assert watch.poll() == []  # first seen now: nothing settled yet
    once = InboxWatch(inbox, settle_seconds=5, clock=clock).poll(settle=False)  # --once: no settle wait
    assert [a.item.inbox_path for a in once] == ["gamma/g", "alpha/a", "beta/b", "delta/future"]
    clock.now = T0 + 4
    (inbox / "alpha" / "a" / "extra.py").write_text("x = 1\n")  # still being written
    set_mtime(inbox / "alpha" / "a" / "extra.py", T0 + 4)
    clock.now = T0 + 6
    settled = {a.item.inbox_path: a.arrived_at for a in watch.poll()}
    assert settled == {"gamma/g": T0 - 300, "beta/b": T0 - 100, "delta/future": T0}
    clock.now = T0 + 10.5
    assert "alpha/a" not in {a.item.inbox_path for a in watch.poll()}  # changed at the T0 + 6 poll
    clock.now = T0 + 11
    settled = {a.item.inbox_path: a.arrived_at for a in watch.poll()}
    assert settled["alpha/a"] == T0  # 5 s unchanged; it arrived when first seen, before its last change


def test_a_new_version_at_the_same_path_arrives_anew(tmp_path):
    inbox = tmp_path / "inbox"
    clock = Clock(T0)
    watch = InboxWatch(inbox, settle_seconds=0, clock=clock)
    folder = tiny_copy(inbox / "alpha" / "a", team="alpha")
    set_mtime(folder, T0 + 50)
    [first] = watch.poll()
    assert first.arrived_at == T0  # its files claim a later time than it was seen
    clock.now = T0 + DAY
    (folder / "submission.toml").write_text((folder / "submission.toml").read_text() + "\n# v2\n")
    set_mtime(folder, T0 + DAY + 60)
    [second] = watch.poll()
    assert second.arrived_at == T0 + DAY and second.item.signature != first.item.signature


def test_take_snapshots_folders_and_archives(tmp_path):
    inbox, into = tmp_path / "inbox", tmp_path / "work"
    folder = tiny_copy(inbox / "alpha" / "a", team="alpha")
    (folder / "__pycache__").mkdir()
    (folder / "__pycache__" / "x.pyc").write_bytes(b"cache")
    pack_submission(folder, inbox / "alpha" / "a.tar.gz")
    items = {item.inbox_path: item for item in scan_inbox(inbox)}
    snapshot = take(items["alpha/a"], into)
    assert not snapshot.problem and snapshot.fingerprint == content_hash(folder) == fingerprint(items["alpha/a"])
    assert content_hash(snapshot.folder) == content_hash(folder) and not (snapshot.folder / "__pycache__").exists()
    (folder / "submission.toml").write_text("changed after the snapshot")  # the snapshot stays as taken
    assert content_hash(snapshot.folder) != content_hash(folder)
    unpacked = take(items["alpha/a.tar.gz"], into)
    assert not unpacked.problem and unpacked.fingerprint == fingerprint(items["alpha/a.tar.gz"])
    assert unpacked.folder == snapshot.folder  # same content, one snapshot


def test_take_refuses_links_and_unsafe_archives(tmp_path):
    inbox, into = tmp_path / "inbox", tmp_path / "work"
    secret = tmp_path / "labels.npy"
    secret.write_text("organiser only")
    folder = tiny_copy(inbox / "alpha" / "peek", team="alpha")
    os.symlink(secret, folder / "labels.npy")
    os.symlink(secret, inbox / "alpha" / "link.tar.gz")
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w:gz") as tar:
        info = tarfile.TarInfo("../escape.txt")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"hi"))
    (inbox / "alpha" / "evil.tar.gz").write_bytes(raw.getvalue())
    (inbox / "alpha" / "junk.tar.gz").write_bytes(b"not gzip")
    problems = {item.inbox_path: take(item, into) for item in scan_inbox(inbox)}
    assert {path: taken.folder for path, taken in problems.items()} == dict.fromkeys(problems)
    assert problems["alpha/peek"].problem == "alpha/peek: a folder holding a link or special file, refused"
    assert problems["alpha/link.tar.gz"].problem == "alpha/link.tar.gz: a symbolic link, refused"
    evil = problems["alpha/evil.tar.gz"].problem
    assert "alpha/evil.tar.gz: member '../escape.txt' points outside the archive" in evil
    assert problems["alpha/junk.tar.gz"].problem.startswith("alpha/junk.tar.gz: not a readable submission archive")
    assert str(tmp_path) not in "".join(t.problem for t in problems.values())  # no organiser path in a reason
    assert not (tmp_path / "escape.txt").exists() and not any(into.glob("*/labels.npy"))
