"""``harness score --executor ray``: each submission's train + predict as a Ray task.

Ray (https://docs.ray.io) schedules, places and retries the tasks; this module
only decides what a task gets and what comes back. The organiser's process
keeps the labels, tags, recipe and results store; a task receives

- a request: submission name, framework, content hash, profile, timeout, threads,
  sandbox and memory cap, the number of report images (``--explain``), the dataset split to
  withhold (its name only);
- the submission folder as a tar archive (its content hash is checked on arrival);
- the hidden images (``images.npy`` bytes) and the training cache of the datasets the
  submissions name, without the held-out split the hidden images come from. Both are
  put in Ray's object store once per run, so they travel to each node once; a node
  writes them to its staging folder once (a lock and a completion marker) and every
  later task there reuses them.

On the worker the child runs exactly as with the local executor (``run_both_phases``:
bubblewrap when it runs on that node, else a limited process, same timeout and
checks; then the adaptive phase's children on the child's export when the split has
adaptive categories, whose settings and image positions the request carries), and the
task returns predictions, timings, the adaptive outcome, the child's report files (``--explain``)
and the capped logs. A worker
that dies mid-task (killed process, lost node) is retried by Ray up to
``retries`` times, then the submission is recorded as failed with the reason.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import io
import json
import os
import shutil
import socket
import tarfile
import tempfile
import time
import uuid
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from ..data.cache import sha256_file
from ..errors import UsageError
from ..paths import cache_dir
from ..submission import content_hash, read_toml, submission_file
from ..sandbox.choice import choose_isolation
from ..sandbox.limits import default_limits
from ..sandbox.view import cache_without_split
from .adaptive import OUTCOME_DIR, AdaptiveCategory, run_both_phases
from .child_run import Entry, Job, RunSettings
from .worker import EXPLAIN_FILE, HISTORY_FILE, REPORT_DIR
from .split import HiddenSplit

#: files a task sends back besides the predictions (organiser-side names)
RETURNED_FILES = ("work/predictions.npy", "work/result.json", "stdout.log", "stderr.log")
#: the child's code-free export, sent back when the split has an attack track (its defenses classify there)
EXPORT_DIR = "work/export"
#: the child's report (``--explain``), sent back when there is one; the organiser checks and draws it
REPORT_FILES = tuple(f"work/{REPORT_DIR}/{name}" for name in (HISTORY_FILE, EXPLAIN_FILE))


@dataclass(frozen=True)
class RayOptions:
    """How ``--executor ray`` connects and what each task asks for."""

    address: str | None = None  # None: start a local Ray instance for this run
    cpus_per_submission: float = 1
    gpus_per_submission: float = 0
    retries: int = 2  # Ray re-runs a task whose worker died this many times
    num_cpus: int | None = None  # size of a local instance (None: every core); ignored with an address
    worker_dir: str | None = None  # staging folder on each node (default: its temp folder)


def check_reachable(address: str | None, seconds: float = 5.0) -> None:
    """Fail in seconds, with one line, when ``HOST:PORT`` does not answer (``ray.init`` would retry for minutes)."""
    if not address or address in ("auto", "local") or "://" in address:
        return
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise UsageError(f"--address '{address}': expected auto or HOST:PORT (the head node's GCS port, "
                         "6379 by default)")
    try:
        socket.create_connection((host, int(port)), timeout=seconds).close()
    except OSError as exc:
        raise UsageError(f"--address {address}: no Ray cluster answers there ({exc.strerror or exc})",
                         hint="start one with: ray start --head (prints the address to use)") from None


def ray_module():
    """The ``ray`` package, or a one-line UsageError saying how to install it."""
    try:
        import ray
    except ImportError:
        raise UsageError("--executor ray needs Ray: pip install 'harness[ray]'") from None
    return ray


# ---------------------------------------------------------------- organiser side

def pack_folder(folder: Path) -> bytes:
    """A submission (or trained model) folder as tar bytes, without caches."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for path in sorted(folder.rglob("*")):
            relative = path.relative_to(folder)
            if "__pycache__" in relative.parts or not (path.is_file() or path.is_dir()) or path.is_symlink():
                continue
            archive.add(path, arcname=relative.as_posix(), recursive=False)
    return buffer.getvalue()


def needed_datasets(entries: list[Entry], profile: str | None) -> set[str]:
    """Dataset names the submissions train on with ``profile`` (read from submission.toml, no code run)."""
    names = set()
    for entry in entries:
        data = read_toml(submission_file(entry.root))
        chosen = (data.get("profiles") or {}).get(profile) if profile else None
        dataset = (chosen or {}).get("dataset") if isinstance(chosen, dict) else None
        dataset = dataset or data.get("dataset")
        if isinstance(dataset, str):
            names.add(dataset)
    return names


