"""Progress of long work: rich bars on a terminal, one flushed line per unit with elapsed time otherwise.

Everything goes to stderr, so a command's results on stdout stay clean. On a terminal a
:func:`stage` draws a bar (nested stages share one display); when stderr is not a terminal
(piped to a file, CI, CliRunner) it prints ``[  12.3s] NAME: started``, one line per finished
unit (epoch, attack x eps, corruption, submission, split category) and ``NAME: finished in
12.3s``. ``enabled=False`` (the commands' ``--no-progress``) prints nothing at all.
"""

from __future__ import annotations

import contextlib
import time
from typing import Callable, Iterator

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

_START = time.perf_counter()  # elapsed times count from this module's import, early in every command
_CONSOLE = Console(stderr=True)
_LIVE: list[Progress] = []  # the one bar display while a stage draws on a terminal


def elapsed() -> float:
    """Seconds since this module was imported (early in every command)."""
    return time.perf_counter() - _START


def make_progress(**kwargs) -> Progress:
    """The harness's standard progress display."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[status]}"),
        **kwargs,
    )


class Stage:
    """One stage of a command, reported as bars (terminal) or lines (otherwise); see :func:`stage`."""

    def __init__(self, name: str, console: Console, mode: str) -> None:
        self.name, self.console, self.mode = name, console, mode
        self.started = time.perf_counter()
        self._progress: Progress | None = None
        self._task = None

    def line(self, text: str) -> None:
        """One plain line ``[elapsed] NAME: text``, flushed at once (line mode only)."""
        if self.mode != "lines":
            return
        self.console.print(f"[{elapsed():7.1f}s] {self.name}: {text}", markup=False, highlight=False,
                           soft_wrap=True)
        with contextlib.suppress(Exception):
            self.console.file.flush()

    def bar(self, description: str, total: int | None) -> None:
        """Start a new bar (terminal only), which :meth:`advance` and :meth:`done` move from now on."""
        if self._progress is not None:
            self._task = self._progress.add_task(description, total=total, status="")

    def advance(self, n: int = 1, status: str = "") -> None:
        """Move the current bar by ``n`` units (terminal only; no line: use :meth:`done` for those)."""
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, advance=n, status=status)

    def done(self, text: str, n: int = 1) -> None:
        """A finished unit: the bar moves ``n`` and shows ``text``; a line otherwise."""
        self.advance(n, text)
        self.line(text)

    def seconds(self) -> float:
        """Seconds since this stage started."""
        return time.perf_counter() - self.started


def _mode(enabled: bool, console: Console) -> str:
    if not enabled:
        return "off"
    return "bars" if console.is_terminal and not console.is_dumb_terminal else "lines"


@contextlib.contextmanager
def stage(name: str, total: int | None = None, *, enabled: bool = True, console: Console | None = None,
          announce: bool = True) -> Iterator[Stage]:
    """Report the stage ``name``; ``total`` units draw a bar at once on a terminal (else call
    :meth:`Stage.bar`). Off the terminal, start and end lines (unless ``announce`` is False) frame
    the :meth:`Stage.done` lines; a stage that raises ends with ``failed after ...``."""
    console = console or _CONSOLE
    report = Stage(name, console, _mode(enabled, console))
    with contextlib.ExitStack() as stack:
        if report.mode == "bars":
            if _LIVE and _LIVE[-1].console is console:
                report._progress = _LIVE[-1]
            else:
                report._progress = stack.enter_context(make_progress(console=console, transient=False))
                _LIVE.append(report._progress)
                stack.callback(_LIVE.pop)
            if total is not None:
                report.bar(name, total)
        if announce:
            report.line("started" if total is None else f"started ({total} to do)")
        try:
            yield report
        except BaseException:
            report.line(f"failed after {report.seconds():.1f}s")
            raise
        if announce:
            report.line(f"finished in {report.seconds():.1f}s")


@contextlib.contextmanager
def progress_bar(total: int, description: str, enabled: bool = True,
                 console: Console | None = None) -> Iterator[Callable[..., None]]:
    """Yield ``advance(n=1, status="")`` over ``total`` units: a bar on a terminal; otherwise start and
    end lines and, for 20 units or more, a line at each tenth."""
    with stage(description, total, enabled=enabled, console=console) as report:
        count, shown = 0, 0

        def advance(n: int = 1, status: str = "") -> None:
            nonlocal count, shown
            report.advance(n, status)
            count += n
            tenth = count * 10 // max(1, total)
            if total >= 20 and tenth > shown and count < total:
                shown = tenth
                report.line(f"{count}/{total}")

        yield advance
