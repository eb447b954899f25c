"""harness-extra: a third-party plugin package (tests only)."""

__version__ = "0.3.0"
