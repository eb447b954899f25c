"""``contest.toml``: what a contest is (its split or recipe, tracks, budgets, deadline, limits, baselines).

:func:`contest_problems` reports every problem, each one line naming the file and the dotted field (unknown
fields with a did-you-mean, through :mod:`harness.toml_schema`); :func:`load_contest` raises the first and
returns a :class:`ContestSpec` otherwise. Paths in the file are relative to the file's folder. Reading a
contest file imports no submission code and builds nothing.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import UsageError, suggest
from ..toml_schema import Field, Problem, check_table, read_toml

#: the contest file's top-level fields (deadline is a TOML date-time: checked on its own)
CONTEST_FIELDS: dict[str, Field] = {
    "name": Field((str,), required=True),
    "recipe": Field((str,)),
    "split": Field((str,)),
    "output": Field((str,)),
    "tracks": Field((list,)),
    "profile": Field((str,)),
    "timeout": Field((float,)),
    "sandbox": Field((str,)),
    "executor": Field((dict,)),
    "deadline": Field((str,)),
    "max_per_team_per_day": Field((int,)),
    "max_total_per_team": Field((int,)),
    "reveal_private": Field((bool,)),
    "baselines": Field((list,)),
    "poll_seconds": Field((float,)),
    "settle_seconds": Field((float,)),
    "explain": Field((int,)),
    "publish_specs": Field((bool,)),
}
#: ``[executor]``: what ``harness score --executor ray`` takes (:class:`harness.scoring.ray_executor.RayOptions`)
EXECUTOR_FIELDS: dict[str, Field] = {
    "kind": Field((str,)),
    "address": Field((str,)),
    "gpus_per_submission": Field((float,)),
    "cpus_per_submission": Field((float,)),
}
EXECUTOR_KINDS = ("local", "ray")
#: the fields of ``[executor]`` that only the Ray executor takes
RAY_ONLY = ("address", "gpus_per_submission", "cpus_per_submission")
DEFAULT_TRACKS = ("defense",)
DEFAULT_POLL_SECONDS = 10.0
DEFAULT_SETTLE_SECONDS = 5.0
#: validation images explained per scored defense for its site page (harness score --explain)
DEFAULT_EXPLAIN = 4
#: the longest poll or settle wait (seconds)
MAX_WAIT_SECONDS = 86400.0


@dataclass(frozen=True)
class ExecutorSpec:
    """``[executor]``: local (children one after the other here) or ray (one Ray task each)."""

    kind: str = "local"
    address: str | None = None
    gpus_per_submission: float = 0.0
    cpus_per_submission: float = 1.0

    def ray_options(self):
        """The :class:`harness.scoring.ray_executor.RayOptions` of a Ray executor (None for local)."""
        if self.kind != "ray":
            return None
        from ..scoring.ray_executor import RayOptions

        return RayOptions(address=self.address, gpus_per_submission=self.gpus_per_submission,
                          cpus_per_submission=self.cpus_per_submission)


@dataclass(frozen=True)
class ContestSpec:
    """A checked contest file; every path absolute."""

    path: Path
    name: str
    #: the recipe built into ``output/split`` (None when ``split`` names a built split)
    recipe: Path | None
    #: a split folder used as is (None when built from ``recipe``)
    split: Path | None
    output: Path
    tracks: tuple[str, ...] = DEFAULT_TRACKS
    profile: str | None = None
    timeout: float = 3600.0
    sandbox: str = "auto"
    executor: ExecutorSpec = ExecutorSpec()
    #: UTC seconds since the epoch (None: no deadline)
    deadline: float | None = None
    max_per_team_per_day: int | None = None
    max_total_per_team: int | None = None
    reveal_private: bool = False
    baselines: tuple[Path, ...] = ()
    poll_seconds: float = DEFAULT_POLL_SECONDS
    settle_seconds: float = DEFAULT_SETTLE_SECONDS
    #: validation images each scoring child explains for the submission's site page (0: no pictures)
    explain: int = DEFAULT_EXPLAIN
    #: whether the site shows each entry's submission.toml
    publish_specs: bool = True

    @property
    def split_dir(self) -> Path:
        """The split scored against: ``split``, or ``output/split`` built from ``recipe``."""
        return self.split if self.split is not None else self.output / "split"

    @property
    def db(self) -> Path:
        return self.output / "results.sqlite"

    @property
    def leaderboard(self) -> Path:
        return self.output / "leaderboard.csv"

    @property
    def team_leaderboard(self) -> Path:
        """Each team's best entry (and the baselines), as the site ranks them."""
        return self.output / "leaderboard-teams.csv"

    @property
    def site_dir(self) -> Path:
        return self.output / "site"

    @property
    def work_dir(self) -> Path:
        return self.output / "work"

    def settings(self) -> dict[str, Any]:
        """What the ledger publishes for the site: name, deadline (epoch seconds and ISO text), reveal_private,
        tracks and the limits (the runner adds ``split_hash`` and ``updated_at``)."""
        return {"name": self.name, "deadline": self.deadline, "deadline_utc": utc_text(self.deadline),
                "reveal_private": self.reveal_private, "tracks": list(self.tracks),
                "max_per_team_per_day": self.max_per_team_per_day, "max_total_per_team": self.max_total_per_team,
                "profile": self.profile, "publish_specs": self.publish_specs}


