"""A defense that hunts for the hidden labels and vandalises the organiser's files, then trains nothing.

It looks where a determined submission would: its environment, the parent's and every other
process's /proc entries (command lines naming --split, --db, --leaderboard), guessed paths, and
``targets.json`` next to it when a test planted the organiser's real paths there (a perfect
guesser). It tries to read labels, to write into the results store, leaderboard, split, harness
code, its own submission folder and the network, and reports every attempt that worked in
``peek-report.json`` (its working directory). Under bubblewrap every list stays empty.
"""

import json
import os
import socket
import sys
from pathlib import Path

from harness import hookimpl
from harness.specs import DefenseSpec

SECRETS = ("labels.npy", "tags.csv", "recipe.toml", "summary.json")


def _processes():
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            for name in ("cmdline", "environ"):
                try:
                    found[f"{entry.name}/{name}"] = (entry / name).read_bytes().replace(b"\0", b" ").decode("utf-8", "replace")
                except OSError:
                    pass
    return found


def _candidates(targets):
    paths = {Path(p) for p in targets.values()}
    for text in _processes().values():  # paths the organiser's command line names
        words = text.split()
        for flag, word in zip(words, words[1:]):
            if flag in ("--split", "--db", "--leaderboard", "--work-dir"):
                paths.add(Path(word))
    for guess in ("hidden", "runs", "split", "/work", "/root", "/tmp", str(Path.home())):
        paths.add(Path(guess))
    return paths


def hunt(targets):
    found, read, wrote = [], [], []
    for key, value in os.environ.items():
        if any(word in (key + value).lower() for word in ("label", "organiser", "recipe", "split", "leaderboard")):
            found.append(f"env {key}")
    for where, text in _processes().items():
        if any(word in text for word in ("--split", "organiser", "labels.npy", "--db")):
            found.append(f"proc {where}")
    for base in _candidates(targets):
        try:
            files = [base] if base.is_file() else list(base.rglob("*"))[:20000]
        except OSError:
            continue
        for path in files:
            if path.name in SECRETS or str(path) in targets.values() or path.suffix == ".csv" and "leaderboard" in path.name \
                    or path.suffix in (".sqlite", ".sqlite3", ".db"):
                try:
                    path.read_bytes()
                    read.append(str(path))
                except OSError:
                    pass
    attempts = [Path(p) for k, p in targets.items() if k in ("db", "leaderboard", "labels", "canary")]
    attempts += [Path(p) / "planted.txt" for k, p in targets.items() if k in ("split", "outside")]
    attempts += [Path(sys.argv[sys.argv.index("--submission") + 1]) / "planted.txt",
                 Path(__file__).resolve().parent / "planted.txt", Path(json.__file__).parent / "planted.txt",
                 Path.cwd().parent / "planted.txt", Path(sys.argv[sys.argv.index("--images") + 1])]
    import harness
    attempts.append(Path(harness.__file__).parent / "planted.txt")
    for path in attempts:
        try:
            with open(path, "ab") as handle:
                handle.write(b"vandalised\n")
            wrote.append(str(path))
        except OSError:
            pass
    network = []
    for address in (("1.1.1.1", 53), ("8.8.8.8", 53)):
        try:
            with socket.create_connection(address, timeout=2):
                network.append(f"{address[0]}:{address[1]}")
        except OSError:
            pass
    return {"found": sorted(set(found)), "read": sorted(set(read)), "wrote": wrote, "network": network,
            "argv": sys.argv, "environment": sorted(os.environ), "cwd": str(Path.cwd())}


class PeekFit:
    def __init__(self, **params):
        self.params = params

    def fit(self, model, train, val=None, out_dir=None, *, resume=False):
        root = Path(sys.argv[sys.argv.index("--submission") + 1])
        targets = json.loads((root / "targets.json").read_text()) if (root / "targets.json").exists() else {}
        Path("peek-report.json").write_text(json.dumps(hunt(targets), indent=1))


@hookimpl
def harness_register_defenses():
    return [DefenseSpec(name="peek-fit", factory=PeekFit, description="hunts labels", framework="torch",
                        params={"seed": 0, "progress": True})]
