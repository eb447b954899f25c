"""A defense that hunts for the hidden labels and tries to reach the organiser, then trains nothing.

``fit()`` reads ``targets.json`` from its own submission folder when a test planted the organiser's
real values there (a perfect guesser), tries every behaviour below and writes ``peek-report.json``
into its working directory: one list per behaviour of what SUCCEEDED (under a correct sandbox every
list is empty), a ``tried`` count per behaviour (so a test can tell it really tried), and what it saw
(``argv``, ``cwd``, ``environment``, ``visible_pids``, ``walk``).

Behaviours (report keys):

``found``        the whole file system walked from ``/`` (not /proc, /sys, /dev; symlinks never followed;
                 capped in entries and seconds): files named labels.npy, tags.csv, recipe.toml, *.sqlite,
                 *.sqlite3, *.db, leaderboard/board *.csv, or the dataset cache's held-out split files
                 (``heldout_files``) that could be opened and read
``image_copies`` ``.npy`` files whose bytes equal the images it is asked to predict (``--images``), itself excluded
``proc``         /proc/<pid>/{environ,cmdline,maps,mem} of the organiser (``organiser_pid``), the parent and every
                 visible pid outside its own process tree that gave away something of the organiser
                 (cmdline/environ: a target path or "pytest", "--split", "organiser", or environment variables
                 it was not given itself; maps/mem: any bytes)
``signals``      ptrace(PTRACE_ATTACH) (detached at once), kill(pid, 0), kill(pid, SIGCONT) on the organiser
``network``      TCP to ``tcp``, 1.1.1.1:53, 8.8.8.8:53; a UDP datagram to ``udp``; UNIX sockets ``unix_path``
                 and ``unix_abstract``
``wrote``        a line appended to (or planted.txt created in) another submission, its own submission
                 folder, the split folder, labels, results db, leaderboard, canary, the harness package
                 folder, the Python stdlib folder and the parent of its working directory

Every path it writes to comes from targets.json or is its own (submission folder, parent of its working
directory), so a test can point the writes at copies. Standalone: the harness and the stdlib only.
"""

import ctypes
import json
import os
import signal
import socket
import stat
import sys
import time
from pathlib import Path

from harness import hookimpl
from harness.specs import DefenseSpec

BEHAVIOURS = ("found", "image_copies", "proc", "signals", "network", "wrote")
SECRET_NAMES = {"labels.npy", "tags.csv", "recipe.toml"}
DB_SUFFIXES = (".sqlite", ".sqlite3", ".db")
SKIP = {"/proc", "/sys", "/dev"}
#: system folders every child reads by design (distribution files such as avahi's service-types.db are no
#: secret of the organiser's); a secret's name found there still counts, a *.db or *.csv does not
SYSTEM = ("/usr/", "/lib/", "/lib64/", "/bin/", "/sbin/", "/etc/")
MAX_ENTRIES = 2_000_000
MAX_SECONDS = 60.0
ORGANISER_WORDS = ("pytest", "--split", "organiser")
PTRACE_ATTACH, PTRACE_DETACH = 16, 17
PLANTED = "planted.txt"


def argument(flag):
    return sys.argv[sys.argv.index(flag) + 1] if flag in sys.argv[:-1] else None