def file_bytes(path: Path) -> np.ndarray:
    """A file's bytes as a read-only uint8 array (memory-mapped: Ray copies it into its object store)."""
    if path.stat().st_size == 0:
        return np.zeros(0, dtype=np.uint8)
    return np.memmap(path, dtype=np.uint8, mode="r")


def cache_bundle(datasets: set[str], withhold: tuple[str, str], cache: Path | None = None) -> dict[str, Any]:
    """The training caches of ``datasets``, without the withheld (dataset, split): what workers get.

    {"digest": sha256 of the contents, "folders": {folder name: {relative path: bytes as uint8 array}}}.
    """
    cache = cache or cache_dir()
    folders: dict[str, dict[str, Any]] = {}
    digest = hashlib.sha256()
    withheld_folders = {}
    if withhold[0] in datasets:
        withheld_folders = {folder.name: (manifest, kept)
                            for folder, manifest, kept in cache_without_split(cache, *withhold)}
    for manifest_path in sorted(cache.glob("*/manifest.json")) if cache.is_dir() else []:
        folder = manifest_path.parent
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if manifest.get("dataset") not in datasets:
            continue
        if folder.name in withheld_folders:
            manifest, kept = withheld_folders[folder.name]
        elif manifest.get("dataset") == withhold[0] and withhold[1] in (manifest.get("splits") or {}):
            continue  # unreadable split listing: send nothing rather than the held-out images
        else:
            kept = [p.relative_to(folder).as_posix() for p in sorted(folder.rglob("*"))
                    if p.is_file() and p.name != "manifest.json"]
        files = {"manifest.json": np.frombuffer(json.dumps(manifest, indent=2).encode(), dtype=np.uint8)}
        files.update({relative: file_bytes(folder / relative) for relative in kept})
        for relative, content in files.items():
            digest.update(f"{folder.name}/{relative}\0{len(content)}\0".encode())
            digest.update(memoryview(np.ascontiguousarray(content)))
        folders[folder.name] = files
    return {"digest": digest.hexdigest(), "folders": folders}


def task_request(job: Job, settings: RunSettings, staging: str | None, images_digest: str,
                 adaptive: list[dict[str, Any]] = (), num_classes: int | None = None,
                 export: bool = False) -> dict[str, Any]:
    """The plain-data part of a task's arguments: nothing of the split's labels, tags or recipe (``adaptive``:
    the adaptive categories' attack settings and image positions, :meth:`AdaptiveCategory.to_dict`; ``export``:
    the model's code-free export comes back too, for the attack track)."""
    entry = job.entry
    return {"name": entry.name, "images_digest": images_digest, "framework": entry.framework,
            "content_hash": entry.content_hash, "key": job.key, "profile": settings.profile,
            "timeout": settings.timeout, "threads": settings.threads,
            "sandbox": settings.sandbox, "memory_gb": settings.memory_gb, "withhold": list(settings.withhold),
            "staging": staging, "adaptive": list(adaptive), "num_classes": num_classes, "export": export,
            "explain": settings.explain}


def submit_task(remote, options: dict[str, Any], *args: Any):
    """One ``remote.options(**options).remote(*args)`` call (the one place arguments leave for a worker)."""
    return remote.options(**options).remote(*args)


@contextlib.contextmanager
def ray_session(options: RayOptions) -> Iterator[Any]:
    """Connected to Ray inside (``options.address``, or a local instance started for the run and stopped after);
    a no-op when this process is connected already."""
    ray = ray_module()
    if ray.is_initialized():
        yield ray
        return
    init: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False, "logging_level": "ERROR"}
    if options.address:
        check_reachable(options.address)
        init["address"] = options.address
    elif options.num_cpus:
        init["num_cpus"] = options.num_cpus
    try:
        ray.init(**init)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise UsageError(f"--address {options.address or '(local)'}: cannot connect to Ray: "
                         f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}",
                         hint="start a cluster with: ray start --head; for a cluster with token "
                              "authentication set RAY_AUTH_MODE=token here (docs/ray.md)") from None
    try:
        yield ray
    finally:
        ray.shutdown()


