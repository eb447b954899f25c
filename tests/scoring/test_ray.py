"""``harness score --executor ray`` on a 2-CPU Ray cluster the tests start: same results as local, retries
after a killed worker, nothing of the labels in what workers receive, data staged once per node, resume."""

from __future__ import annotations

import csv
import json
import os
import pickle
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

# The test cluster is a local instance, which uses token authentication (Ray >= 2.59): drivers that connect to
# it (this process, the CLI in subprocesses) send the token with RAY_AUTH_MODE=token, read when ray is imported.
os.environ["RAY_AUTH_MODE"] = "token"
ray = pytest.importorskip("ray")

from typer.testing import CliRunner  # noqa: E402

from harness.cli.main import app  # noqa: E402
from harness.scoring import ray_executor  # noqa: E402
from harness.sandbox.choice import bwrap_problem, choose_isolation  # noqa: E402
from harness.scoring.ray_executor import RayOptions  # noqa: E402
from harness.scoring.scorer import entries_from_paths, score_submissions  # noqa: E402
from helpers import EXAMPLE_SUBMISSIONS  # noqa: E402

pytestmark = pytest.mark.slow

#: scored locally and on Ray: a TF and a torch example (each costs a training per executor)
EXAMPLES = ("cnn-baseline", "trades")

CLUSTER = """
import sys, ray
context = ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR")
print(context.address_info["gcs_address"], flush=True)
sys.stdin.read()  # until the test closes our stdin: then ray.shutdown() at exit stops the cluster
"""