def utc_text(seconds: float | None) -> str | None:
    """``2026-12-15T23:59:00Z`` for UTC epoch seconds (None stays None)."""
    if seconds is None:
        return None
    return dt.datetime.fromtimestamp(seconds, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_deadline(value: Any) -> float:
    """A TOML offset date-time (or its ISO 8601 text) as UTC epoch seconds; a ValueError says what is wrong."""
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"not an ISO 8601 date-time: {value!r} (write e.g. 2026-12-15T23:59:00Z)") from None
    if not isinstance(value, dt.datetime):  # a TOML date or time alone
        raise ValueError(f"must be a UTC date-time such as 2026-12-15T23:59:00Z, got {value!r}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{value.isoformat()} has no time zone: write it in UTC, e.g. 2026-12-15T23:59:00Z")
    try:
        utc_text(value.timestamp())
    except (ValueError, OverflowError, OSError):
        raise ValueError(f"{value.isoformat()} is out of range") from None
    return value.timestamp()


def _positive(values: dict[str, Any], key: str, problems: list[Problem], *, zero: bool = False,
              prefix: str = "") -> None:
    value = values.get(key)
    if value is None:
        return
    if isinstance(value, float) and not math.isfinite(value) or (value < 0 if zero else value <= 0):
        if isinstance(value, int):
            problems.append(Problem(f"{prefix}{key}", f"must be at least {0 if zero else 1}, got {value!r}"))
        else:
            bound = "0 or more" if zero else "above 0"
            problems.append(Problem(f"{prefix}{key}", f"must be a finite number {bound}, got {value!r}"))
        values.pop(key)


def _entry_path(folder: Path, text: str) -> Path | None:
    """A baseline path (folder with submission.toml, or .tar.gz archive) resolved, or None when it is neither."""
    from ..pack import is_archive
    from ..submission import SUBMISSION_FILE

    if "\0" in text:
        return None
    path = (folder / text).resolve()
    return path if (path / SUBMISSION_FILE).is_file() or is_archive(path) else None


def _split_has_attack_track(split: Path) -> bool | None:
    """Whether the built split at ``split`` has an attack track (None: not a readable split)."""
    import json

    try:
        summary = json.loads((split / "organiser" / "summary.json").read_text())
    except (OSError, ValueError):
        return None
    return bool(summary.get("attack_track")) if isinstance(summary, dict) else None