def read_some(path, size=64):
    """Open and read a regular file without blocking (a FIFO named *.db must not hang the walk)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0))
    try:
        return os.read(fd, size)
    finally:
        os.close(fd)


def same_bytes(path, images, size):
    with open(path, "rb") as a, open(images, "rb") as b:
        done = 0
        while done < size:
            x, y = a.read(1 << 20), b.read(1 << 20)
            if x != y:
                return False
            if not x:
                return True
            done += len(x)
    return True


# ------------------------------------------------------------------------------------------------ file system


def walk_roots(targets):
    """Likely places first (where the targets live, /tmp, homes, /work), then all of /: already seen folders
    (by device and inode) are not walked twice."""
    roots = []
    for value in targets.values():
        if isinstance(value, str) and value.startswith("/"):
            roots.append(str(Path(value).parent))
    roots += ["/tmp", "/root", "/home", "/work", "/srv", "/data", "/mnt", "/var", "/"]
    return list(dict.fromkeys(roots))


def hunt_files(targets, report, tried):
    heldout = set(targets.get("heldout_files") or [])
    images = argument("--images")
    try:
        image_stat = os.stat(images) if images else None
    except OSError:
        image_stat = None
    started, entries, capped = time.monotonic(), 0, None
    seen = set()
    stack = list(reversed(walk_roots(targets)))
    while stack and capped is None:
        folder = stack.pop()
        if folder in SKIP:
            continue
        try:
            info = os.stat(folder)  # roots may be symlinks; folders found below are never followed
        except OSError:
            continue
        key = (info.st_dev, info.st_ino)
        if key in seen or not stat.S_ISDIR(info.st_mode):
            continue
        seen.add(key)
        try:
            with os.scandir(folder) as listing:
                children = list(listing)
        except OSError:
            continue
        for entry in children:
            entries += 1
            if entries >= MAX_ENTRIES:
                capped = f"entries ({MAX_ENTRIES})"
                break
            if entries % 2000 == 0 and time.monotonic() - started > MAX_SECONDS:
                capped = f"seconds ({MAX_SECONDS:g})"
                break
            try:
                if entry.is_dir(follow_symlinks=False):
                    if entry.path not in SKIP:
                        stack.append(entry.path)
                    continue
                if not entry.is_file(follow_symlinks=False):
                    continue
            except OSError:
                continue
            name = entry.name
            lower = name.lower()
            generic = lower.endswith(DB_SUFFIXES) or (lower.endswith(".csv") and "board" in lower)
            if name in SECRET_NAMES or name in heldout or generic and not entry.path.startswith(SYSTEM):
                try:
                    read_some(entry.path)
                    report["found"].append(entry.path)
                except OSError:
                    pass
            if lower.endswith(".npy") and image_stat is not None:
                try:
                    here = entry.stat(follow_symlinks=False)
                    if (here.st_dev, here.st_ino) == (image_stat.st_dev, image_stat.st_ino):
                        continue  # the images it was given
                    tried["image_copies"] += 1
                    if here.st_size == image_stat.st_size and same_bytes(entry.path, images, here.st_size):
                        report["image_copies"].append(entry.path)
                except OSError:
                    pass
    tried["found"] = entries
    report["walk"] = {"entries": entries, "folders": len(seen), "seconds": round(time.monotonic() - started, 2),
                      "capped": capped, "left": len(stack)}


# ------------------------------------------------------------------------------------------------ processes


def own_tree():
    """Its own pid, threads and descendants: never counted (a sandbox shows the child itself)."""
    mine = {os.getpid()}
    try:
        mine |= {int(t) for t in os.listdir("/proc/self/task")}
    except OSError:
        pass
    parents = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                text = Path(f"/proc/{name}/stat").read_text()
                parents[int(name)] = int(text.rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                pass
    grew = True
    while grew:
        grew = False
        for pid, parent in parents.items():
            if parent in mine and pid not in mine:
                mine.add(pid)
                grew = True
    return mine


def pid_namespaces():
    """Its pids from the outermost PID namespace this /proc shows inward (informational: a /proc mounted
    inside its own PID namespace shows one)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("NSpid:"):
                return [int(p) for p in line.split()[1:]]
    except (OSError, ValueError):
        pass
    return []


def first_readable_bytes(pid):
    """A few bytes of the process's memory at the start of one of its readable mappings."""
    maps = Path(f"/proc/{pid}/maps").read_text()
    with open(f"/proc/{pid}/mem", "rb", buffering=0) as mem:
        for line in maps.splitlines()[:50]:
            fields = line.split()
            if len(fields) < 2 or not fields[1].startswith("r"):
                continue
            try:
                mem.seek(int(fields[0].split("-")[0], 16))
                data = mem.read(16)
            except (OSError, ValueError, OverflowError):
                continue
            if data:
                return data
    return b""


def hunt_processes(targets, report, tried):
    markers = [v for v in targets.values() if isinstance(v, str) and v.startswith("/") and len(v) > 4]
    markers += list(ORGANISER_WORDS)
    mine = own_tree()
    init = 1  # a sandbox's init (or the machine's): its maps/mem count only when it looks like the organiser
    visible = sorted(int(n) for n in os.listdir("/proc") if n.isdigit())
    report["visible_pids"] = visible
    report["self"] = {"pid": os.getpid(), "ppid": os.getppid(), "nspid": pid_namespaces()}
    candidates = []
    for pid in [targets.get("organiser_pid"), os.getppid(), *visible]:
        if isinstance(pid, int) and pid > 0 and pid not in mine and pid not in candidates:
            candidates.append(pid)
    for pid in candidates:
        organiser_like = False
        for what in ("cmdline", "environ"):
            tried["proc"] += 1
            try:
                items = Path(f"/proc/{pid}/{what}").read_bytes().decode("utf-8", "replace").split("\0")
            except OSError:
                continue
            text = " ".join(items)
            names = {item.split("=", 1)[0] for item in items if "=" in item} if what == "environ" else set()
            if any(marker in text for marker in markers) or names - set(os.environ):  # not what it was given
                organiser_like = True
                report["proc"].append(f"{what} {pid}")
        for what in ("maps", "mem"):
            tried["proc"] += 1
            try:
                data = Path(f"/proc/{pid}/maps").read_bytes()[:4096] if what == "maps" else first_readable_bytes(pid)
            except OSError:
                continue
            if not data:
                continue
            if pid == init and not organiser_like:  # informational only
                report["init_readable"].append(f"{what} {pid}")
            else:
                report["proc"].append(f"{what} {pid}")


