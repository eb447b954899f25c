"""A plugin whose hook name is misspelled."""

from harness import hookimpl


@hookimpl
def harness_register_atacks():
    return []
