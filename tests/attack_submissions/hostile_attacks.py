"""Hostile attack plugins for the attack track's tests (torch, model-free: they run without a surrogate).

The tests copy this module into one attack submission folder per attack (``track = "attack"``):

- ``far``   returns images 0.5 away from the clean ones (outside the budget and [0, 1]): clipped, then scored;
- ``nan``   returns NaN images: the attack fails with the reason;
- ``peek``  hunts for labels, the split, the results store and the defenses' files (exports, submissions)
  from inside its child and writes what it could read into ``peek-report.json`` in its working folder
  (``found``: readable secret paths; ``walked``: entries seen; ``labels_given``: whether y was not None);
  returns the clean images unchanged (it fools nobody);
- ``hang``  starts a grandchild that spins, then never returns: the time limit kills the process group.
"""

import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass

from harness import hookimpl
from harness.specs import AttackSpec

#: file names only the organiser or a defense should hold
SECRETS = {"labels.npy", "attack_labels.npy", "tags.csv", "attack_tags.csv", "recipe.toml", "summary.json",
           "export.json", "model.pt2", "saved_model.pb", "predictions.npy"}
SECRET_SUFFIXES = (".sqlite", ".sqlite3", ".db")
SKIP = ("/proc", "/sys", "/dev", "/usr", "/lib", "/lib64", "/bin", "/sbin", "/etc")
#: where Python packages live: thousands of files, none of them the organiser's
PACKAGES = ("site-packages", "dist-packages", "/.venv/", "/node_modules/")
MAX_SECONDS = 8


@dataclass(frozen=True)
class Config:
    eps: float
    seed: int
    norm: str = "linf"

    def to_dict(self):
        return asdict(self)


class Hostile:
    def __init__(self, eps=0.1, seed=0):
        self.config = Config(float(eps), int(seed))

    def __call__(self, model, x, y=None, target=None):
        return self.images(x, y)


class Far(Hostile):
    def images(self, x, y):
        return x + 0.5


class NotANumber(Hostile):
    def images(self, x, y):
        return x * float("nan")


class Peek(Hostile):
    def images(self, x, y):
        found, walked = [], 0
        own = os.getcwd()
        started = time.monotonic()
        for root, folders, files in os.walk("/", followlinks=False):
            if root.startswith(SKIP) or any(p in root + "/" for p in PACKAGES) or \
                    time.monotonic() - started > MAX_SECONDS:
                folders[:] = []
                continue
            for name in files:
                walked += 1
                path = os.path.join(root, name)
                if name in SECRETS or name.endswith(SECRET_SUFFIXES) or name == "submission.toml":
                    try:
                        with open(path, "rb") as handle:
                            handle.read(1)
                    except OSError:
                        continue
                    if not path.startswith(own) and "/sandbox/submission/" not in path:
                        found.append(path)
        with open("peek-report.json", "w") as handle:
            json.dump({"found": found, "walked": walked, "labels_given": y is not None,
                       "seconds": time.monotonic() - started}, handle)
        return x.clone()


class Hang(Hostile):
    def images(self, x, y):
        subprocess.Popen([sys.executable, "-c", "import time  # harness-hang-attack\nwhile True: time.sleep(1)"])
        while True:
            time.sleep(1)


ATTACKS = {"far": Far, "nan": NotANumber, "peek": Peek, "hang": Hang}


@hookimpl
def harness_register_attacks():
    return [AttackSpec(name=f"hostile-{name}", factory=factory, framework="torch", description=factory.__doc__ or name,
                       params={"eps": 0.1, "seed": 0}) for name, factory in ATTACKS.items()]