def ray_runs(jobs: list[Job], split: HiddenSplit, settings: RunSettings, categories: list[AdaptiveCategory],
             options: RayOptions | None, event: Callable[[str, Entry, str], None]) -> Iterator[tuple[Job, str, str]]:
    """The Ray executor: every job as a task at once (the adaptive ``categories`` run on the task's node after its
    child); yields (job, status, reason, isolation) as they finish."""
    options = options or RayOptions()
    if not jobs:
        return
    ray = ray_module()
    from ray.util.queue import Empty, Queue

    if settings.threads is None:  # each child uses the cores its task reserved
        settings = replace(settings, threads=max(1, int(options.cpus_per_submission)))
    with ray_session(options):
        progress = Queue(actor_options={"num_cpus": 0})
        images_digest = sha256_file(split.images_path)
        images = ray.put(file_bytes(split.images_path))
        bundle = ray.put(cache_bundle(needed_datasets([job.entry for job in jobs], settings.profile),
                                      settings.withhold))
        remote = ray.remote(run_on_worker)
        task_options = {"num_cpus": options.cpus_per_submission, "num_gpus": options.gpus_per_submission,
                        "max_retries": options.retries, "retry_exceptions": False}
        adaptive = [category.to_dict() for category in categories]
        num_classes = int(split.summary["num_classes"])
        pending: dict[Any, Job] = {}
        attempts: dict[str, int] = {}
        for job in jobs:
            artifact = pack_folder(job.entry.artifact) if job.entry.artifact is not None else None
            request = task_request(job, settings, options.worker_dir, images_digest, adaptive, num_classes,
                                   export=split.attack_track is not None)
            ref = submit_task(remote, task_options, request, pack_folder(job.entry.root), artifact, images, bundle,
                              progress)
            pending[ref] = job
            event("queued", job.entry, "")
        by_name = {job.entry.name: job for job in jobs}

        def report_running() -> None:
            while True:
                try:
                    name, where = progress.get_nowait()
                except Empty:
                    return
                attempts[name] = attempts.get(name, 0) + 1
                retry = f", attempt {attempts[name]}" if attempts[name] > 1 else ""
                event("running", by_name[name].entry, f"on {where}{retry}")

        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=0.25)
            report_running()
            for ref in ready:
                job = pending.pop(ref)
                try:
                    returned = ray.get(ref)
                except ray.exceptions.RayError as exc:
                    lines = [line for line in str(exc).splitlines() if line.strip()]
                    yield job, "failed", (f"worker lost: {type(exc).__name__} after {options.retries} "
                                          f"retries" + (f" ({lines[0][:300]})" if lines else "")), ""
                    continue
                keep_returned(job.scratch, returned)
                yield job, returned["status"], returned["reason"], returned.get("isolation") or ""


def returned_files(scratch: Path, export: bool = False) -> list[str]:
    """What a task sends back from its scratch folder: ``RETURNED_FILES``, the report's files (``REPORT_FILES``),
    the adaptive outcome's files and, with ``export``, the model's code-free export (``EXPORT_DIR``)."""
    found = [relative for relative in RETURNED_FILES if (scratch / relative).is_file()]
    found += [relative for relative in REPORT_FILES
              if (scratch / relative).is_file() and not (scratch / relative).is_symlink()]
    outcome = scratch / OUTCOME_DIR
    if outcome.is_dir():
        found += [p.relative_to(scratch).as_posix() for p in sorted(outcome.iterdir()) if p.is_file()]
    if export and (scratch / EXPORT_DIR).is_dir():
        found += [p.relative_to(scratch).as_posix() for p in sorted((scratch / EXPORT_DIR).rglob("*"))
                  if p.is_file() and not p.is_symlink()]
    return found


def _in_export(relative: str) -> bool:
    """A returned name inside the export folder (no way out of it)."""
    parts = Path(relative).parts
    return Path(*parts[:2]).as_posix() == EXPORT_DIR if len(parts) > 2 and ".." not in parts else False


def _in_outcome(relative: str) -> bool:
    """A returned name inside the adaptive outcome folder, one level deep (no other path is written)."""
    parts = Path(relative).parts
    return len(parts) == 2 and parts[0] == OUTCOME_DIR and parts[1] not in ("..", ".")


def keep_returned(scratch: Path, returned: dict[str, Any]) -> None:
    """Write what a task sent back into the organiser's scratch folder, as a local child leaves it."""
    if scratch.exists():
        shutil.rmtree(scratch)
    for relative, content in returned["files"].items():
        if relative in RETURNED_FILES + REPORT_FILES or _in_outcome(relative) or _in_export(relative):
            (scratch / relative).parent.mkdir(parents=True, exist_ok=True)
            (scratch / relative).write_bytes(content)
    kept = ("node", "isolation", "staged", "restored", "stage_seconds", "child_seconds")
    scratch.mkdir(parents=True, exist_ok=True)  # also when the task failed before its child ran
    (scratch / "node.json").write_text(json.dumps({k: returned.get(k) for k in kept}) + "\n")


# ---------------------------------------------------------------- worker side

