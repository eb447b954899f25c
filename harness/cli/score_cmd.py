"""Organiser commands ``harness score`` and ``harness leaderboard`` (the split group: :mod:`.split_cmd`)."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from rich.table import Table

from .common import console, error_console

def _artifacts(items: Optional[List[str]]) -> dict[str, Path]:
    from ..errors import UsageError

    artifacts = {}
    for item in items or []:
        name, sep, folder = item.partition("=")
        if not sep or not name or not folder:
            raise UsageError(f"--artifact '{item}': expected NAME=FOLDER (a trained model folder)")
        artifacts[name] = Path(folder)
    return artifacts


EVENT_STYLES = {"scored": "green", "invalid": "red", "failed": "red", "cached": "cyan", "skipped": "yellow",
                "running": "bold", "queued": "dim", "attacked": "green", "classified": "green"}


def _printer(kind: str, entry, detail: str) -> None:
    text = f"[{EVENT_STYLES[kind]}]{kind:>8}[/] {entry.name} ({entry.framework})" + (f": {detail}" if detail else "")
    (error_console if kind in ("failed", "invalid") else console).print(text, highlight=False, soft_wrap=True)


class ScoreView:
    """Live table of submissions: queued / running (where) / scored / failed, with elapsed time (ray executor)."""

    def __init__(self) -> None:
        import time

        self.clock = time.monotonic
        self.rows: dict[str, dict] = {}

    def __call__(self, kind: str, entry, detail: str) -> None:
        row = self.rows.setdefault(entry.name, {"framework": entry.framework, "since": self.clock()})
        if kind == "running":
            row.update(where=detail.removeprefix("on "), since=self.clock())
        elif kind in ("scored", "failed", "attacked", "classified"):
            row["took"] = self.clock() - row["since"]
        row.update(kind=kind, detail=detail if kind in ("failed", "invalid", "skipped", "cached") else "")

    def __rich__(self) -> Table:
        counts = {kind: sum(r["kind"] == kind for r in self.rows.values()) for kind in EVENT_STYLES}
        table = Table(title="scoring: " + ", ".join(f"{n} {kind}" for kind, n in counts.items() if n))
        for column in ("submission", "framework", "state", "where / why", "seconds"):
            table.add_column(column, justify="right" if column == "seconds" else "left", overflow="fold")
        for name, row in self.rows.items():
            seconds = row.get("took", self.clock() - row["since"]) if row["kind"] in (
                "running", "scored", "failed", "attacked", "classified") else None
            table.add_row(name, row["framework"], f"[{EVENT_STYLES[row['kind']]}]{row['kind']}[/]",
                          row["detail"] or row.get("where", ""), f"{seconds:.0f}" if seconds is not None else "")
        return table


def score(
    submissions: List[Path] = typer.Argument(..., help="Submission folders (or folders of them, e.g. submissions/) "
                                     "or archives of harness submission pack (.tar.gz)."),
    split: Path = typer.Option(..., "--split", help="Hidden split folder (verified before scoring)."),
    profile: Optional[str] = typer.Option(None, "--profile", "-P", help="Budget profile, e.g. cpu or gpu."),
    db: Path = typer.Option(Path("runs/results.sqlite"), "--db", help="SQLite results store (resumable)."),
    leaderboard: Path = typer.Option(Path("runs/leaderboard.csv"), "--leaderboard", help="Leaderboard CSV."),
    timeout: float = typer.Option(3600.0, "--timeout", help="Seconds per child: the submission's (train + "
                                                            "predict) and each adaptive-phase child."),
    work_dir: Path = typer.Option(Path("runs/score"), "--work-dir", help="Scratch folders, one per submission."),
    threads: Optional[int] = typer.Option(None, "--threads", help="Threads per child process."),
    artifact: Optional[List[str]] = typer.Option(None, "--artifact",
                                                 help="NAME=FOLDER: use this trained model instead of training."),
    retry_failed: bool = typer.Option(False, "--retry-failed", help="Score again submissions stored as failed."),
    explain: int = typer.Option(0, "--explain", min=0, max=16, help="Each child also explains N validation images "
                                "(saliency, Grad-CAM, feature maps) and returns its training history; checked and "
                                "drawn into WORK_DIR/reports/ (0: none)."),
    sandbox: str = typer.Option("auto", "--sandbox", help="Child isolation: auto (bwrap, else the built-in ns "
                                "sandbox, else landlock, else refuse), bwrap, ns or landlock (fail if it cannot run), "
                                "or none (no isolation: only for submissions you trust)."),
    memory_gb: Optional[float] = typer.Option(None, "--memory-gb", help="Address-space cap per child in GiB "
                                              "(0: none; default: the machine's memory without a GPU)."),
    executor: str = typer.Option("local", "--executor", help="local (children one after the other here) or ray "
                                 "(one Ray task each).", rich_help_panel="Ray"),
    address: Optional[str] = typer.Option(None, "--address", help="Ray cluster to use, e.g. auto or HOST:6379 "
                                          "(default: a local Ray instance for this run).", rich_help_panel="Ray"),
    cpus_per_submission: float = typer.Option(1.0, "--cpus-per-submission", min=0.0,
                                              help="CPUs each task reserves (and its child's threads).",
                                              rich_help_panel="Ray"),
    gpus_per_submission: float = typer.Option(0.0, "--gpus-per-submission", min=0.0,
                                              help="GPUs each task reserves.", rich_help_panel="Ray"),
    retries: int = typer.Option(2, "--retries", min=0, help="Times a task whose worker died is run again.",
                                rich_help_panel="Ray"),
    worker_dir: Optional[str] = typer.Option(None, "--worker-dir", help="Staging folder on each Ray node "
                                             "(default: its temp folder + harness-ray-UID).", rich_help_panel="Ray"),
) -> None:
    """Train and predict every submission in its own child process; attack its code-free export white-box in
    two harness-only children for each adaptive category of the split; store results (with flags and how they
    were obtained); write the leaderboard (95% intervals, shared =k ranks).

    When the split has an attack track, the attack submissions (track = "attack") and the recipe's baselines
    run next, each in its own child; their images, clipped into the budget, are classified by every scored
    defense, and the attack leaderboard is written beside the leaderboard (NAME-attacks.csv)."""
    from ..errors import UsageError
    from ..scoring.scorer import EXECUTORS, entries_from_paths, score_submissions

    if executor not in EXECUTORS:
        raise UsageError(f"--executor '{executor}': expected one of {', '.join(EXECUTORS)}")
    if executor == "local":
        from ..sandbox.choice import choose_isolation

        if address or cpus_per_submission != 1.0 or gpus_per_submission or retries != 2 or worker_dir:
            raise UsageError("--address, --cpus/--gpus-per-submission, --retries and --worker-dir go with "
                             "--executor ray")
        isolation = choose_isolation(sandbox)
        entries = entries_from_paths(list(submissions), _artifacts(artifact), work_dir / "archives")
        console.print(f"isolation: {isolation.kind} ({isolation.reason})", highlight=False, soft_wrap=True)
        if isolation.kind == "none":
            warn_unisolated()
        records = score_submissions(entries, split, db, leaderboard, profile=profile, timeout=timeout,
                                    work_dir=work_dir, threads=threads, retry_failed=retry_failed,
                                    sandbox=isolation.kind, memory_gb=memory_gb, on_event=_printer,
                                    explain=explain)
    else:
        from rich.live import Live

        from ..scoring.ray_executor import RayOptions, ray_session

        entries = entries_from_paths(list(submissions), _artifacts(artifact), work_dir / "archives")
        options = RayOptions(address=address, cpus_per_submission=cpus_per_submission,
                             gpus_per_submission=gpus_per_submission, retries=retries, worker_dir=worker_dir)
        console.print(f"executor: ray ({address or 'local instance'}); isolation: --sandbox {sandbox}, "
                      "chosen on each worker", highlight=False, soft_wrap=True)
        if sandbox == "none":
            warn_unisolated()
        view = ScoreView()
        with ray_session(options), Live(view, console=console, refresh_per_second=4):
            records = score_submissions(entries, split, db, leaderboard, profile=profile, timeout=timeout,
                                        work_dir=work_dir, threads=threads, retry_failed=retry_failed,
                                        sandbox=sandbox, memory_gb=memory_gb, on_event=view,
                                        executor="ray", ray_options=options, progress=False,  # the live view
                                        explain=explain)
        console.print()
    show_leaderboard(leaderboard, private=False)
    from ..scoring.scorer import attack_leaderboard_path
    from ..scoring.split import open_split
    from ..scoring.store import STATUSES, latest

    attack_board = show_attack_leaderboard(db, open_split(split, verify=False).split_hash, private=False)
    shown = latest(records)
    counts = ", ".join(f"{sum(r.status == status for r in shown)} {status}" for status in STATUSES)
    boards = f"leaderboard {leaderboard}" + (f", attack leaderboard {attack_leaderboard_path(leaderboard)}"
                                             if attack_board else "")
    console.print(f"{counts}; results in {db}, {boards}", highlight=False, soft_wrap=True)


def show_attack_leaderboard(db: Path, split_hash: str, private: bool) -> bool:
    """The attack leaderboard of ``split_hash`` from the store, when the split has attack runs (True then)."""
    from ..scoring.store import ResultStore

    with ResultStore(db) as store:
        attacks, matrix = store.attack_records(split_hash), store.matrix_records(split_hash)
    if attacks:
        partition = "private" if private else "public"
        print_attack_leaderboard(attacks, matrix, partition, f"{partition} attack leaderboard ({db})")
    return bool(attacks)


def warn_unisolated() -> None:
    """The warning of ``--sandbox none`` (stderr): submission code runs with this user's rights."""
    from .common import error_console

    error_console.print("Warning: --sandbox none: submission code runs unisolated with your user's rights (it can "
                      "read the labels); every result records isolation 'none'", style="yellow", highlight=False)


