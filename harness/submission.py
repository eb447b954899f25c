"""Submissions: ``submissions/<name>/submission.toml``, parsed, validated and resolved per profile.

A submission composes plugins::

    name = "cnn-nsl"
    team = "harness examples"
    framework = "tf"                 # "torch" or "tf"
    dataset = "digits"
    seed = 0
    plugins = ["team_plugins"]       # optional: modules in this folder with harness hooks

    [backbone]
    name = "nsl-cnn"
    params = { dropout = 0.1 }

    [[augmentations]]                # optional, applied in order to training batches
    name = "hflip"
    p = 0.5

    [defense]
    name = "nsl-adversarial-regularization"
    params = { multiplier = 0.2 }

    [training]                       # harness.training.TrainingConfig knobs
    epochs = 10

    [profiles.cpu]                   # named budgets merged over the base
    training = { epochs = 3 }
    [profiles.gpu]
    dataset = "tiny-imagenet"
    requires_gpu = true

An attack submission (``track = "attack"``; the default track is ``"defense"``) names an attack
plugin instead, and optionally a surrogate model (``[backbone]`` and ``[defense]``, with
``[training]`` and ``[[augmentations]]``) trained like a defense submission's model::

    track = "attack"
    [attack]
    name = "mi-fgsm"                 # takes an eps parameter; eps, norm and seed come from the contest
    params = { steps = 10, decay = 1.0 }

:func:`validate_submission` reports every problem at once, each naming its field
with a suggestion; :func:`load_submission` raises on the first report.
"""

from __future__ import annotations

import copy
import hashlib
import os
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Iterator, Mapping

from .errors import UsageError, suggest
from .toml_schema import Field, Problem, check_modules, check_table, read_toml

__all__ = ["Problem", "Submission", "SubmissionError", "TRACKS", "content_hash", "find_submissions",
           "load_submission", "read_toml", "submission_file", "submission_files", "submission_plugins",
           "submission_track", "toml_problems", "validate_submission"]

SUBMISSION_FILE = "submission.toml"
FRAMEWORK_NAMES = ("torch", "tf")
#: what a submission is: a model (scored on the hidden split) or an attack (scored against every defense)
TRACKS = ("defense", "attack")
#: attack parameters the contest sets, never an attack submission's [attack] params: name -> who sets it
CONTEST_PARAMS = {
    "eps": "set by the contest (the recipe's [attack_track] eps), not by the attack submission",
    "norm": "set by the contest (the recipe's [attack_track] norm), not by the attack submission",
    "seed": "set by the submission's top-level seed, not in [attack] params",
}

#: top-level fields and their types (the shared TOML validator checks them)
TOP_FIELDS: dict[str, Field] = {
    "name": Field((str,), required=True),
    "team": Field((str,), required=True),
    "framework": Field((str,), required=True),
    "dataset": Field((str,), required=True),
    "description": Field((str,)),
    "seed": Field((int,)),
    "plugins": Field((list,)),
    "dataset_params": Field((dict,)),
    # required for the defense track only (an attack's surrogate is optional): see _check_track
    "backbone": Field((dict,)),
    "augmentations": Field((list,)),
    "defense": Field((dict,)),
    "training": Field((dict,)),
    "profiles": Field((dict,)),
    "track": Field((str,)),
    "attack": Field((dict,)),
}
#: what a profile may override (merged over the base)
PROFILE_FIELDS = ("dataset", "dataset_params", "backbone", "augmentations", "defense", "training",
                  "requires_gpu", "description", "attack")
#: files that never count towards a submission's content hash
_IGNORED_PARTS = {"__pycache__", ".git", ".pytest_cache", "runs", ".ipynb_checkpoints"}


class SubmissionError(UsageError):
    """A submission.toml with problems; ``problems`` lists all of them."""

    def __init__(self, path: Path, problems: list[Problem]):
        first = problems[0]
        more = f" (and {len(problems) - 1} more problem{'s' if len(problems) > 2 else ''})" if len(problems) > 1 else ""
        super().__init__(f"{path}: {first}{more}", hint=f"run: harness submission validate {path.parent}")
        self.path = path
        self.problems = problems


