"""harness submission pack: reproducible archives named by content hash; hostile archives refused on unpack."""

from __future__ import annotations

import io
import re
import tarfile

import pytest

from harness.errors import UsageError
from harness.pack import pack_submission, unpack_submission
from harness.scaffold import new_submission
from harness.submission import content_hash


@pytest.fixture
def submission(tmp_path):
    folder = new_submission("alpha", out=tmp_path / "src", with_plugin=True)
    for junk in ("runs/alpha/cpu/model.json", "__pycache__/team_plugins.cpython-311.pyc", ".hidden"):
        (folder / junk).parent.mkdir(parents=True, exist_ok=True)
        (folder / junk).write_text("not part of the submission")
    return folder


def test_packing_twice_gives_identical_bytes_named_by_content_hash(submission, tmp_path):
    (tmp_path / "a").mkdir()
    first = pack_submission(submission, tmp_path / "a")
    second = pack_submission(submission, tmp_path / "b.tar.gz")
    assert first.name == f"alpha-{content_hash(submission)[:12]}.tar.gz"
    assert first.read_bytes() == second.read_bytes()
    assert first.read_bytes()[4:8] == b"\0\0\0\0"  # gzip mtime 0
    with tarfile.open(first) as tar:
        members = tar.getmembers()
    assert [m.name for m in members] == ["submission.toml", "team_plugins.py", "test_team_plugins.py"]
    assert {(m.mtime, m.uid, m.gid, m.mode, m.uname) for m in members} == {(0, 0, 0, 0o644, "")}


def test_unpacked_archive_has_the_same_content_hash(submission, tmp_path):
    archive = pack_submission(submission, tmp_path / "x.tar.gz")
    folder = unpack_submission(archive, tmp_path / "out" / "alpha")
    assert content_hash(folder) == content_hash(submission)


def test_out_must_be_a_tar_gz(submission, tmp_path):
    with pytest.raises(UsageError, match="ends with .tar.gz"):
        pack_submission(submission, tmp_path / "x.zip")


def hostile(tmp_path, *members: tarfile.TarInfo):
    path = tmp_path / "evil.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        info = tarfile.TarInfo("submission.toml")
        data = b'name = "x"\n'
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
        for member in members:
            tar.addfile(member, io.BytesIO(b"x" * member.size) if member.isfile() else None)
    return path


def _member(name, kind=tarfile.REGTYPE, size=1, linkname=""):
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, linkname
    info.size = size if kind == tarfile.REGTYPE else 0
    return info


@pytest.mark.parametrize("member, why", [
    (_member("/etc/evil"), "points outside"),
    (_member("../evil"), "points outside"),
    (_member("a/../../evil"), "points outside"),
    (_member("link", tarfile.SYMTYPE, linkname="/etc/passwd"), "link or special file"),
    (_member("hard", tarfile.LNKTYPE, linkname="../x"), "link or special file"),
    (_member("dev", tarfile.CHRTYPE), "link or special file"),
    (_member("fifo", tarfile.FIFOTYPE), "link or special file"),
])
def test_hostile_members_are_refused_naming_archive_and_member(tmp_path, member, why):
    archive = hostile(tmp_path, member)
    with pytest.raises(UsageError, match=re.escape(f"{archive}: member '{member.name}'") + f".*{why}"):
        unpack_submission(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out.*"))  # nothing half-written


def test_size_cap(tmp_path, monkeypatch):
    import harness.pack

    monkeypatch.setattr(harness.pack, "MAX_UNPACKED_BYTES", 1000)
    archive = hostile(tmp_path, _member("big.bin", size=2000))
    with pytest.raises(UsageError, match="member 'big.bin' takes it over"):
        unpack_submission(archive, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_not_an_archive_or_no_submission_toml(tmp_path):
    garbage = tmp_path / "garbage.tar.gz"
    garbage.write_bytes(b"not gzip")
    with pytest.raises(UsageError, match="garbage.tar.gz: not a readable submission archive"):
        unpack_submission(garbage, tmp_path / "out")
    empty = tmp_path / "empty.tar.gz"
    with tarfile.open(empty, "w:gz") as tar:
        tar.addfile(_member("readme.txt", size=1), io.BytesIO(b"x"))
    with pytest.raises(UsageError, match="empty.tar.gz: no submission.toml"):
        unpack_submission(empty, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_scoring_entries_and_validate_accept_archives(submission, tmp_path):
    from typer.testing import CliRunner

    from harness.cli.main import app
    from harness.scoring.scorer import entries_from_paths

    archive = pack_submission(submission, tmp_path / "alpha.tar.gz")
    (entry,) = entries_from_paths([archive], unpack_to=tmp_path / "work")
    assert entry.name == "alpha" and entry.content_hash == content_hash(submission)
    assert entry.root == (tmp_path / "work" / "alpha").resolve()
    result = CliRunner().invoke(app, ["submission", "validate", str(archive), "--sandbox", "none"])
    assert result.exit_code == 0 and f"ok {archive}" in result.output.replace("\n", "")