def staging_root(requested: str | None) -> Path:
    return Path(requested or Path(tempfile.gettempdir()) / f"harness-ray-{os.getuid()}")


def stage_once(folder: Path, write: Callable[[Path], None]) -> bool:
    """Make ``folder`` with ``write(temporary folder)`` once per node; True when this call wrote it."""
    done = folder / ".complete"
    if done.exists():
        return False
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.parent / f".{folder.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # other tasks on this node wait for the first writer
        if done.exists():
            return False
        if folder.exists():
            shutil.rmtree(folder)  # a writer died half-way
        partial = folder.parent / f".{folder.name}.{uuid.uuid4().hex}"
        partial.mkdir()
        write(partial)
        (partial / ".complete").write_text(time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        os.replace(partial, folder)
    return True


def unpack(archive: bytes, target: Path) -> None:
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r") as tar:
        tar.extractall(target, filter="data")


def bundle_files(bundle: dict[str, Any]) -> dict[str, np.ndarray]:
    """The cache bundle as {relative path under the staged cache: bytes}."""
    return {f"{folder}/{relative}": content for folder, files in bundle["folders"].items()
            for relative, content in files.items()}


def write_files(target: Path, files: dict[str, np.ndarray], only_changed: bool = False) -> int:
    """Write ``files`` under ``target``; with ``only_changed``, those whose bytes differ. Returns how many."""
    written = 0
    for relative, content in files.items():
        path, data = target / relative, memoryview(np.ascontiguousarray(content))
        if only_changed and path.is_file() and path.stat().st_size == data.nbytes and path.read_bytes() == data:
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        written += 1
    return written


def run_on_worker(request: dict[str, Any], submission: bytes, artifact: bytes | None, images: np.ndarray,
                  bundle: dict[str, Any], progress: Any) -> dict[str, Any]:
    """The Ray task: stage the inputs on this node, run the child as locally, return what it produced."""
    import ray


    started = time.perf_counter()
    node = f"{socket.gethostname()} {ray.util.get_node_ip_address()}"
    progress.put((request["name"], f"{node} pid {os.getpid()}"))
    root = staging_root(request["staging"])
    images_dir, cache = root / "images" / request["images_digest"][:24], root / "cache" / bundle["digest"][:24]
    inputs = {images_dir: {"images.npy": images}, cache: bundle_files(bundle)}
    staged = {"images": stage_once(images_dir, lambda folder: write_files(folder, inputs[images_dir])),
              "cache": stage_once(cache, lambda folder: write_files(folder, inputs[cache]))}
    # a child of an earlier task (plain-process sandbox) may have changed them: back to the object store's copy
    restored = sum(write_files(folder, files, only_changed=True) for folder, files in inputs.items())
    submission_dir = root / "submissions" / request["content_hash"][:24]
    stage_once(submission_dir, lambda folder: unpack(submission, folder))
    artifact_dir = None
    if artifact is not None:
        artifact_dir = root / "artifacts" / hashlib.sha256(artifact).hexdigest()[:24]
        stage_once(artifact_dir, lambda folder: unpack(artifact, folder))
    scratch = root / "score" / f"{request['name']}-{request['key'][:12]}-{uuid.uuid4().hex[:8]}"
    result: dict[str, Any] = {"node": node, "staged": staged, "restored": restored, "files": {}, "isolation": "",
                              "stage_seconds": round(time.perf_counter() - started, 3)}
    try:
        if content_hash(submission_dir) != request["content_hash"]:
            return {**result, "status": "failed", "reason": "submission changed in transit (content hash differs)"}
        try:
            isolation = choose_isolation(request["sandbox"])
        except UsageError as exc:
            return {**result, "status": "failed", "reason": f"node {node}: {exc.message}"}
        result["isolation"] = isolation.kind
        entry = Entry(root=submission_dir, name=request["name"], team="", framework=request["framework"],
                      content_hash=request["content_hash"], artifact=artifact_dir)
        limits = default_limits(request["timeout"], request["threads"], request["memory_gb"])
        started = time.perf_counter()
        categories = [AdaptiveCategory.from_dict(c) for c in request.get("adaptive") or ()]
        status, reason = run_both_phases(entry, request["profile"], images_dir / "images.npy", scratch,
                                         request["timeout"], request["threads"], isolation, limits,
                                         tuple(request["withhold"]), categories,
                                         num_classes=request.get("num_classes"), cache=cache,
                                         export=bool(request.get("export")), explain=int(request.get("explain") or 0))
        result["child_seconds"] = round(time.perf_counter() - started, 3)
        for relative in returned_files(scratch, export=bool(request.get("export"))):
            result["files"][relative] = (scratch / relative).read_bytes()
        return {**result, "status": status, "reason": reason}
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
