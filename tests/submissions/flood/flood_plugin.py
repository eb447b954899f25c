"""A defense that floods stdout and stderr (tens of megabytes), then trains nothing: scored, logs capped."""

import sys

from harness import hookimpl
from harness.specs import DefenseSpec

LINE = "flood " * 170 + "\n"  # about 1 KiB


class FloodFit:
    def __init__(self, **params):
        self.params = params

    def fit(self, model, train, val=None, out_dir=None, *, resume=False):
        for _ in range(30 * 1024):
            sys.stdout.write(LINE)
        for _ in range(5 * 1024):
            sys.stderr.write(LINE)
        sys.stdout.flush()
        sys.stderr.flush()


@hookimpl
def harness_register_defenses():
    return [DefenseSpec(name="flood-fit", factory=FloodFit, description="floods its logs", framework="torch",
                        params={"seed": 0, "progress": True})]
