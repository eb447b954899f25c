"""``harness contest run``: the inbox watched, every entry decided and recorded, the accepted ones scored.

Each settled inbox entry (:mod:`.inbox`) is snapshotted under ``OUTPUT/work/inbox``, decided (:func:`decide`:
accepted, or rejected with the reason) and recorded in the ledger (:mod:`.ledger`, one transaction) before
any of its code runs; then :func:`harness.scoring.scorer.score_submissions` scores the accepted entries
(baselines first, then arrival order) under their contest names. The scorer's resume skips what is stored,
so a runner killed at any point loses nothing: a rerun finds the recorded entries and the stored results.
``on_update`` runs in a background thread (:class:`BackgroundUpdate`) after each recorded entry and each
stored result, so scoring never waits for it.
"""

from __future__ import annotations

import contextlib
import os
import dataclasses
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from .. import __version__
from ..errors import UsageError
from ..progress import stage
from .inbox import Arrival, InboxItem, InboxWatch, Taken, fingerprint, inbox_item, take
from .ledger import ContestEntry, Ledger, contest_submission_name
from .spec import ContestSpec, load_contest, utc_text

#: scorer events after which a result is stored (the site is rebuilt then)
STORED_EVENTS = ("scored", "failed", "invalid", "attacked", "classified")


#: how much lower than the runner the background update (CSV boards, site) runs, where the OS allows a thread's
UPDATE_NICENESS = 10


class BackgroundUpdate:
    """Runs ``callback`` in a background thread after :meth:`poke`: at most one run at a time and at most one
    waiting (pokes during a run coalesce into one more run). A failing callback is reported by ``report`` (one
    line) and never stops anything. :meth:`close` runs a waiting update, then stops the thread."""

    def __init__(self, callback: Callable[[], None], report: Callable[[str], None] = lambda line: None):
        self._callback, self._report = callback, report
        self._condition = threading.Condition()
        self._pending = self._closing = False
        self._thread = threading.Thread(target=self._loop, name="contest-update", daemon=True)
        self._thread.start()

    def poke(self) -> None:
        """Ask for one more run (returns at once)."""
        with self._condition:
            self._pending = True
            self._condition.notify()

    def _loop(self) -> None:
        try:  # Linux: a thread is a task of its own; at nice 10 the scoring children get the cores first
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), UPDATE_NICENESS)
        except (AttributeError, OSError):  # elsewhere: the whole process would be lowered, so leave it
            pass
        while True:
            with self._condition:
                while not (self._pending or self._closing):
                    self._condition.wait()
                if not self._pending:
                    return
                self._pending = False
            try:
                self._callback()
            except Exception as exc:  # noqa: BLE001 - an update never stops the contest: reported, then on
                self._report(f"update failed: {type(exc).__name__}: {exc}")

    def close(self) -> None:
        """Run the waiting update, if any, and stop the thread."""
        with self._condition:
            self._closing = True
            self._condition.notify()
        self._thread.join()

    def __enter__(self) -> "BackgroundUpdate":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