def show_leaderboard(path: Path, private: bool) -> None:
    from ..scoring.leaderboard import read_leaderboard

    partition = "private" if private else "public"
    columns, rows = read_leaderboard(path, partition)
    print_leaderboard(columns, rows, f"{partition} leaderboard ({path})")


def print_leaderboard(columns, rows, title: str) -> None:
    """The table, then what its flag marks stand for (yellow) and the rows not scored (red)."""
    from ..scoring.leaderboard import failure_lines, flag_lines, render_leaderboard

    console.print(render_leaderboard(columns, rows, title, console.width))
    for line in flag_lines(rows):
        console.print(line, style="yellow", highlight=False, soft_wrap=True)
    for line in failure_lines(rows):
        console.print(line, style="red", highlight=False, soft_wrap=True)


def leaderboard(
    source: Path = typer.Argument(Path("runs/leaderboard.csv"), help="Leaderboard CSV or SQLite results store."),
    private: bool = typer.Option(False, "--private", help="Show the private partition (organisers)."),
    split_hash: Optional[str] = typer.Option(None, "--split-hash", help="With a store: this split (default latest)."),
    history: bool = typer.Option(False, "--history", help="With a store: every stored result of the split, oldest "
                                 "first (the leaderboard shows each submission's latest)."),
    attacks_csv: Optional[Path] = typer.Option(None, "--attacks-csv", help="With a store: write the attack "
                                               "leaderboard of the split's attack track to this CSV."),
) -> None:
    """Show the leaderboard (each submission's latest result): public partition by default, --private for
    organisers; --history lists every stored result. Shared ranks show =k; flag marks are explained below.
    With a store whose split has an attack track, the defenses' attacks category (their worst case over every
    scored attack) counts in the score, and the attack leaderboard follows."""
    from ..errors import UsageError
    from ..scoring.attack_board import with_attack_category
    from ..scoring.leaderboard import PARTITIONS, leaderboard_columns, leaderboard_rows
    from ..scoring.store import ResultStore

    if not source.exists():
        raise UsageError(f"{source}: no such leaderboard CSV or results store",
                         hint="run: harness score ... (or harness demo)")
    if source.suffix in (".sqlite", ".db", ".sqlite3"):
        with ResultStore(source) as store:
            chosen = split_hash or store.latest_split()
            records = [r for r in store.records() if chosen and r.split_hash.startswith(chosen)]
            full = records[0].split_hash if records else ""
            attacks, matrix = store.attack_records(full), store.matrix_records(full)
        if not records:
            raise UsageError(f"{source}: no results" + (f" for split {split_hash}" if split_hash else ""))
        if history:
            console.print(history_table(records, private, f"results of split {records[0].split_hash[:16]} "
                                                          f"({source})"))
            return
        partition = PARTITIONS[1] if private else PARTITIONS[0]
        records = with_attack_category(records, matrix)
        print_leaderboard(leaderboard_columns(records), leaderboard_rows(records, partition),
                          f"{partition} leaderboard ({source})")
        if attacks:
            print_attack_leaderboard(attacks, matrix, partition, f"{partition} attack leaderboard ({source})")
        if attacks_csv is not None:
            if not attacks:
                raise UsageError(f"{source}: no attack-track results for split {full[:16]}: no --attacks-csv to "
                                 "write")
            from ..scoring.attack_board import write_attack_leaderboard

            console.print(f"wrote {write_attack_leaderboard(attacks, matrix, attacks_csv)}", highlight=False)
        return
    for flag, given in (("--history", history), ("--attacks-csv", attacks_csv is not None)):
        if given:
            raise UsageError(f"{source}: {flag} needs the SQLite results store (e.g. runs/results.sqlite)")
    show_leaderboard(source, private)


