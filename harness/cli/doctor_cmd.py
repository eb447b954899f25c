"""``harness doctor``: which isolation scores submissions here and why, and framework and device facts."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import platform
import sys

from rich.table import Table

from .common import console


def _version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def facts() -> list[tuple[str, str]]:
    """(topic, fact) rows; imports neither torch nor tensorflow."""
    from .. import __version__
    from ..errors import UsageError
    from ..sandbox.choice import choose_isolation, layers
    from ..sandbox.limits import default_limits, gpu_visible

    try:
        isolation = choose_isolation("auto")
        chosen = f"{isolation.kind}: {isolation.reason}"
    except UsageError as exc:
        chosen = f"NONE: {exc.message} (harness score refuses to run submissions; {exc.hint})"
    limits = default_limits(3600.0, None)
    memory = f"{limits.memory_bytes / (1 << 30):.1f} GiB" if limits.memory_bytes else "not limited (GPU visible)"
    rows = [
        ("harness", __version__),
        ("python", f"{platform.python_version()} ({sys.executable})"),
        ("platform", f"{platform.system()} {platform.release()} {platform.machine()}, {os.cpu_count()} CPUs"),
        ("isolation", chosen),
        *layers(),
        ("child limits", f"address space {memory}; open files {limits.open_files}; processes +{limits.processes}"
                         f"{' (not enforced for children that keep uid 0)' if os.getuid() == 0 else ''}; "
                         "CPU from --timeout x threads"),
        ("torch", _version("torch")),
        ("torchvision", _version("torchvision")),
        ("tensorflow", _version("tensorflow")),
        ("gpu", "NVIDIA device visible" if gpu_visible() else "none visible (CPU)"),
        ("HARNESS_DEVICE", os.environ.get("HARNESS_DEVICE", "(unset: picked automatically)")),
    ]
    return rows


def doctor() -> None:
    """Report which isolation scores submissions here and why, and framework and device facts."""
    table = Table(title="harness doctor", show_header=False)
    table.add_column("topic", style="bold")
    table.add_column("fact", overflow="fold")
    for topic, fact in facts():
        table.add_row(topic, fact)
    console.print(table)