@dataclass(frozen=True)
class Submission:
    """A submission resolved for one profile: everything needed to train and rebuild its model."""

    root: Path
    name: str
    team: str
    framework: str
    dataset: str
    backbone: str  # "" for an attack submission without a surrogate model
    defense: str  # likewise
    profile: str | None = None
    description: str = ""
    seed: int = 0
    plugins: tuple[str, ...] = ()
    dataset_params: Mapping[str, Any] = field(default_factory=dict)
    backbone_params: Mapping[str, Any] = field(default_factory=dict)
    augmentations: tuple[Mapping[str, Any], ...] = ()
    defense_params: Mapping[str, Any] = field(default_factory=dict)
    training: Mapping[str, Any] = field(default_factory=dict)
    requires_gpu: bool = False
    profiles: tuple[str, ...] = ()
    track: str = "defense"
    attack: str = ""  # the attack plugin of an attack submission
    attack_params: Mapping[str, Any] = field(default_factory=dict)

    @property
    def has_surrogate(self) -> bool:
        """A model to train: every defense submission, an attack submission with [backbone] and [defense]."""
        return bool(self.backbone and self.defense)

    def trainer_params(self) -> dict[str, Any]:
        """Everything the defense factory takes: training knobs, defense knobs, augmentations, seed."""
        params = {**dict(self.training), **dict(self.defense_params)}
        params.setdefault("seed", self.seed)
        if self.augmentations:
            params["augmentations"] = [dict(a) for a in self.augmentations]
        return params

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly record (stored with a trained model; rebuilds it)."""
        data = asdict(self)
        data["root"] = str(self.root)
        return data


# --------------------------------------------------------------------------- reading


def submission_file(path: str | os.PathLike) -> Path:
    """``PATH`` or ``PATH/submission.toml``; UsageError when neither exists."""
    path = Path(path)
    candidate = path / SUBMISSION_FILE if path.is_dir() else path
    if not candidate.is_file():
        if path.is_dir():
            raise UsageError(f"{path}: no {SUBMISSION_FILE} in this folder",
                             hint="a submission is a folder with a submission.toml; see submissions/")
        raise UsageError(f"{path}: no such submission (folder or {SUBMISSION_FILE})")
    return candidate


def submission_files(root: str | os.PathLike) -> list[Path]:
    """The files that make a submission (sorted, relative to ``root``): caches, runs and hidden files excluded."""
    root = Path(root)
    files = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        relative = path.relative_to(root)
        if _IGNORED_PARTS.intersection(relative.parts) or path.suffix == ".pyc" or relative.name.startswith("."):
            continue
        files.append(relative)
    return files


def content_hash(root: str | os.PathLike) -> str:
    """sha256 over every file of a submission folder (relative path + bytes), caches excluded."""
    root = Path(root)
    digest = hashlib.sha256()
    for relative in submission_files(root):
        path = root / relative
        digest.update(relative.as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


@contextmanager
def submission_plugins(root: str | os.PathLike, modules: tuple[str, ...] | list[str]) -> Iterator[None]:
    """A submission's own plugin modules (``plugins``, imported from its folder) registered for the
    block only, under names unique to the folder: another submission's same-named modules never mix in."""
    from .plugins import folder_plugins

    with folder_plugins(root, modules, declared_in=Path(root) / SUBMISSION_FILE):
        yield


# --------------------------------------------------------------------------- validation


