"""A defense that looks for the hidden labels in everything the scorer hands it: environment, arguments,
working directory, and the scratch folder holding its images. It reports what it saw.

Reading arbitrary paths of the organiser's file system (or its /proc entry) is stopped by the
sandbox (harness score --sandbox), not by the plain child process; see docs/competition.md.
"""

import json
import os
import sys
from pathlib import Path

from harness import hookimpl
from harness.specs import DefenseSpec

SECRETS = ("labels.npy", "tags.csv", "recipe.toml", "summary.json", "organiser")


def look_around():
    found = []
    for key, value in os.environ.items():
        if any(word in (key + value).lower() for word in ("label", "organiser", "recipe", "split")):
            found.append(f"env {key}={value}")
    found += [f"argv {a}" for a in sys.argv if any(s in a for s in SECRETS)]
    given = [Path(a).resolve() for a in sys.argv if os.path.exists(a)]
    for folder in {Path.cwd(), *(p if p.is_dir() else p.parent for p in given)}:
        for path in folder.rglob("*"):
            if path.name in SECRETS or path.suffix == ".npy" and "label" in path.name:
                found.append(f"file {path}")
    return sorted(set(found))


class SnoopFit:
    def __init__(self, **params):
        self.params = params

    def fit(self, model, train, val=None, out_dir=None, *, resume=False):
        report = {"found": look_around(), "cwd": str(Path.cwd()), "argv": sys.argv,
                  "environment": sorted(os.environ)}
        Path("snoop-report.json").write_text(json.dumps(report, indent=1))


@hookimpl
def harness_register_defenses():
    return [DefenseSpec(name="snoop-fit", factory=SnoopFit, description="looks for labels", framework="torch",
                        params={"seed": 0, "progress": True})]
