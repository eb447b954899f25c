"""Every command of docs/participants.md's walkthrough blocks, run in order in an empty folder."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")

DOC = Path(__file__).resolve().parents[2] / "docs" / "participants.md"
BLOCK = re.compile(r"<!-- walkthrough -->\n```bash\n(.*?)```", re.S)


def walkthrough_blocks() -> list[str]:
    """The fenced bash blocks marked ``<!-- walkthrough -->``, in order."""
    return BLOCK.findall(DOC.read_text(encoding="utf-8"))


def test_the_doc_has_walkthrough_blocks():
    blocks = walkthrough_blocks()
    assert len(blocks) >= 6 and all(block.strip() for block in blocks)


def test_walkthrough_runs_in_order(tmp_path):
    """One bash script of all blocks (``set -e``), with ``harness`` and ``python`` this interpreter."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "harness").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m harness.cli.main "$@"\n')
    (bin_dir / "python").write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    for script in bin_dir.iterdir():
        script.chmod(0o755)
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "COLUMNS": "120",
           "PYTHONPATH": os.pathsep.join([str(root), str(root / "plugins"), os.environ.get("PYTHONPATH", "")])}
    work = tmp_path / "work"
    work.mkdir()
    script = "set -e\n" + "\n".join(walkthrough_blocks())
    done = subprocess.run(["bash", "-c", script], cwd=work, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "1 scored, 0 invalid, 0 failed" in done.stdout
    archives = list(work.glob("my-team-*.tar.gz"))
    assert len(archives) == 1 and re.fullmatch(r"my-team-[0-9a-f]{12}\.tar\.gz", archives[0].name)
    assert (work / "runs" / "my-team" / "cpu" / "model.json").is_file()
    assert "3 passed" in done.stdout  # the generated plugin tests (docs step 5)
