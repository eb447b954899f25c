"""The ``harness`` app. Start-up imports neither torch nor tensorflow (a test checks it)."""

from __future__ import annotations

import typer

from .. import __version__
from .common import HarnessGroup
from . import contest_cmd, data_cmd, explain_cmd, plot_cmd, score_cmd, site_cmd, split_cmd, submission_cmd
from .demo_cmd import demo
from .doctor_cmd import doctor
from .plugins_cmd import plugins

app = typer.Typer(
    name="harness",
    cls=HarnessGroup,  # every command's errors handled once, there
    help="Competition harness for robust image classification.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"harness {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Show the version and exit."),
) -> None:
    """Competition harness for robust image classification.

    Set HARNESS_DEBUG=1 to see tracebacks.
    """


app.command(rich_help_panel="Plugins")(plugins)
app.add_typer(data_cmd.app, name="data", rich_help_panel="Data")
app.command(rich_help_panel="Main job")(demo)
app.add_typer(submission_cmd.app, name="submission", rich_help_panel="Participants")
app.command(rich_help_panel="Participants")(submission_cmd.train)
app.command(rich_help_panel="Participants")(submission_cmd.evaluate)
app.command(rich_help_panel="Pictures")(explain_cmd.explain)
app.add_typer(plot_cmd.app, name="plot", rich_help_panel="Pictures")
app.add_typer(split_cmd.app, name="split", rich_help_panel="Organisers")
app.command(rich_help_panel="Organisers")(score_cmd.score)
app.command(rich_help_panel="Organisers")(score_cmd.leaderboard)
app.add_typer(contest_cmd.app, name="contest", rich_help_panel="Organisers")
app.add_typer(site_cmd.app, name="site", rich_help_panel="Organisers")
app.command(rich_help_panel="Organisers")(doctor)


def main() -> None:
    """Console-script entry point."""
    app()


if __name__ == "__main__":
    main()
