"""The ``harness`` command line: one typer app per command group, assembled in :mod:`.main`."""
