"""``harness submission validate`` for submissions the organiser did not write.

The organiser's process reads the TOML only; checks that need the submission's own plugin
modules (``plugins = [...]``, whose import runs their code) run in a sandboxed child,
``python -m harness.submission_check PATH``, which prints the problems as JSON. The child
sees the code, a copy of the submission (read-only) and its own scratch folder, nothing else.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

from .plugins import CHILD_PLUGIN_ENV
from .submission import Problem, read_toml, submission_file, validate_submission

TIMEOUT = 300.0


def needs_sandbox(path: str | Path) -> bool:
    """The submission names plugin modules of its own (validating imports them)."""
    try:
        return bool(read_toml(submission_file(path)).get("plugins"))
    except Exception:  # noqa: BLE001 - a broken TOML is reported by validate_submission, with no import
        return False


def validate_isolated(path: str | Path, sandbox: str = "auto") -> list[Problem]:
    """Every problem of the submission at ``path``; its plugin modules are imported only in a child
    isolated by ``sandbox`` (auto, bwrap, ns, landlock; none imports them here, for trusted ones)."""
    from .sandbox.child import failure_reason, readable_copy, run_isolated
    from .sandbox.choice import choose_isolation
    from .sandbox.limits import default_limits
    from .sandbox.view import INSIDE, Bind, child_view

    if sandbox == "none" or not needs_sandbox(path):
        if sandbox != "none":
            choose_isolation(sandbox)  # the same answer whatever the submission holds
        return validate_submission(path)
    isolation = choose_isolation(sandbox)
    root = submission_file(path).parent
    with tempfile.TemporaryDirectory(prefix="harness-validate-") as folder:
        scratch = Path(folder)
        readable_copy(root, scratch / "submission")
        view = child_view(scratch, [Bind(str(scratch / "submission"), str(INSIDE / "submission"))], gpu=False)
        inside = lambda target: view.path(target, isolation.mapped)  # noqa: E731
        env = {"PATH": "/usr/bin:/bin", "PYTHONUNBUFFERED": "1", "MPLBACKEND": "Agg",
               **{k: os.environ[k] for k in CHILD_PLUGIN_ENV if k in os.environ}, **view.home_env(isolation.mapped)}
        command = [sys.executable, "-m", "harness.submission_check", inside(INSIDE / "submission")]
        code = run_isolated(command, view, isolation, default_limits(TIMEOUT, 1), env, scratch, TIMEOUT)
        if code is None:
            return [Problem("plugins", f"importing the plugin modules took more than {TIMEOUT:g} s (sandbox: "
                                       f"{isolation.kind})")]
        if code != 0:
            reason = failure_reason(code, scratch / "stderr.log").removeprefix("crashed: ")
            return [Problem("plugins", f"checking the plugin modules in the sandbox ({isolation.kind}) failed: "
                                       f"{reason}")]
        try:
            lines = (scratch / "stdout.log").read_text().strip().splitlines()
            found = json.loads(lines[-1])
            problems = [Problem(str(field), str(message)) for field, message in found]
        except (ValueError, IndexError, TypeError):
            return [Problem("plugins", "the sandboxed check printed no problem list (its output was changed)")]
    # the child reports its own paths: name the organiser's folder instead
    return [Problem(p.field, p.message.replace(inside(INSIDE / "submission"), str(root))) for p in problems]


def main(argv: list[str] | None = None) -> int:
    """The sandboxed side: validate PATH (importing its plugin modules), print [[field, message], ...]."""
    argv = sys.argv[1:] if argv is None else argv
    problems = validate_submission(argv[0])
    print(json.dumps([[p.field, p.message] for p in problems]), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