def contest_problems(path: str | Path) -> tuple[ContestSpec | None, list[Problem]]:
    """(the contest, None when it has problems; every problem of the file, in field order). An unreadable file
    is a UsageError."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"{path}: no such contest file")
    data = read_toml(path)
    folder = path.parent.resolve()
    deadline_value = data.get("deadline")
    values, problems = check_table({k: v for k, v in data.items() if k != "deadline"}, CONTEST_FIELDS)
    deadline = None
    if deadline_value is not None:
        try:
            deadline = parse_deadline(deadline_value)
        except ValueError as exc:
            problems.append(Problem("deadline", str(exc)))

    for key in ("name", "recipe", "split", "output"):
        if "\0" in values.get(key, ""):
            problems.append(Problem(key, "must not hold a NUL character"))
            values.pop(key)
    name = values.get("name")
    if name is not None and (not name.strip() or "/" in name or "\\" in name or name.startswith(".")):
        problems.append(Problem("name", f"must be a non-empty name without '/' and not starting with '.', "
                                        f"got {name!r}"))
        values.pop("name")

    recipe = split = None
    has_attack_track: bool | None = None
    if ("recipe" in data) == ("split" in data):
        problems.append(Problem("recipe", "give exactly one of recipe (a split recipe, built on the first run) "
                                          "and split (a split folder built by harness split build)"))
    elif "recipe" in values:
        from ..scoring.split import load_recipe

        recipe = (folder / values["recipe"]).resolve()
        try:
            has_attack_track = load_recipe(recipe).attack_track is not None
        except UsageError as exc:
            problems.append(Problem("recipe", exc.message))
            recipe = None
    elif "split" in values:
        split = (folder / values["split"]).resolve()
        has_attack_track = _split_has_attack_track(split)
        if has_attack_track is None:
            problems.append(Problem("split", f"{split}: not a split built by harness split build "
                                             "(no organiser/summary.json)"))
            split = None

    from ..submission import TRACKS

    tracks = tuple(values.get("tracks", DEFAULT_TRACKS))
    if "tracks" in values:
        if not tracks:
            problems.append(Problem("tracks", f"must name at least one track of {', '.join(TRACKS)}"))
        for i, track in enumerate(tracks):
            if track not in TRACKS:
                problems.append(Problem(f"tracks[{i}]", f"must be one of {', '.join(TRACKS)}, got {track!r}."
                                                        f"{suggest(str(track), TRACKS)}"))
        if len(set(map(str, tracks))) != len(tracks):
            problems.append(Problem("tracks", f"names a track twice: {list(tracks)}"))
    if "attack" in tracks and has_attack_track is False:
        problems.append(Problem("tracks", "'attack' needs an attack track in the split (the recipe's "
                                          "[attack_track] table)"))

    from ..sandbox.choice import SANDBOXES

    if values.get("sandbox", "auto") not in SANDBOXES:
        problems.append(Problem("sandbox", f"must be one of {', '.join(SANDBOXES)}, got {values['sandbox']!r}"))
    for key in ("timeout", "max_per_team_per_day", "max_total_per_team", "poll_seconds"):
        _positive(values, key, problems)
    _positive(values, "settle_seconds", problems, zero=True)
    for key in ("poll_seconds", "settle_seconds"):
        if values.get(key, 0) > MAX_WAIT_SECONDS:
            problems.append(Problem(key, f"must be at most {MAX_WAIT_SECONDS:g} (a day), got {values.pop(key)!r}"))

    executor = ExecutorSpec()
    if "executor" in values:
        table, executor_problems = check_table(values["executor"], EXECUTOR_FIELDS, "executor.")
        kind = table.get("kind", "local")
        if kind not in EXECUTOR_KINDS:
            executor_problems.append(Problem("executor.kind", f"must be one of {', '.join(EXECUTOR_KINDS)}, "
                                                              f"got {kind!r}"))
        for key in RAY_ONLY:
            if key in table and kind != "ray":
                executor_problems.append(Problem(f"executor.{key}", 'only the Ray executor takes it (kind = "ray")'))
        for key in ("gpus_per_submission", "cpus_per_submission"):
            _positive(table, key, executor_problems, zero=True, prefix="executor.")
        problems += executor_problems
        if not executor_problems:
            executor = ExecutorSpec(kind=kind, address=table.get("address"),
                                    gpus_per_submission=table.get("gpus_per_submission", 0.0),
                                    cpus_per_submission=table.get("cpus_per_submission", 1.0))

    from ..scoring.report import MAX_IMAGES

    if not 0 <= values.get("explain", DEFAULT_EXPLAIN) <= MAX_IMAGES:
        problems.append(Problem("explain", f"must be 0 to {MAX_IMAGES} images, got {values.pop('explain')!r}"))
    if values.get("reveal_private") and deadline_value is None:
        problems.append(Problem("reveal_private", "needs a deadline: the private board is shown after it"))

    baselines = []
    for i, item in enumerate(values.get("baselines", [])):
        found = _entry_path(folder, item) if isinstance(item, str) else None
        if found is None:
            problems.append(Problem(f"baselines[{i}]", f"must be a submission folder (with submission.toml) or a "
                                                       f".tar.gz of harness submission pack, got {item!r}"))
        else:
            baselines.append(found)

    if problems:
        order = {key: i for i, key in enumerate(data)}  # the file's order, missing fields last
        return None, sorted(problems, key=lambda p: order.get(p.field.split(".")[0].split("[")[0], len(order)))
    output = (folder / values["output"]).resolve() if "output" in values else folder / "runs" / values["name"]
    return ContestSpec(
        path=path.resolve(), name=values["name"], recipe=recipe, split=split, output=output, tracks=tracks,
        profile=values.get("profile"), timeout=values.get("timeout", 3600.0), sandbox=values.get("sandbox", "auto"),
        executor=executor, deadline=deadline, max_per_team_per_day=values.get("max_per_team_per_day"),
        max_total_per_team=values.get("max_total_per_team"), reveal_private=values.get("reveal_private", False),
        baselines=tuple(baselines), poll_seconds=values.get("poll_seconds", DEFAULT_POLL_SECONDS),
        settle_seconds=values.get("settle_seconds", DEFAULT_SETTLE_SECONDS),
        explain=values.get("explain", DEFAULT_EXPLAIN), publish_specs=values.get("publish_specs", True)), []


def load_contest(path: str | Path) -> ContestSpec:
    """The checked contest of ``path``; its first problem as a one-line UsageError ``FILE: field: message``."""
    contest, problems = contest_problems(path)
    if problems:
        more = f" (and {len(problems) - 1} more: run harness contest validate)" if len(problems) > 1 else ""
        raise UsageError(f"{path}: {problems[0]}{more}", hint=f"run: harness contest validate {path}")
    assert contest is not None
    return contest
