"""``harness contest validate|run``: a contest file, an inbox of submissions, limits (organisers)."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import typer
from rich.table import Table

from .common import console, error_console

app = typer.Typer(help="Run a contest: contest.toml, an inbox of arriving submissions, limits, a static site "
                       "(organisers).", no_args_is_help=True)


@app.command("validate")
def validate(contest: Path = typer.Argument(..., help="The contest file (contest.toml).")) -> None:
    """Check a contest file: print "ok FILE", or every problem (one line each, naming the field; exit 2)."""
    from ..contest.spec import contest_problems

    _, problems = contest_problems(contest)
    for problem in problems:
        error_console.print(f"{contest}: {problem}", highlight=False, soft_wrap=True)
    if problems:
        raise typer.Exit(2)
    console.print(f"[green]ok[/] {contest}", highlight=False)


def site_updater(db: Path, site_dir: Path) -> Callable[[], None]:
    """What ``harness contest run`` calls (in a background thread) after each recorded entry and stored result:
    the static site of ``db`` rebuilt into ``site_dir``."""

    def update() -> None:
        from ..errors import HarnessError
        from ..site import build_site

        try:
            built = build_site(db, site_dir)
        except (HarnessError, OSError) as exc:  # the contest goes on; the next update tries again
            error_console.print(f"site not rebuilt: {getattr(exc, 'message', exc)}", style="yellow",
                                highlight=False, soft_wrap=True)
            return
        error_console.print(f"site rebuilt: {built.out / 'index.html'} ({built.pages} pages, {built.partition} "
                            f"partition, {built.seconds:.1f} s)", highlight=False, soft_wrap=True)

    return update


@app.command("run")
def run(
    contest: Path = typer.Argument(..., help="The contest file (contest.toml)."),
    inbox: Path = typer.Option(..., "--inbox", help="Folder where submissions arrive: INBOX/TEAM/ENTRY or "
                               "INBOX/ENTRY, each a submission folder or a .tar.gz of harness submission pack."),
    once: bool = typer.Option(False, "--once", help="Score what is in the inbox now (no settle wait), then exit."),
    no_site: bool = typer.Option(False, "--no-site", help="Do not rebuild the static site (OUTPUT/site)."),
    progress: bool = typer.Option(True, "--progress/--no-progress",
                                  help="Progress: bars on a terminal, a timed line per entry when piped."),
) -> None:
    """Build (or check) the contest's split, then record every entry that settles in the inbox (accepted, or
    rejected with the reason: never scored) and score the accepted ones in arrival order, baselines first;
    poll every poll_seconds until SIGINT/SIGTERM (the current step finishes first), or once with --once. The
    CSV leaderboards and the static site (OUTPUT/site) are rewritten in the background after each change.
    Killed at any point, a rerun loses nothing and scores nothing twice."""
    from ..contest.runner import run_contest, stop_on_signals
    from ..contest.spec import load_contest

    spec = load_contest(contest)
    if spec.executor.kind == "local":
        from ..sandbox.choice import choose_isolation

        isolation = choose_isolation(spec.sandbox)
        console.print(f"isolation: {isolation.kind} ({isolation.reason})", highlight=False, soft_wrap=True)
        unisolated = isolation.kind == "none"
    else:
        console.print(f"executor: ray ({spec.executor.address or 'local instance'}); isolation: sandbox "
                      f"{spec.sandbox}, chosen on each worker", highlight=False, soft_wrap=True)
        unisolated = spec.sandbox == "none"
    if unisolated:
        from .score_cmd import warn_unisolated

        warn_unisolated()
    updater = None if no_site else site_updater(spec.db, spec.site_dir)

    def report(line: str) -> None:
        error_console.print(line, style="yellow", highlight=False, soft_wrap=True)

    with stop_on_signals(report) as stop:
        result = run_contest(spec, inbox, once=once, on_update=updater, stop=stop, progress=progress)
    console.print(entries_table(result, f"contest {spec.name}: {len(result.entries)} entries"))
    accepted = sum(e.status == "accepted" for e in result.entries)
    site = "" if no_site else f", site {spec.site_dir}"
    console.print(f"{accepted} accepted, {len(result.entries) - accepted} rejected; results in {spec.db}, "
                  f"leaderboard {spec.leaderboard}{site}", highlight=False, soft_wrap=True)


def entries_table(result, title: str) -> Table:
    """Every ledger entry in arrival order: arrival (UTC), team, submission (its inbox path when rejected),
    status (the stored result's, "waiting" before one) and the public score or the reason."""
    import time

    from rich import box

    from ..scoring.store import latest

    stored = {r.submission: r for r in latest(result.records)}
    table = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 1))
    for column in ("arrived (UTC)", "team", "submission", "status", "score / reason"):
        table.add_column(column, overflow="fold", no_wrap=column in ("arrived (UTC)", "status"),
                         ratio=1 if column == "score / reason" else None)
    for entry in result.entries:
        record = stored.get(entry.submission) if entry.status == "accepted" else None
        status = entry.status if entry.status == "rejected" else record.status if record else "waiting"
        score = record.metrics.get("public", {}).get("score") if record else None
        detail = f"{score * 100:.1f}" if score is not None else (record.reason if record else entry.reason)
        name = entry.submission or entry.inbox_path
        table.add_row(time.strftime("%Y-%m-%d %H:%M", time.gmtime(entry.arrived_at)), entry.team,
                      name + (" (baseline)" if entry.baseline else ""), status, detail,
                      style=None if status in ("scored", "waiting") else "red")
    return table