@pytest.fixture(scope="module")
def cluster():
    """The address of a local Ray cluster with 2 CPUs, stopped after the module."""
    process = subprocess.Popen([sys.executable, "-c", CLUSTER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               text=True)
    address = process.stdout.readline().strip()
    assert re.fullmatch(r"[\w.\-]+:\d+", address), address
    yield address
    process.stdin.close()
    process.wait(timeout=60)


@pytest.fixture(scope="module")
def examples(tmp_path_factory) -> Path:
    """Two example submissions, one per framework, with one epoch: a tiny budget."""
    import shutil

    target = tmp_path_factory.mktemp("examples")
    for name in EXAMPLES:
        shutil.copytree(EXAMPLE_SUBMISSIONS / name, target / name)
        toml = target / name / "submission.toml"
        toml.write_text(re.sub(r"epochs = \d+", "epochs = 1", toml.read_text()))
    return target


def board_rows(path: Path) -> list[dict[str, str]]:
    """Leaderboard rows without the timing columns (the only ones that may differ between runs)."""
    with open(path, newline="") as handle:
        return sorted(({k: v for k, v in row.items() if not k.endswith("_seconds")} for row in csv.DictReader(handle)),
                      key=lambda row: (row["partition"], row["submission"]))


@pytest.fixture(scope="module")
def both(cluster, examples, hidden_split, tmp_path_factory):
    """The examples scored locally and on Ray (through the CLI), each with one thread per child."""
    out = tmp_path_factory.mktemp("both")
    local = score_submissions(entries_from_paths([examples]), hidden_split, out / "local.sqlite", out / "local.csv",
                              profile="cpu", timeout=300, work_dir=out / "local-work", threads=1)
    started = time.monotonic()
    result = CliRunner().invoke(app, [
        "score", str(examples), "--split", str(hidden_split), "-P", "cpu", "--db", str(out / "ray.sqlite"),
        "--leaderboard", str(out / "ray.csv"), "--work-dir", str(out / "ray-work"), "--timeout", "300",
        "--executor", "ray", "--address", cluster, "--cpus-per-submission", "1", "--worker-dir", str(out / "nodes")])
    return {"out": out, "local": local, "cli": result, "ray_seconds": time.monotonic() - started}


def test_ray_gives_the_same_leaderboard_as_local(both):
    assert both["cli"].exit_code == 0, both["cli"].output
    assert {r.status for r in both["local"]} == {"scored"}
    ray_rows, local_rows = board_rows(both["out"] / "ray.csv"), board_rows(both["out"] / "local.csv")
    assert len(ray_rows) == 2 * len(EXAMPLES)  # public and private
    assert ray_rows == local_rows
    assert {row["isolation"] for row in ray_rows} == {choose_isolation("auto").kind}  # the node's own choice


@pytest.mark.skipif(bwrap_problem() is None, reason="bubblewrap runs here: a node that cannot run it is needed")
def test_a_node_that_cannot_isolate_fails_the_task_instead_of_running_it(cluster, hidden_split, submissions_dir,
                                                                          tmp_path):
    records = score_submissions(entries_from_paths([submissions_dir / "tiny"]), hidden_split, tmp_path / "db.sqlite",
                                None, profile="cpu", timeout=300, work_dir=tmp_path / "work", sandbox="bwrap",
                                executor="ray", ray_options=RayOptions(address=cluster,
                                                                       worker_dir=str(tmp_path / "nodes")))
    assert [(r.status, r.isolation) for r in records] == [("failed", "")]
    assert re.fullmatch(r"node .+: --sandbox bwrap: bwrap not found \(Debian/Ubuntu package: bubblewrap\)",
                        records[0].reason), records[0].reason
    assert not list(tmp_path.rglob("predictions.npy"))  # no child ran


def test_ray_live_view_shows_where_each_submission_ran(both):
    output = both["cli"].output
    assert "executor: ray" in output
    assert re.search(rf"scoring: {len(EXAMPLES)} scored", output), output
    for name in EXAMPLES:
        assert re.search(rf"{name}\s.*scored\s.*pid \d+", output), output


def test_hidden_images_and_cache_reach_a_node_once(both):
    staged = [json.loads(p.read_text())["staged"] for p in (both["out"] / "ray-work").glob("*/node.json")]
    assert len(staged) == len(EXAMPLES)
    assert sum(s["images"] for s in staged) == 1 and sum(s["cache"] for s in staged) == 1
    nodes = both["out"] / "nodes"
    assert len(list((nodes / "images").glob("[!.]*"))) == 1 and len(list((nodes / "cache").glob("[!.]*"))) == 1
    # the staged cache holds the training data, never the held-out split the hidden images come from
    manifests = list((nodes / "cache").glob("*/*/manifest.json"))
    assert manifests and all("test" not in json.loads(m.read_text())["splits"] for m in manifests)
    assert not list((nodes / "cache").glob("*/*/test_*"))


def test_workers_never_receive_labels_tags_or_recipe(cluster, hidden_split, submissions_dir, tiny_artifact, tmp_path,
                                                     monkeypatch):
    sent: list[bytes] = []
    submit = ray_executor.submit_task

    def recording(remote, options, *args):
        """Every argument of the task as the worker gets it (object references resolved), pickled."""
        resolved = [ray.get(a) if isinstance(a, ray.ObjectRef) else a for a in args if not hasattr(a, "actor")]
        sent.append(pickle.dumps(resolved))
        return submit(remote, options, *args)

    monkeypatch.setattr(ray_executor, "submit_task", recording)
    entries = entries_from_paths([submissions_dir / "tiny"], {"tiny": tiny_artifact})  # the trained model travels too
    records = score_submissions(entries, hidden_split, tmp_path / "db.sqlite",
                                None, profile="cpu", timeout=300, work_dir=tmp_path / "work",
                                executor="ray", ray_options=RayOptions(address=cluster,
                                                                       worker_dir=str(tmp_path / "nodes")))
    assert [r.status for r in records] == ["scored"]
    assert len(sent) == 1
    blob = sent[0]
    organiser = hidden_split / "organiser"
    assert np.load(hidden_split / "images" / "images.npy").tobytes() in blob  # the images do travel
    assert np.load(organiser / "labels.npy").tobytes() not in blob
    assert (organiser / "tags.csv").read_bytes()[:200] not in blob
    assert b"seed = 4242" not in blob and (organiser / "recipe.toml").read_bytes()[:120] not in blob
    assert str(organiser).encode() not in blob and str(hidden_split).encode() not in blob
    from harness.paths import cache_dir

    for held_out in cache_dir().glob("digits-*/test_labels.npy"):  # the source split of the hidden images
        assert held_out.read_bytes()[128:] not in blob


def score_tiny_killing_its_first_worker(cluster, split, submissions_dir, artifact, folder, retries
                                        ) -> tuple[list, list]:
    """Score the trained tiny submission on Ray, SIGKILLing the worker process of its first attempt;
    (pids, records)."""
    pids: list[int] = []

    def on_event(kind, entry, detail):
        if kind == "running":
            pids.append(int(re.search(r"pid (\d+)", detail).group(1)))
            if len(pids) == 1:
                os.kill(pids[0], signal.SIGKILL)

    records = score_submissions(entries_from_paths([submissions_dir / "tiny"], {"tiny": artifact}), split,
                                folder / "db.sqlite", None,
                                profile="cpu", timeout=300, work_dir=folder / "work", on_event=on_event,
                                executor="ray", ray_options=RayOptions(address=cluster, retries=retries,
                                                                       worker_dir=str(folder / "n")))
    return pids, records


def test_a_killed_worker_is_retried(cluster, hidden_split, submissions_dir, tiny_artifact, tmp_path):
    pids, records = score_tiny_killing_its_first_worker(cluster, hidden_split, submissions_dir, tiny_artifact, tmp_path,
                                                        retries=2)
    assert len(pids) == 2 and pids[0] != pids[1]
    assert [r.status for r in records] == ["scored"]


def test_a_worker_that_keeps_dying_is_recorded_as_failed(cluster, hidden_split, submissions_dir, tiny_artifact,
                                                          tmp_path):
    pids, records = score_tiny_killing_its_first_worker(cluster, hidden_split, submissions_dir, tiny_artifact, tmp_path,
                                                        retries=0)
    assert len(pids) == 1
    [record] = records
    assert record.status == "failed"
    assert record.reason.startswith("worker lost: ") and "after 0 retries" in record.reason


def test_killed_organiser_resumes_from_the_database(cluster, hidden_split, submissions_dir, tmp_path):
    names = ["tiny", "crash", "nan"]
    command = [sys.executable, "-m", "harness.cli.main", "score", *[str(submissions_dir / n) for n in names],
               "--split", str(hidden_split), "-P", "cpu", "--db", str(tmp_path / "db.sqlite"),
               "--leaderboard", str(tmp_path / "board.csv"), "--work-dir", str(tmp_path / "work"),
               "--executor", "ray", "--address", cluster, "--worker-dir", str(tmp_path / "n")]
    organiser = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and _stored(tmp_path / "db.sqlite") < 1:
        time.sleep(0.2)
    organiser.send_signal(signal.SIGKILL)
    organiser.wait()
    done_before = _stored(tmp_path / "db.sqlite")
    assert 1 <= done_before < 3, "kill the organiser while tasks are still in flight"
    rerun = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    with sqlite3.connect(tmp_path / "db.sqlite") as db:
        rows = db.execute("SELECT submission, status FROM results").fetchall()
    assert sorted(rows) == [("crash", "failed"), ("nan", "failed"), ("tiny", "scored")]
    assert re.search(rf"scoring: [^\n]*\b{done_before} cached", rerun.stdout), rerun.stdout


def _stored(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(db) as connection:
            return connection.execute("SELECT COUNT(*) FROM results").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


@pytest.mark.parametrize("args, message", [
    (["--executor", "ray", "--address", "127.0.0.1:1"], "--address 127.0.0.1:1: no Ray cluster answers there"),
    (["--executor", "ray", "--address", "nowhere"], "--address 'nowhere': expected auto or HOST:PORT"),
    (["--address", "127.0.0.1:6379"], "--address, --cpus/--gpus-per-submission, --retries and --worker-dir go "
                                      "with --executor ray"),
    (["--executor", "slurm"], "--executor 'slurm': expected one of local, ray"),
])
def test_bad_executor_options_are_one_line_errors(args, message, hidden_split, submissions_dir, tmp_path):
    result = CliRunner().invoke(app, ["score", str(submissions_dir / "tiny"), "--split", str(hidden_split),
                                      "--db", str(tmp_path / "db.sqlite"), *args])
    assert result.exit_code == 2
    assert message in result.output
    assert not (tmp_path / "db.sqlite").exists()


def test_staged_inputs_changed_by_a_child_are_restored_before_the_next_task(tmp_path):
    files = {"digits-x/manifest.json": np.frombuffer(b'{"splits": {}}', dtype=np.uint8),
             "digits-x/train_labels.npy": np.arange(40, dtype=np.uint8)}
    assert ray_executor.stage_once(tmp_path / "cache", lambda folder: ray_executor.write_files(folder, files))
    assert not ray_executor.stage_once(tmp_path / "cache", lambda folder: pytest.fail("staged twice"))
    assert ray_executor.write_files(tmp_path / "cache", files, only_changed=True) == 0
    (tmp_path / "cache" / "digits-x" / "train_labels.npy").write_bytes(bytes(40))  # a hostile child's edit
    assert ray_executor.write_files(tmp_path / "cache", files, only_changed=True) == 1
    assert (tmp_path / "cache" / "digits-x" / "train_labels.npy").read_bytes() == bytes(range(40))