def _merge(base: dict[str, Any], profile: Mapping[str, Any]) -> dict[str, Any]:
    """The profile's fields over the base: tables (backbone, defense, training, ...) merge two levels deep,
    except that a backbone or defense table naming another plugin replaces the base's table."""
    merged = copy.deepcopy(base)
    for key, value in profile.items():
        switched = isinstance(value, dict) and isinstance(merged.get(key), dict) and \
            value.get("name", merged[key].get("name")) != merged[key].get("name")
        if switched:  # another plugin: the base's parameters were for the old one
            merged[key] = copy.deepcopy(value)
        elif isinstance(value, dict) and isinstance(merged.get(key), dict):
            inner = dict(merged[key])
            for k, v in value.items():
                inner[k] = {**inner[k], **v} if isinstance(v, dict) and isinstance(inner.get(k), dict) else v
            merged[key] = inner
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _check_plugin(kind: str, table: Any, framework: str, where: str, problems: list[Problem],
                  param_keys: tuple[str, ...] = ("params",)) -> Any:
    """A ``{name, params}`` table naming a plugin of ``kind`` usable with ``framework``: its spec (None when the
    plugin is not usable)."""
    from .errors import PluginError
    from .registry import get_spec, registry

    if not isinstance(table, dict):
        problems.append(Problem(where, f"must be a table with a 'name', got {table!r}"))
        return
    name = table.get("name")
    if not isinstance(name, str) or not name:
        problems.append(Problem(f"{where}.name", f"missing: the {kind} plugin to use "
                                                 f"(see: harness plugins {kind} -f {framework})"))
        return
    if "params" in param_keys:
        extra = sorted(set(table) - {"name", "params"})
        if extra:
            problems.append(Problem(f"{where}.{extra[0]}", f"unknown field.{suggest(extra[0], ['name', 'params'])} "
                                                           f"Put the {kind}'s parameters under {where}.params"))
        params = table.get("params", {})
        if not isinstance(params, dict):
            problems.append(Problem(f"{where}.params", f"must be a table, got {params!r}"))
            return
    else:
        params = {k: v for k, v in table.items() if k != "name"}
    try:
        get_spec(kind, name)
    except PluginError as exc:
        problems.append(Problem(f"{where}.name", exc.message))
        return
    usable = registry(kind, framework=framework)
    if name not in usable:
        from .registry import variants

        have = ", ".join(variants(kind, name))
        same = [n for n in usable if n.startswith(name.split("-")[0])][:3]
        alternative = f" {framework} {kind}s include: {', '.join(same)}" if same else ""
        problems.append(Problem(f"{where}.name", f"{kind} '{name}' is for {have}, but framework is "
                                                 f"'{framework}'.{alternative}"))
        return
    spec = usable[name]
    for key in params:
        if key not in spec.params:
            problems.append(Problem(f"{where}.{'params.' if 'params' in param_keys else ''}{key}",
                                    f"{kind} '{name}' has no parameter '{key}'.{suggest(key, spec.params)} "
                                    f"Parameters: {', '.join(spec.params) or 'none'}"))
    return spec


def _check_attack(table: Any, framework: str, where: str, problems: list[Problem]) -> None:
    """An attack submission's ``[attack]``: a usable attack plugin taking ``eps``; its params leave eps, norm and
    seed to the contest."""
    params = table.get("params", {}) if isinstance(table, dict) else None
    if isinstance(params, dict):
        for key in CONTEST_PARAMS:
            if key in params:
                problems.append(Problem(f"{where}.params.{key}", CONTEST_PARAMS[key]))
        table = {**table, "params": {k: v for k, v in params.items() if k not in CONTEST_PARAMS}}
    spec = _check_plugin("attack", table, framework, where, problems)
    if spec is not None and "eps" not in spec.params:
        problems.append(Problem(f"{where}.name", f"attack '{spec.name}' has no 'eps' parameter: the contest sets "
                                                 "every attack's budget through it (list eps in its spec's params)"))


def _check_track(data: dict[str, Any], problems: list[Problem], prefix: str = "") -> None:
    """The tables each track needs (TOML only, no registries): a defense submission's [backbone] and [defense];
    an attack submission's [attack], with both [backbone] and [defense] (a surrogate) or neither."""
    track = data.get("track", "defense")
    if not isinstance(track, str):
        return  # check_table reported its type
    if track not in TRACKS:
        problems.append(Problem(f"{prefix}track", f"must be one of {', '.join(TRACKS)}, got '{track}'."
                                                  f"{suggest(track, TRACKS)}"))
        return
    if track == "defense":
        if "attack" in data:
            problems.append(Problem(f"{prefix}attack", "only an attack submission has an [attack] table: set "
                                                       "track = \"attack\" or remove it"))
        for key in ("backbone", "defense"):
            if key not in data:
                problems.append(Problem(f"{prefix}{key}", "missing (required)"))
        return
    if "attack" not in data:
        problems.append(Problem(f"{prefix}attack", "missing (required for track = \"attack\"): the attack plugin "
                                                   "to submit, as [attack] name = \"...\", params = { ... }"))
    for have, lacking in (("backbone", "defense"), ("defense", "backbone")):
        if have in data and lacking not in data:
            problems.append(Problem(f"{prefix}{lacking}", f"missing: a surrogate model needs both [backbone] and "
                                                          f"[defense] (or neither), and [{have}] is given"))
    if "backbone" not in data and "defense" not in data:
        for key in ("training", "augmentations"):
            if key in data:
                problems.append(Problem(f"{prefix}{key}", "only a surrogate model is trained: add [backbone] and "
                                                          f"[defense], or remove {key}"))