def print_attack_leaderboard(attacks, matrix, partition: str, title: str) -> None:
    """The attack table, then its ranked rows' notes (yellow) and its unranked rows (red)."""
    from ..scoring.attack_board import (attack_columns, attack_failure_lines, attack_leaderboard_rows,
                                        attack_note_lines, render_attack_leaderboard)

    rows = attack_leaderboard_rows(attacks, matrix, partition)
    console.print(render_attack_leaderboard(attack_columns(matrix), rows, title, console.width))
    for line in attack_note_lines(rows):
        console.print(line, style="yellow", highlight=False, soft_wrap=True)
    for line in attack_failure_lines(rows):
        console.print(line, style="red", highlight=False, soft_wrap=True)


def history_table(records, private: bool, title: str) -> Table:
    """Every record, oldest first: when, submission, profile, status, score (public or private) and reason."""
    import time

    from rich import box

    partition = "private" if private else "public"
    table = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 1))
    for column in ("finished (UTC)", "submission", "profile", "status", "score", "reason"):
        table.add_column(column, justify="right" if column == "score" else "left", overflow="fold",
                         no_wrap=column not in ("submission", "reason"), ratio=1 if column == "reason" else None)
    for record in records:
        score = record.metrics.get(partition, {}).get("score")
        table.add_row(time.strftime("%Y-%m-%d %H:%M", time.gmtime(record.finished_at)), record.submission,
                      record.profile, record.status, "" if score is None else f"{score * 100:.1f}", record.reason,
                      style=None if record.status == "scored" else "red")
    return table
