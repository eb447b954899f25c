"""A defense that never finishes, and leaves a grandchild spinning in its process group."""

import subprocess
import sys
import time

from harness import hookimpl
from harness.specs import DefenseSpec


class HangFit:
    def __init__(self, **params):
        self.params = params

    def fit(self, model, train, val=None, out_dir=None, *, resume=False):
        with open("grandchild.pid", "w") as handle:
            child = subprocess.Popen([sys.executable, "-c", "import time  # harness-hang-submission\nwhile True: time.sleep(1)"])
            handle.write(str(child.pid))
        while True:
            time.sleep(1)


@hookimpl
def harness_register_defenses():
    return [DefenseSpec(name="hang-fit", factory=HangFit, description="hangs", framework="torch",
                        params={"seed": 0, "progress": True})]
