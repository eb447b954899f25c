"""The progress facility: bars on a terminal, one line per unit with elapsed time otherwise, nothing when off."""

import io
import re

import pytest
from rich.console import Console

from harness.progress import progress_bar, stage

LINE = re.compile(r"^\[ *\d+\.\ds\] ")


def console(terminal: bool) -> tuple[Console, io.StringIO]:
    out = io.StringIO()
    return Console(file=out, force_terminal=terminal, width=100, color_system=None), out


def test_not_a_terminal_prints_a_line_per_unit_with_elapsed_time():
    plain, out = console(False)
    with stage("evaluate --robust", 2, console=plain) as report:
        report.advance(1, "a batch")  # bars only: no line
        report.done("pgd eps 8/255 done (robust 41.2%)")
        report.done("square eps 8/255 done (robust 50.0%)")
    lines = out.getvalue().splitlines()
    assert [LINE.sub("", line) for line in lines] == [
        "evaluate --robust: started (2 to do)",
        "evaluate --robust: pgd eps 8/255 done (robust 41.2%)",
        "evaluate --robust: square eps 8/255 done (robust 50.0%)",
        f"evaluate --robust: finished in {lines[-1].rsplit(' ', 1)[1]}",
    ]
    assert all(LINE.match(line) for line in lines)


def test_a_terminal_gets_a_bar_and_no_lines():
    terminal, out = console(True)
    with stage("score", 2, console=terminal) as report:
        report.done("alpha scored")
        report.done("beta scored")
    text = out.getvalue()
    assert "score" in text and "2/2" in text and "beta scored" in text
    assert not re.search(r"\[ *\d+\.\ds\] score:", text)


def test_nested_stages_share_one_bar_display():
    terminal, out = console(True)
    with stage("outer", 1, console=terminal) as outer:
        with stage("inner", 3, console=terminal) as inner:
            assert inner._progress is outer._progress
            for _ in range(3):
                inner.done("unit")
        outer.done("outer unit")
    assert "3/3" in out.getvalue() and "1/1" in out.getvalue()


@pytest.mark.parametrize("terminal", [True, False])
def test_disabled_prints_nothing(terminal):
    chosen, out = console(terminal)
    with stage("train", 3, enabled=False, console=chosen) as report:
        report.bar("epoch 1/3", 4)
        report.done("epoch 1/3 loss 0.1")
    with progress_bar(5, "decoding", enabled=False, console=chosen) as advance:
        advance()
    assert out.getvalue() == ""


def test_a_failing_stage_says_so():
    plain, out = console(False)
    with pytest.raises(RuntimeError), stage("split build", console=plain):
        raise RuntimeError("boom")
    assert out.getvalue().splitlines()[-1].split("] ", 1)[1].startswith("split build: failed after ")


def test_progress_bar_lines_at_each_tenth_when_piped():
    plain, out = console(False)
    with progress_bar(40, "decoding train", console=plain) as advance:
        for _ in range(40):
            advance()
    body = [line.split("] ", 1)[1] for line in out.getvalue().splitlines()]
    assert body[0] == "decoding train: started (40 to do)" and body[-1].startswith("decoding train: finished in")
    assert body[1:-1] == [f"decoding train: {n}/40" for n in range(4, 40, 4)]