@contextlib.contextmanager
def stop_on_signals(report: Callable[[str], None] = print) -> Iterator[threading.Event]:
    """An event set by the first SIGINT or SIGTERM (the runner finishes its current step, then returns); a
    second one raises KeyboardInterrupt at once. The previous handlers come back on exit."""
    stop = threading.Event()

    def handler(number: int, frame: Any) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        report(f"{signal.Signals(number).name}: stopping after the current step (again to stop at once)")

    previous = {number: signal.signal(number, handler) for number in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for number, old in previous.items():
            signal.signal(number, old)


def prepare_split(contest: ContestSpec, progress: bool = True) -> Path:
    """The contest's split folder: ``split`` as given, or ``output/split`` built from ``recipe`` on the first run
    and rebuilt only when the recipe file changed since (the split keeps a copy of its recipe); a built split
    that fails verification is an error, never silently rebuilt."""
    from ..scoring.split import ORGANISER_DIR, build_split, load_recipe, verify_split

    if contest.split is not None:
        return contest.split
    assert contest.recipe is not None
    out = contest.split_dir
    kept = out / ORGANISER_DIR / "recipe.toml"
    if kept.is_file() and kept.read_bytes() == contest.recipe.read_bytes():
        verify_split(out)
        return out
    with stage("contest split", enabled=progress) as report:
        say(report, f"{'recipe changed: rebuilding' if kept.is_file() else 'building'} {out} from {contest.recipe}")
        build_split(load_recipe(contest.recipe), out, references=contest.output / "references", progress=progress)
    return out


def say(report, text: str, always: bool = False) -> None:
    """``text`` as a stage line when piped, printed above the bars on a terminal, nothing with progress off
    (unless ``always``)."""
    if report.mode == "bars" or always and report.mode == "off":
        report.console.print(text, markup=False, highlight=False, soft_wrap=True)
    else:
        report.line(text)


def _day(seconds: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(seconds))


def decide(contest: ContestSpec, accepted: list[ContestEntry], *, inbox_path: str, taken: Taken,
           team_folder: str | None, arrived_at: float, baseline: bool = False) -> ContestEntry:
    """The ledger entry of a snapshotted entry: accepted with its contest name, or rejected with the first of
    these reasons: refused snapshot (link, unsafe or unreadable archive), unreadable submission.toml, its team
    differs from its team folder, arrived after the deadline, a problem ``harness submission validate`` finds
    without its code, a track the contest does not run, identical to an earlier accepted entry, over
    ``max_per_team_per_day`` (UTC day of arrival) or ``max_total_per_team``. ``accepted``: the accepted entries
    so far. Baselines skip the deadline and the limits."""
    from ..scoring.child_run import Entry
    from ..scoring.scorer import invalid_reason, submission_spec
    from ..submission import content_hash, read_toml, submission_file

    entry = ContestEntry(inbox_path=inbox_path, fingerprint=taken.fingerprint, team=team_folder or "?",
                         arrived_at=arrived_at, status="rejected", baseline=baseline)
    if taken.folder is None:
        return dataclasses.replace(entry, reason=taken.problem)
    try:
        data = read_toml(submission_file(taken.folder))
    except UsageError as exc:
        return dataclasses.replace(entry, reason=exc.message.split(": ", 1)[-1])
    text = {k: data.get(k) if isinstance(data.get(k), str) else "" for k in ("name", "team", "track")}
    candidate = Entry(root=taken.folder, name=text["name"] or taken.folder.name, team=text["team"] or "?",
                      framework="", content_hash=content_hash(taken.folder))
    entry = dataclasses.replace(entry, team=team_folder if team_folder is not None else candidate.team,
                                name=text["name"], track=text["track"] or "defense",
                                content_hash=candidate.content_hash, spec=submission_spec(candidate))

    def rejected(reason: str) -> ContestEntry:
        return dataclasses.replace(entry, reason=reason)

    mine = [e for e in accepted if e.team == entry.team]
    if team_folder is not None and text["team"] and text["team"] != team_folder:
        return rejected(f"submission.toml team '{text['team']}' differs from its inbox folder '{team_folder}'")
    if not baseline and contest.deadline is not None and arrived_at > contest.deadline:
        return rejected(f"arrived {utc_text(arrived_at)}, after the deadline {utc_text(contest.deadline)}")
    if reason := invalid_reason(candidate, contest.profile):
        return rejected(reason)
    if entry.track not in contest.tracks:
        return rejected(f"track '{entry.track}': this contest runs {', '.join(contest.tracks)} only")
    same = next((e for e in accepted if e.content_hash == entry.content_hash), None)
    if same is not None:
        return rejected(f"identical to {same.submission} (team '{same.team}', {same.inbox_path})")
    if not baseline and contest.max_per_team_per_day is not None:
        today = [e for e in mine if not e.baseline and _day(e.arrived_at) == _day(arrived_at)]
        if len(today) >= contest.max_per_team_per_day:
            return rejected(f"over max_per_team_per_day = {contest.max_per_team_per_day}: team '{entry.team}' has "
                            f"{len(today)} accepted on {_day(arrived_at)} (UTC)")
    if not baseline and contest.max_total_per_team is not None:
        total = [e for e in mine if not e.baseline]
        if len(total) >= contest.max_total_per_team:
            return rejected(f"over max_total_per_team = {contest.max_total_per_team}: team '{entry.team}' has "
                            f"{len(total)} accepted")
    taken_names = {e.submission for e in accepted}
    version = len(mine) + 1
    while contest_submission_name(entry.team, entry.name or taken.folder.name, version) in taken_names:
        version += 1  # two teams whose names reduce to the same slug
    return dataclasses.replace(entry, status="accepted", reason="",
                               submission=contest_submission_name(entry.team, entry.name or taken.folder.name,
                                                                  version))


@dataclass
class ContestRun:
    """What a run leaves: the split's hash, every ledger entry (arrival order) and every stored record."""

    split_hash: str
    entries: list[ContestEntry]
    records: list[Any]


class _Runner:
    """One ``run_contest``: the ledger, the inbox watch, the snapshots and the scoring passes."""

    def __init__(self, contest: ContestSpec, inbox: Path | None, split_dir: Path, split_hash: str,
                 ledger: Ledger, update: BackgroundUpdate | None, report, progress: bool):
        self.contest, self.split_dir, self.split_hash = contest, split_dir, split_hash
        self.ledger, self.update, self.report, self.progress = ledger, update, report, progress
        self.watch = InboxWatch(inbox, contest.settle_seconds) if inbox is not None else None
        self.snapshots = contest.work_dir / "inbox"
        self.fingerprints: dict[tuple[str, tuple], str] = {}  # (inbox path, signature) -> fingerprint
        self.accepted = [e for e in ledger.entries() if e.status == "accepted"]
        self.scored: set[int] = set()  # accepted entry ids a finished scoring pass saw stored

    def changed(self) -> None:
        """Something was recorded or stored: ``updated_at`` set, the update asked for."""
        with Ledger(self.contest.db) as ledger:  # its own connection: scorer events may come from any thread
            ledger.set_settings({"updated_at": time.time()})
        if self.update is not None:
            self.update.poke()

    def record(self, item: InboxItem, arrived_at: float, team_folder: str | None, baseline: bool = False) -> None:
        """Decide and record ``item`` unless this version of it is recorded already."""
        key = (item.inbox_path, item.signature)
        if key not in self.fingerprints:
            try:
                self.fingerprints[key] = fingerprint(item)
            except OSError:  # changed or removed while read: the next scan sees it again
                return
        if self.ledger.find(item.inbox_path, self.fingerprints[key]) is not None:
            return
        taken = take(item, self.snapshots)
        found = self.ledger.find(item.inbox_path, taken.fingerprint)
        if found is None:
            entry = decide(self.contest, self.accepted, inbox_path=item.inbox_path, taken=taken,
                           team_folder=team_folder, arrived_at=arrived_at, baseline=baseline)
            found = self.ledger.add(entry)
            if found.status == "accepted":
                self.accepted.append(found)
            shown = f"as {found.submission}" if found.status == "accepted" else f"({found.reason})"
            say(self.report, f"{found.status} {'baseline ' if baseline else ''}{item.inbox_path} {shown}")
            self.changed()
        self.fingerprints[(item.inbox_path, item.signature)] = taken.fingerprint

    def record_baselines(self) -> None:
        """Decide and record the contest's baselines (named by their path relative to the contest file)."""
        import os

        for path in self.contest.baselines:
            item = inbox_item(path, os.path.relpath(path, self.contest.path.parent))
            if item is not None:
                self.record(item, min(item.modified, time.time()), None, baseline=True)

    def record_arrivals(self, settle: bool) -> None:
        """Decide and record the inbox's settled entries (every entry when not ``settle``), in arrival order."""
        assert self.watch is not None
        arrivals: list[Arrival] = self.watch.poll(settle=settle)
        for arrival in arrivals:
            self.record(arrival.item, arrival.arrived_at, arrival.item.team_folder)

    def order(self) -> list[ContestEntry]:
        """The accepted entries in scoring order: baselines first, then by arrival (time, then inbox path)."""
        return sorted(self.accepted, key=lambda e: (not e.baseline, e.arrived_at, e.inbox_path))

    def score(self, stop: threading.Event) -> None:
        """Score the accepted entries not stored yet: one at a time with the local executor (a stop request is
        honoured between them), all at once with Ray; attack entries join every pass (the attack track runs
        what is missing)."""
        from ..scoring.child_run import read_entry
        from ..scoring.scorer import score_submissions
        from ..scoring.store import ResultStore, result_key

        profile = self.contest.profile or "base"
        with ResultStore(self.contest.db) as store:
            for e in self.accepted:
                if e.track != "attack" and store.has(result_key(e.content_hash, self.split_hash, __version__,
                                                                profile)):
                    self.scored.add(e.id)
        pending = [e for e in self.order() if e.id not in self.scored]
        if not pending:
            return
        entries = {}
        for e in self.order():
            if e.id not in self.scored or e.track == "attack":
                folder = self.snapshots / e.content_hash[:16]
                if folder.is_dir():
                    entries[e.id] = dataclasses.replace(read_entry(folder), name=e.submission, team=e.team)
                else:
                    say(self.report, f"skipped {e.submission}: its snapshot {folder} is gone")
                    self.scored.add(e.id)
        attacks = [entries[e.id] for e in self.order() if e.track == "attack" and e.id in entries]
        defenses = [entries[e.id] for e in pending if e.track != "attack" and e.id in entries]
        if self.contest.executor.kind == "ray" or not defenses:
            batches = [defenses]
        else:
            batches = [[defense] for defense in defenses]

        def on_event(kind: str, entry: Any, detail: str) -> None:
            if kind in STORED_EVENTS:
                self.changed()

        for number, batch in enumerate(batches):
            if number and stop.is_set():
                return
            score_submissions(batch + attacks, self.split_dir, self.contest.db, None,  # boards: in the background
                              profile=self.contest.profile, timeout=self.contest.timeout,
                              work_dir=self.contest.work_dir / "score", sandbox=self.contest.sandbox,
                              on_event=on_event, executor=self.contest.executor.kind,
                              ray_options=self.contest.executor.ray_options(), progress=self.progress,
                              explain=self.contest.explain)
            names = {entry.name for entry in batch + attacks}
            self.scored.update(e.id for e in pending if e.submission in names)


def write_leaderboards(contest: ContestSpec, split_hash: str) -> None:
    """The contest's CSV leaderboards from its store: ``leaderboard.csv`` (every entry) with
    ``leaderboard-attacks.csv`` (:func:`harness.scoring.scorer.write_boards`) and ``leaderboard-teams.csv``
    (:func:`write_team_leaderboard`); each written atomically. Nothing before the first stored result."""
    from ..scoring.scorer import write_boards
    from ..scoring.store import ResultStore

    with ResultStore(contest.db) as store:
        if not store.records(split_hash):
            return
        write_boards(store, split_hash, contest.leaderboard)
    write_team_leaderboard(contest.db, contest.team_leaderboard)


def write_team_leaderboard(db: Path, path: Path) -> Path:
    """The contest's leaderboard of teams (each team's best scored entry by public score, plus the baselines:
    what the site ranks, :func:`harness.site.build.chosen_records`) as a CSV in ``leaderboard.csv``'s format,
    written atomically."""
    from ..scoring.attack_board import with_attack_category
    from ..scoring.leaderboard import write_leaderboard
    from ..site.build import chosen_records, read_store

    view = read_store(db)
    chosen, _ = chosen_records(view, with_attack_category(view.records, view.matrix))
    return write_leaderboard(chosen, path)


def _past(deadline: float | None) -> bool:
    """Whether the deadline (UTC epoch seconds; None: none) has passed."""
    return deadline is not None and time.time() > deadline


def run_contest(contest: ContestSpec | str | Path, inbox: str | Path | None, *, once: bool = False,
                on_update: Callable[[], None] | None = None, stop: threading.Event | None = None,
                progress: bool = True) -> ContestRun:
    """Run ``contest`` on ``inbox`` (None: its baselines only): build or check its split, publish its settings in
    the ledger, record and score its baselines, then record and score each settled inbox entry; ``once``: scan
    once (no settle wait), score, return; else poll every ``poll_seconds`` until ``stop`` is set (the current
    step finishes first). In a background thread, after each recorded entry and stored result (coalesced: at
    most one running, one waiting), at the start and when the deadline passes, the CSV leaderboards are rewritten
    (:func:`write_leaderboards`: over a long history they take seconds, which scoring never waits for), then
    ``on_update()`` runs (the site). Returns the ledger's entries and the split's stored records."""
    from ..scoring.split import open_split
    from ..scoring.store import ResultStore

    if not isinstance(contest, ContestSpec):
        contest = load_contest(contest)
    inbox = Path(inbox) if inbox is not None else None
    if inbox is not None and not inbox.is_dir():
        raise UsageError(f"--inbox {inbox}: no such folder")
    stop = stop or threading.Event()
    split_dir = prepare_split(contest, progress)
    split_hash = open_split(split_dir).split_hash
    ray = contextlib.nullcontext()
    if contest.executor.kind == "ray":
        from ..scoring.ray_executor import ray_session

        ray = ray_session(contest.executor.ray_options())
    def update_all() -> None:
        write_leaderboards(contest, split_hash)
        if on_update is not None:
            on_update()

    with stage("contest", enabled=progress) as report, Ledger(contest.db) as ledger, ray, \
            BackgroundUpdate(update_all, lambda text: say(report, text, always=True)) as update:
        ledger.set_settings({**contest.settings(), "split_hash": split_hash, "updated_at": time.time()})
        runner = _Runner(contest, inbox, split_dir, split_hash, ledger, update, report, progress)
        past_deadline = _past(contest.deadline)
        update.poke()  # boards and site as the store holds them (after a kill too), before anything new
        runner.record_baselines()
        while True:
            if runner.watch is not None:
                runner.record_arrivals(settle=not once)
            runner.score(stop)
            if _past(contest.deadline) != past_deadline:
                past_deadline = not past_deadline  # the deadline passed: the site may now show the private board
                update.poke()
            if once or stop.is_set() or stop.wait(contest.poll_seconds):
                break
        entries = ledger.entries()
    with ResultStore(contest.db) as store:
        records = store.records(split_hash)
    return ContestRun(split_hash, entries, records)