def _check_resolved(data: dict[str, Any], problems: list[Problem], prefix: str, root: Path) -> None:
    """Checks that need the registries: plugin names, parameters, framework fit, training knobs."""
    from .errors import PluginError
    from .registry import get_spec
    from .training import TrainingConfig

    framework = data.get("framework")
    if not isinstance(framework, str):
        return
    if framework not in FRAMEWORK_NAMES:
        problems.append(Problem(f"{prefix}framework", f"must be one of {', '.join(FRAMEWORK_NAMES)}, "
                                                      f"got '{framework}'.{suggest(framework, FRAMEWORK_NAMES)}"))
        return
    dataset = data.get("dataset")
    if isinstance(dataset, str):
        try:
            get_spec("dataset", dataset)
        except PluginError as exc:
            problems.append(Problem(f"{prefix}dataset", exc.message))
    if data.get("track") == "attack" and "attack" in data:
        _check_attack(data["attack"], framework, f"{prefix}attack", problems)
    if "backbone" in data:
        _check_plugin("backbone", data["backbone"], framework, f"{prefix}backbone", problems)
    if "defense" in data:
        _check_plugin("defense", data["defense"], framework, f"{prefix}defense", problems)
    for i, augmentation in enumerate(data.get("augmentations") or []):
        _check_plugin("augmentation", augmentation, framework, f"{prefix}augmentations[{i}]", problems,
                      param_keys=())
    training = data.get("training") or {}
    if isinstance(training, dict):
        known = {f.name for f in fields(TrainingConfig)} - {"augmentations", "seed", "progress"}
        for key in training:
            if key not in known:
                problems.append(Problem(f"{prefix}training.{key}", f"unknown training knob.{suggest(key, known)} "
                                                                   f"Knobs: {', '.join(sorted(known))}"))
        _check_training_values(training, known, f"{prefix}training", problems)
    else:
        problems.append(Problem(f"{prefix}training", f"must be a table, got {training!r}"))
    defense_params = (data.get("defense") or {}).get("params") if isinstance(data.get("defense"), dict) else None
    if isinstance(defense_params, dict):  # training knobs may also sit in [defense.params]
        _check_training_values(defense_params, {f.name for f in fields(TrainingConfig)} - {"augmentations"},
                               f"{prefix}defense.params", problems)


def _check_training_values(table: dict[str, Any], known: set[str], where: str, problems: list[Problem]) -> None:
    """The :class:`TrainingConfig` checks on ``table``'s training knobs (its message names the knob)."""
    from .training import TrainingConfig

    try:
        TrainingConfig(**{k: v for k, v in table.items() if k in known})
    except (UsageError, TypeError) as exc:
        problems.append(Problem(where, getattr(exc, "message", str(exc))))


def toml_problems(data: dict[str, Any], root: Path) -> list[Problem]:
    """The problems of a parsed submission.toml found without registries or imports: the schema, the tables
    each track needs and the ``plugins`` modules' files in ``root`` (what the organiser checks before
    running a submission's code)."""
    _, problems = check_table(data, TOP_FIELDS)
    _check_track(data, problems)
    modules = data.get("plugins") or []
    if isinstance(modules, list):
        problems += check_modules(modules, root)
    return problems


def validate_submission(path: str | os.PathLike) -> list[Problem]:
    """Every problem of the submission at ``path`` (folder or file); [] when it is valid."""
    toml_path = submission_file(path)
    root = toml_path.parent
    try:
        data = read_toml(toml_path)
    except UsageError as exc:
        return [Problem("", exc.message.split(": ", 1)[1])]
    problems = toml_problems(data, root)
    if problems:
        return problems
    modules = data.get("plugins") or []
    with ExitStack() as stack:
        try:
            stack.enter_context(submission_plugins(root, modules))
        except UsageError as exc:
            return [Problem("plugins", exc.message.split("plugins: ", 1)[-1])]
        return _check_with_plugins(data, root)


