"""A defense that forks in a loop (each child a sleeping shell named MARKER) and never returns.

Capped at CAP processes so that a broken sandbox cannot take the test machine down (the organiser
may be root, whom RLIMIT_NPROC does not bind); the timeout kills the whole group or PID namespace.
"""

import os
import time

from harness import hookimpl
from harness.specs import DefenseSpec

MARKER = "harness-forkbomb-marker"
CAP = 300


class ForkFit:
    def __init__(self, **params):
        self.params = params

    def fit(self, model, train, val=None, out_dir=None, *, resume=False):
        started = 0
        while started < CAP:
            try:
                pid = os.fork()
            except OSError:
                break  # RLIMIT_NPROC
            if pid == 0:
                os.execv("/bin/sh", ["/bin/sh", "-c", "while :; do sleep 1; done", MARKER])
            started += 1
        with open("forks.txt", "w") as handle:
            handle.write(str(started))
        while True:
            time.sleep(1)


@hookimpl
def harness_register_defenses():
    return [DefenseSpec(name="forkbomb-fit", factory=ForkFit, description="forks", framework="torch",
                        params={"seed": 0, "progress": True})]