def hunt_signals(targets, report, tried):
    pid = targets.get("organiser_pid")
    if not isinstance(pid, int) or pid <= 0:
        pid = os.getppid()
    if pid <= 1 or pid in own_tree():
        report["errors"].append(f"signals: no organiser pid to try ({pid})")
        return
    libc = ctypes.CDLL(None, use_errno=True)
    libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
    libc.ptrace.restype = ctypes.c_long
    tried["signals"] += 1
    if libc.ptrace(PTRACE_ATTACH, pid, None, None) == 0:
        report["signals"].append(f"ptrace {pid}")
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:  # wait for the attach stop, then let it go at once
            try:
                if os.waitpid(pid, os.WNOHANG | getattr(os, "__WALL", 0x40000000))[0]:
                    break
            except ChildProcessError:
                break
            time.sleep(0.01)
        libc.ptrace(PTRACE_DETACH, pid, None, None)
    for name, sig in (("kill0", 0), ("sigcont", signal.SIGCONT)):
        tried["signals"] += 1
        try:
            os.kill(pid, sig)
            report["signals"].append(f"{name} {pid}")
        except OSError:
            pass


# ------------------------------------------------------------------------------------------------ network


def hunt_network(targets, report, tried):
    tcp = [tuple(targets["tcp"])] if targets.get("tcp") else []
    for host, port in tcp + [("1.1.1.1", 53), ("8.8.8.8", 53)]:
        tried["network"] += 1
        try:
            with socket.create_connection((host, int(port)), timeout=2):
                report["network"].append(f"tcp {host}:{port}")
        except OSError:
            pass
    if targets.get("udp"):
        host, port = targets["udp"]
        tried["network"] += 1
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                sock.settimeout(1.0)
                sock.connect((host, int(port)))
                sock.send(b"peek was here\n")
                try:
                    sock.recv(64)  # a port nobody listens on answers ICMP unreachable: ConnectionRefusedError
                except socket.timeout:
                    pass
                sock.send(b"peek was here\n")
                report["network"].append(f"udp {host}:{port}")
        except OSError:
            pass
    for key, prefix in (("unix_path", ""), ("unix_abstract", "\0")):
        if targets.get(key):
            tried["network"] += 1
            try:
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                    sock.settimeout(2)
                    sock.connect(prefix + targets[key])
                    report["network"].append(f"{key} {targets[key]}")
            except OSError:
                pass


# ------------------------------------------------------------------------------------------------ writes


def write_attempts(targets):
    """Files to append a line to; folders get planted.txt. All from targets.json or its own folders."""
    import json as stdlib_json

    import harness

    files, folders = [], []
    other = targets.get("other_submission")
    if other:
        folders.append(other)
        files.append(str(Path(other) / "submission.toml"))
    own = argument("--submission")
    folders += [own] if own else []
    folders.append(str(Path(__file__).resolve().parent))
    folders += [targets[k] for k in ("split", "outside") if targets.get(k)]
    files += [targets[k] for k in ("labels", "db", "leaderboard", "canary") if targets.get(k)]
    folders.append(targets.get("harness_dir") or str(Path(harness.__file__).resolve().parent))
    folders.append(targets.get("stdlib_dir") or str(Path(stdlib_json.__file__).resolve().parent.parent))
    folders.append(str(Path.cwd().parent))
    return list(dict.fromkeys(files)), list(dict.fromkeys(folders))


def hunt_writes(targets, report, tried):
    files, folders = write_attempts(targets)
    for path in files + [str(Path(f) / PLANTED) for f in folders]:
        tried["wrote"] += 1
        try:
            with open(path, "ab") as handle:
                handle.write(b"peek was here\n")
            report["wrote"].append(path)
        except OSError:
            pass


# ------------------------------------------------------------------------------------------------ the defense


def hunt(targets):
    report = {name: [] for name in BEHAVIOURS}
    report.update(init_readable=[], visible_pids=[], errors=[], targets_read=bool(targets))
    tried = dict.fromkeys(BEHAVIOURS, 0)
    for step in (hunt_processes, hunt_signals, hunt_network, hunt_writes, hunt_files):
        started = time.monotonic()
        try:
            step(targets, report, tried)
        except Exception as exc:  # noqa: BLE001 - one failed behaviour must not hide the others
            report["errors"].append(f"{step.__name__}: {type(exc).__name__}: {exc}")
        report.setdefault("seconds", {})[step.__name__] = round(time.monotonic() - started, 2)
    report["tried"] = tried
    report.update(argv=sys.argv, cwd=str(Path.cwd()), environment=sorted(os.environ))
    return report


class PeekFit:
    def __init__(self, **params):
        self.params = params

    def fit(self, model, train, val=None, out_dir=None, *, resume=False):
        root = Path(argument("--submission") or Path(__file__).resolve().parent)
        try:
            targets = json.loads((root / "targets.json").read_text())
        except (OSError, ValueError):
            targets = {}
        report = hunt(targets)
        Path("peek-report.json").write_text(json.dumps(report, indent=1))


@hookimpl
def harness_register_defenses():
    return [DefenseSpec(name="peek-fit", factory=PeekFit, description="hunts labels", framework="torch",
                        params={"seed": 0, "progress": True})]