def _check_with_plugins(data: dict[str, Any], root: Path) -> list[Problem]:
    """The checks that need the registries, base and profiles (the submission's plugins registered)."""
    problems: list[Problem] = []
    _check_resolved(data, problems, "", root)
    for profile, overrides in (data.get("profiles") or {}).items():
        where = f"profiles.{profile}"
        if not isinstance(overrides, dict):
            problems.append(Problem(where, f"must be a table, got {overrides!r}"))
            continue
        for key, value in overrides.items():
            if key not in PROFILE_FIELDS:
                problems.append(Problem(f"{where}.{key}", f"not allowed in a profile.{suggest(key, PROFILE_FIELDS)} "
                                                          f"Profiles may set: {', '.join(PROFILE_FIELDS)}"))
            elif key == "requires_gpu" and not isinstance(value, bool):
                problems.append(Problem(f"{where}.{key}", f"must be true or false, got {value!r}"))
        merged = _merge(data, {k: v for k, v in overrides.items() if k in PROFILE_FIELDS})
        before = len(problems)
        check_table({k: v for k, v in merged.items() if k != "requires_gpu"}, TOP_FIELDS, f"{where}.", problems)
        _check_track(merged, problems, f"{where}.")
        if len(problems) == before:
            _check_resolved(merged, problems, f"{where}.", root)
    # one report per problem: a profile repeating the base's problem (same field, same message) adds nothing
    unique: dict[tuple[str, str], Problem] = {}
    for problem in problems:
        field_name = problem.field.split(".", 2)[2] if problem.field.startswith("profiles.") and \
            problem.field.count(".") >= 2 else problem.field
        unique.setdefault((field_name, problem.message), problem)
    return list(unique.values())


def load_submission(path: str | os.PathLike, profile: str | None = None) -> Submission:
    """The validated submission at ``path`` resolved for ``profile`` (None: the base settings)."""
    toml_path = submission_file(path)
    problems = validate_submission(toml_path)
    if problems:
        raise SubmissionError(toml_path, problems)
    data = read_toml(toml_path)
    profiles = data.get("profiles") or {}
    if profile is not None:
        if profile not in profiles:
            raise UsageError(f"{toml_path}: no profile '{profile}'.{suggest(profile, profiles)} "
                             f"Profiles: {', '.join(profiles) or 'none'}")
        data = _merge(data, profiles[profile])
    return Submission(
        root=toml_path.parent.resolve(),
        name=data["name"],
        team=data["team"],
        framework=data["framework"],
        dataset=data["dataset"],
        backbone=data.get("backbone", {}).get("name", ""),
        defense=data.get("defense", {}).get("name", ""),
        profile=profile,
        description=data.get("description", ""),
        seed=int(data.get("seed", 0)),
        plugins=tuple(data.get("plugins") or ()),
        dataset_params=dict(data.get("dataset_params") or {}),
        backbone_params=dict(data.get("backbone", {}).get("params") or {}),
        augmentations=tuple(dict(a) for a in data.get("augmentations") or ()),
        defense_params=dict(data.get("defense", {}).get("params") or {}),
        training=dict(data.get("training") or {}),
        requires_gpu=bool(data.get("requires_gpu", False)),
        profiles=tuple(profiles),
        track=data.get("track", "defense"),
        attack=data.get("attack", {}).get("name", ""),
        attack_params=dict(data.get("attack", {}).get("params") or {}),
    )


def submission_track(path: str | os.PathLike) -> str:
    """The track of the submission at ``path`` from its TOML alone (no code imported): "defense" (also when
    the file is unreadable or the field malformed: validation reports that) or "attack"."""
    try:
        track = read_toml(submission_file(path)).get("track", "defense")
    except UsageError:
        return "defense"
    return track if track in TRACKS else "defense"


def find_submissions(paths: list[str | os.PathLike]) -> list[Path]:
    """Submission folders from paths: a submission folder, or a folder of them (e.g. submissions/)."""
    found: list[Path] = []
    for path in map(Path, paths):
        if (path / SUBMISSION_FILE).is_file() or path.is_file():
            found.append(submission_file(path).parent)
        elif path.is_dir():
            children = sorted(p.parent for p in path.glob(f"*/{SUBMISSION_FILE}"))
            if not children:
                raise UsageError(f"{path}: no submission.toml here or in its sub-folders")
            found.extend(children)
        else:
            raise UsageError(f"{path}: no such submission folder")
    return found
