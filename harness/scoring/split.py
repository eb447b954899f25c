"""The hidden perturbed test split: recipe, build, manifest, verification.

A recipe (TOML) names the held-out labelled images, the perturbations with their
share, and a secret seed::

    plugins = ["my_attacks"]     # optional: modules next to the recipe with harness hooks

    [split]
    dataset = "digits"
    source = "test"              # the dataset split that holds the held-out images
    seed = 271828                # secret: decides assignment, noise, order, partition
    public_fraction = 0.3        # Kaggle-style public / private partition

    [[perturbations]]
    category = "clean"
    kind = "clean"
    weight = 1

    [[perturbations]]
    category = "noise"           # leaderboard column top1_noise
    kind = "augmentation"        # an augmentation (or corruption) plugin
    name = "gaussian-noise"
    severity = 3
    weight = 1

    [[perturbations]]
    category = "fgsm"
    kind = "attack"              # an attack plugin against a reference submission
    name = "fgsm"
    params = { eps = 0.1 }
    reference = "../submissions/cnn-baseline"
    reference_profile = "cpu"
    weight = 1

    [[perturbations]]
    category = "pgd"
    kind = "adaptive"            # attacked per submission, white-box, on its exported model
    name = "pgd"                 # pgd, apgd-ce, apgd-t, square, any registered attack, or ensemble
    eps = 0.1                    # the budget, pixel space
    norm = "linf"                # or l2, where the attack has a norm parameter
    params = { steps = 20 }      # the attack's parameters (not eps, norm or seed)
    weight = 1

    [attack_track]               # optional: the attack track's contest rules
    source = "test"              # its clean source images: the held-out split, [split] source (the default)
    count = 60                   # how many source images (drawn with a stream of the split's seed)
    eps = 0.1                    # every attack's budget, pixel space
    norm = "linf"                # or l2
    access = "transfer"          # or white-box (attacks run on each defense's code-free export)
    time_limit = 600.0           # seconds per attack run (its surrogate's training included)
    defense_time_limit = 300.0   # white-box: seconds per (attack, defense) run

    [[attack_track.baselines]]   # the organiser's own attacks, scored with the submitted ones
    name = "fgsm"                # a built-in or installed attack with an eps parameter
    params = {}                  # not eps, norm or seed
    label = "baseline-fgsm"      # leaderboard name (default baseline-<name>)
    surrogate = "../submissions/cnn-baseline"   # transfer (required): the defense submission it attacks
    surrogate_profile = "cpu"

Adaptive images are stored clean; ``organiser/summary.json["adaptive"]`` records each
adaptive category's settings and seed for the second scoring phase
(:mod:`harness.scoring.adaptive`). With ``[attack_track]`` the build also writes
``attack_track/images.npy`` (the clean source images, random order), ``organiser/attack_labels.npy`` and
``organiser/attack_tags.csv`` (id, label, partition), a copy of each transfer baseline's surrogate submission
in ``organiser/surrogates/<label>/`` and ``summary["attack_track"]`` (the rules, surrogates named by their
copies: the split hash follows their content, not the organiser's paths); a recipe without it builds the same
split as before.

``build_split`` writes ``OUT/images/`` (for participants: images.npy, ids.json and
their manifest) and ``OUT/organiser/`` (labels, per-image tags with partition,
the recipe, a summary), plus ``OUT/manifest.json`` with the sha256 of every file;
its digest is the split hash that keys every score.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import re
import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ..atomic import atomic_directory
from ..chunks import open_npy, spans
from ..data.cache import sha256_file
from ..errors import DataError, UsageError, suggest
from ..toml_schema import Field, check_modules, check_table, first_problem, read_toml

KINDS = ("clean", "augmentation", "attack", "adaptive")
NORMS = ("linf", "l2")
#: the ensemble's name in an adaptive entry: the worst case over ``members``
ENSEMBLE = "ensemble"
RECIPE_FIELDS = {"plugins": Field((list,)), "split": Field((dict,)), "perturbations": Field((list,)),
                 "attack_track": Field((dict,))}
SPLIT_FIELDS = {"dataset": Field((str,), required=True), "source": Field((str,)),
                "seed": Field((int,), required=True), "public_fraction": Field((float,)), "limit": Field((int,)),
                "dataset_params": Field((dict,)), "name": Field((str,))}
PERTURBATION_FIELDS = {"category": Field((str,)), "kind": Field((str,)), "name": Field((str,)),
                       "weight": Field((float,)), "severity": Field((int,)), "params": Field((dict,)),
                       "framework": Field((str,)), "reference": Field((str,)), "reference_profile": Field((str,)),
                       "reference_artifact": Field((str,)), "eps": Field((float,)), "norm": Field((str,)),
                       "members": Field((list,))}
#: fields of an adaptive entry only, and fields it must not have
ADAPTIVE_ONLY = ("eps", "norm", "members")
NOT_ADAPTIVE = ("severity", "framework", "reference", "reference_profile", "reference_artifact")
IMAGES_DIR = "images"
ORGANISER_DIR = "organiser"
MANIFEST = "manifest.json"
ATTACK_DIR = "attack_track"
#: transfer baselines' surrogate submissions, copied into the split (organiser side: never shown to a defense)
SURROGATES_DIR = "organiser/surrogates"
ACCESS = ("transfer", "white-box")
ATTACK_TRACK_FIELDS = {"source": Field((str,)), "count": Field((int,), required=True),
                       "eps": Field((float,), required=True), "norm": Field((str,)), "access": Field((str,)),
                       "time_limit": Field((float,)), "defense_time_limit": Field((float,)),
                       "baselines": Field((list,))}
BASELINE_FIELDS = {"name": Field((str,), required=True), "params": Field((dict,)), "label": Field((str,)),
                   "surrogate": Field((str,)), "surrogate_profile": Field((str,)), "framework": Field((str,))}
#: what the contest sets, never an attack's params
CONTEST_PARAMS = ("eps", "norm", "seed")
FRAMEWORKS = ("torch", "tf")
#: the defense leaderboard's category of the attack track (:mod:`harness.scoring.attack_board`)
ATTACKS_CATEGORY = "attacks"
#: the attack track's image draw: a stream of the split's seed independent of the split's own draws
ATTACK_STREAM = 0x41545452
#: images perturbed at a time while building (fixed, not HARNESS_CHUNK_IMAGES: a recipe plugin's augmentation
#: sees chunks of at most this many images, so the split's bytes follow the recipe alone)
SPLIT_CHUNK = 1024


@dataclass(frozen=True)
class Perturbation:
    """One recipe entry: how a share of the held-out images is perturbed."""

    category: str
    kind: str
    weight: float = 1.0
    name: str = ""
    severity: int | None = None
    params: Mapping[str, Any] = field(default_factory=dict)
    framework: str | None = None
    reference: Path | None = None
    reference_profile: str | None = None
    reference_artifact: Path | None = None
    #: adaptive only: budget, norm and ensemble members (name or {name, params} each; empty: the default four)
    eps: float | None = None
    norm: str = "linf"
    members: tuple[Any, ...] = ()

    @property
    def tag(self) -> str:
        """Per-image tag, e.g. ``augmentation:gaussian-noise@3``, ``attack:fgsm{eps=0.1}`` or
        ``adaptive:pgd{eps=0.1,norm=linf,steps=20}``."""
        if self.kind == "clean":
            return "clean"
        detail = f"@{self.severity}" if self.severity is not None else ""
        params = dict(self.params)
        if self.kind == "adaptive":
            params.update(eps=self.eps, norm=self.norm)
            if self.members:
                params["members"] = "+".join(m if isinstance(m, str) else m["name"] for m in self.members)
        if params:
            detail += "{" + ",".join(f"{k}={v}" for k, v in sorted(params.items())) + "}"
        return f"{self.kind}:{self.name}{detail}"

    def adaptive_settings(self, seed: int) -> dict[str, Any]:
        """What the second scoring phase needs of an adaptive entry (summary.json["adaptive"][category])."""
        return {"attack": self.name, "eps": self.eps, "norm": self.norm, "params": dict(self.params),
                "members": [m if isinstance(m, str) else dict(m) for m in self.members], "seed": int(seed)}


@dataclass(frozen=True)
class Tag:
    """A per-image tag read back (:func:`parse_tag`): ``kind:name@severity{key=value,...}``."""

    kind: str
    name: str
    severity: int | None = None
    params: Mapping[str, str] = field(default_factory=dict)

    @property
    def eps(self) -> float | None:
        """The attack budget of an attack or adaptive tag (None for others or without one)."""
        try:
            return float(self.params["eps"])
        except (KeyError, ValueError):
            return None


_TAG = re.compile(r"^(?P<kind>[^:]+):(?P<name>[^@{]*)(?:@(?P<severity>-?\d+))?(?:\{(?P<params>.*)\})?$")


def parse_tag(tag: str) -> Tag:
    """The parts of a :attr:`Perturbation.tag` (``clean`` is kind and name ``clean``); values stay strings."""
    if tag == "clean":
        return Tag("clean", "clean")
    found = _TAG.match(tag)
    if found is None:
        return Tag("other", tag)
    params = dict(part.split("=", 1) for part in (found["params"] or "").split(",") if "=" in part)
    severity = int(found["severity"]) if found["severity"] is not None else None
    return Tag(found["kind"], found["name"], severity, params)


@dataclass(frozen=True)
class Baseline:
    """One of the organiser's own attacks in the attack track."""

    label: str
    attack: str
    params: Mapping[str, Any] = field(default_factory=dict)
    #: transfer: the defense submission folder whose trained model it attacks (absolute); white-box: None
    surrogate: Path | None = None
    surrogate_profile: str | None = None
    framework: str = "torch"

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "attack": self.attack, "params": dict(self.params),
                "surrogate": str(self.surrogate) if self.surrogate is not None else None,
                "surrogate_profile": self.surrogate_profile, "framework": self.framework}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "Baseline":
        return cls(label=data["label"], attack=data["attack"], params=dict(data.get("params") or {}),
                   surrogate=Path(data["surrogate"]) if data.get("surrogate") else None,
                   surrogate_profile=data.get("surrogate_profile"), framework=data.get("framework", "torch"))


@dataclass(frozen=True)
class AttackTrackRules:
    """The recipe's ``[attack_track]``: source images, budget, access, time limits and baselines."""

    source: str
    count: int
    eps: float
    norm: str = "linf"
    access: str = "transfer"
    time_limit: float = 600.0
    defense_time_limit: float = 300.0
    baselines: tuple[Baseline, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "count": self.count, "eps": self.eps, "norm": self.norm,
                "access": self.access, "time_limit": self.time_limit, "defense_time_limit": self.defense_time_limit,
                "baselines": [b.to_dict() for b in self.baselines]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "AttackTrackRules":
        return cls(source=data["source"], count=int(data["count"]), eps=float(data["eps"]),
                   norm=data.get("norm", "linf"), access=data.get("access", "transfer"),
                   time_limit=float(data.get("time_limit", 600.0)),
                   defense_time_limit=float(data.get("defense_time_limit", 300.0)),
                   baselines=tuple(Baseline.from_dict(b) for b in data.get("baselines") or ()))


@dataclass(frozen=True)
class Recipe:
    """A parsed, checked recipe."""

    path: Path
    dataset: str
    source: str
    seed: int
    public_fraction: float
    perturbations: tuple[Perturbation, ...]
    limit: int | None = None
    dataset_params: Mapping[str, Any] = field(default_factory=dict)
    name: str = "hidden"
    #: the recipe's own plugin modules (in its folder), registered while the split is built
    plugins: tuple[str, ...] = ()
    #: the attack track's rules (``[attack_track]``); None: no attack track
    attack_track: AttackTrackRules | None = None

    @property
    def folder(self) -> Path:
        """The recipe's folder: ``plugins`` modules and relative references live there."""
        return self.path.parent


def _field_error(path: Path, where: str, message: str) -> UsageError:
    return UsageError(f"{path}: {where}: {message}")


def load_recipe(path: str | Path) -> Recipe:
    """Parse and check a recipe; the first problem is a one-line UsageError naming file and field."""
    path = Path(path)
    if not path.is_file():
        raise UsageError(f"{path}: no such recipe file")
    data = read_toml(path)
    split = data.get("split")
    tables = ("split", "perturbations", "attack_track")  # checked below, field by field
    _, problems = check_table({k: v for k, v in data.items() if k not in tables}, RECIPE_FIELDS)
    first_problem(path, problems)
    if not isinstance(split, dict):
        raise _field_error(path, "split", "missing table [split] (dataset, source, seed, public_fraction)")
    first_problem(path, check_modules(data.get("plugins", []), path.parent))
    values, problems = check_table(split, SPLIT_FIELDS, "split.")
    first_problem(path, problems)
    fraction = values.get("public_fraction", 0.3)
    if not 0 < fraction < 1:
        raise _field_error(path, "split.public_fraction", f"must be between 0 and 1 (exclusive), got {fraction}")
    if values.get("limit") is not None and values["limit"] < 1:
        raise _field_error(path, "split.limit", f"must be at least 1, got {values['limit']}")
    entries = data.get("perturbations")
    if not isinstance(entries, list) or not entries:
        raise _field_error(path, "perturbations", "missing: at least one [[perturbations]] entry")
    perturbations = []
    for i, entry in enumerate(entries):
        where = f"perturbations[{i}]"
        if not isinstance(entry, dict):
            raise _field_error(path, where, f"must be a table, got {entry!r}")
        item, problems = check_table(entry, PERTURBATION_FIELDS, f"{where}.")
        first_problem(path, problems)
        kind = item.get("kind", "clean" if item.get("category") == "clean" else None)
        if kind not in KINDS:
            raise _field_error(path, f"{where}.kind", f"must be one of {', '.join(KINDS)}, got {kind!r}."
                                                      f"{suggest(str(kind), KINDS)}")
        if kind != "clean" and not item.get("name"):
            raise _field_error(path, f"{where}.name", f"missing: the {kind} plugin to apply")
        if kind == "adaptive":
            _check_adaptive(path, where, item)
        elif next((k for k in ADAPTIVE_ONLY if k in item), None):
            raise _field_error(path, f"{where}.{next(k for k in ADAPTIVE_ONLY if k in item)}",
                               "only adaptive entries (kind = \"adaptive\") take it")
        if kind == "attack" and not (item.get("reference") or item.get("reference_artifact")):
            raise _field_error(path, f"{where}.reference", "missing: the reference submission the attack runs "
                                                           "against (or reference_artifact, a trained model folder)")
        if item.get("weight", 1.0) <= 0:
            raise _field_error(path, f"{where}.weight", f"must be positive, got {item['weight']}")
        if "severity" in item and not 1 <= item["severity"] <= 5:
            raise _field_error(path, f"{where}.severity", f"must be 1..5, got {item['severity']}")
        category = item.get("category") or (item.get("name") if kind != "clean" else "clean")
        if not category.replace("-", "_").replace("_", "a").isalnum():
            raise _field_error(path, f"{where}.category", f"letters, digits, '-' and '_' only, got {category!r}")
        perturbations.append(Perturbation(
            category=category, kind=kind, weight=item.get("weight", 1.0), name=item.get("name", ""),
            severity=item.get("severity"), params=item.get("params", {}), framework=item.get("framework"),
            reference=(path.parent / item["reference"]) if item.get("reference") else None,
            reference_profile=item.get("reference_profile"),
            reference_artifact=(path.parent / item["reference_artifact"]) if item.get("reference_artifact") else None,
            eps=item.get("eps"), norm=item.get("norm", "linf"), members=tuple(item.get("members", ())),
        ))
    for i, p in enumerate(perturbations):
        if p.kind == "adaptive" and sum(q.category == p.category for q in perturbations) > 1:
            raise _field_error(path, f"perturbations[{i}].category", f"'{p.category}' is adaptive: its category "
                                                                     "holds no other entry")
    source = values.get("source", "test")
    attack_track = _attack_track(path, data["attack_track"], source) if "attack_track" in data else None
    taken = next((i for i, p in enumerate(perturbations) if p.category == ATTACKS_CATEGORY), None)
    if attack_track is not None and taken is not None:
        raise _field_error(path, f"perturbations[{taken}].category", f"'{ATTACKS_CATEGORY}' is the attack track's "
                                                                     "leaderboard category: choose another name")
    return Recipe(path=path, dataset=values["dataset"], source=source, seed=values["seed"],
                  public_fraction=fraction, perturbations=tuple(perturbations), limit=values.get("limit"),
                  dataset_params=values.get("dataset_params", {}), name=values.get("name", "hidden"),
                  plugins=tuple(data.get("plugins", ())), attack_track=attack_track)


def _attack_track(path: Path, table: Mapping[str, Any], source: str) -> AttackTrackRules:
    """The ``[attack_track]`` table checked field by field (the first problem: one line naming it)."""
    values, problems = check_table(table, ATTACK_TRACK_FIELDS, "attack_track.")
    first_problem(path, problems)
    if values["count"] < 1:
        raise _field_error(path, "attack_track.count", f"must be at least 1, got {values['count']}")
    if not 0 < values["eps"] < math.inf:
        raise _field_error(path, "attack_track.eps", f"must be > 0: every attack's budget in pixel space "
                                                     f"(e.g. 0.1), got {values['eps']!r}")
    for name, choices in (("norm", NORMS), ("access", ACCESS)):
        if name in values and values[name] not in choices:
            raise _field_error(path, f"attack_track.{name}", f"must be one of {', '.join(choices)}, got "
                                                             f"{values[name]!r}.{suggest(values[name], choices)}")
    for name in ("time_limit", "defense_time_limit"):
        if name in values and not 0 < values[name] < math.inf:
            raise _field_error(path, f"attack_track.{name}", f"must be a number of seconds > 0, got {values[name]!r}")
    if values.get("source", source) != source:  # every child's dataset view withholds that one split only
        raise _field_error(path, "attack_track.source", f"must be the held-out split '{source}' ([split] source): "
                                                        f"defenses train with the dataset's other splits in view, so "
                                                        f"they would have seen '{values['source']}' with its labels")
    rules = AttackTrackRules(source=values.get("source", source), count=values["count"], eps=values["eps"],
                             norm=values.get("norm", "linf"), access=values.get("access", "transfer"),
                             time_limit=values.get("time_limit", 600.0),
                             defense_time_limit=values.get("defense_time_limit", 300.0))
    baselines: list[Baseline] = []
    for i, entry in enumerate(values.get("baselines", ())):
        baseline = _baseline(path, f"attack_track.baselines[{i}]", entry, rules)
        if any(b.label == baseline.label for b in baselines):
            raise _field_error(path, f"attack_track.baselines[{i}].label", f"'{baseline.label}' names another "
                                                                           "baseline already: give each a label")
        baselines.append(baseline)
    return replace(rules, baselines=tuple(baselines))


def _baseline(path: Path, where: str, entry: Any, rules: AttackTrackRules) -> Baseline:
    """One ``[[attack_track.baselines]]`` entry: a built-in or installed attack (baselines run in harness-only
    children that load no recipe plugins) with an eps parameter, params it accepts (it is built once here),
    a surrogate submission folder for transfer access and none for white-box."""
    from ..attacks.config import ATTACK_PARAMS, AttackConfig
    from ..errors import HarnessError
    from ..registry import get_attack

    if not isinstance(entry, dict):
        raise _field_error(path, where, f"must be a table, got {entry!r}")
    item, problems = check_table(entry, BASELINE_FIELDS, f"{where}.")
    first_problem(path, problems)
    name, params = item["name"], dict(item.get("params", {}))
    label = item.get("label", f"baseline-{name}")
    if not label or not label.replace("-", "a").replace("_", "a").replace(".", "a").isalnum():
        raise _field_error(path, f"{where}.label", f"letters, digits, '-', '_' and '.' only, got {label!r}")
    surrogate = None
    if rules.access == "white-box":
        extra = next((k for k in ("surrogate", "surrogate_profile") if k in item), None)
        if extra:
            raise _field_error(path, f"{where}.{extra}", "white-box baselines take no surrogate: they attack "
                                                         "each defense's own exported model")
    elif "surrogate" not in item:
        raise _field_error(path, f"{where}.surrogate", "missing: transfer baselines attack a surrogate, the "
                                                       "defense submission folder whose trained model they attack")
    else:
        surrogate = (path.parent / item["surrogate"]).resolve()
        if not (surrogate / "submission.toml").is_file():
            raise _field_error(path, f"{where}.surrogate", f"no submission folder at {surrogate} "
                                                           "(no submission.toml)")
    framework = item.get("framework")
    if surrogate is not None:
        declared = read_toml(surrogate / "submission.toml").get("framework")
        if framework is not None and declared is not None and framework != declared:
            raise _field_error(path, f"{where}.framework", f"the surrogate is a {declared} submission, not "
                                                           f"{framework}")
        framework = framework or declared
    framework = framework or "torch"
    if framework not in FRAMEWORKS:
        raise _field_error(path, f"{where}.framework", f"must be one of {', '.join(FRAMEWORKS)}, got "
                                                       f"{framework!r}.{suggest(str(framework), FRAMEWORKS)}")
    try:
        spec = get_attack(name, framework=framework)
    except UsageError as exc:
        raise _field_error(path, f"{where}.name", f"{exc.message} (baselines must be built-in or installed: "
                                                  "the attacking child loads no recipe plugins)") from None
    if "eps" not in spec.params:
        raise _field_error(path, f"{where}.name", f"attack '{name}' has no eps parameter: it cannot be given the "
                                                  "contest's budget")
    fixed = next((k for k in CONTEST_PARAMS if k in params), None)
    if fixed:
        source = f"attack_track.{fixed}" if fixed != "seed" else "the harness seeds every attack run"
        raise _field_error(path, f"{where}.params.{fixed}", f"set by the contest ({source}), not by the baseline")
    if rules.norm != "linf" and "norm" not in spec.params:
        raise _field_error(path, f"{where}.name", f"attack '{name}' has no norm parameter: it attacks in linf "
                                                  f"only, the contest's norm is {rules.norm}")
    unknown = sorted(set(params) - set(spec.params))
    if unknown:
        raise _field_error(path, f"{where}.params", f"attack '{name}' has no parameter {', '.join(map(repr, unknown))}."
                           f"{''.join(suggest(k, spec.params) for k in unknown)} Parameters: "
                           f"{', '.join(k for k in spec.params if k not in CONTEST_PARAMS)}")
    contest = {"eps": rules.eps, **({"norm": rules.norm} if "norm" in spec.params else {})}
    try:  # the values, checked by the attack itself; a TF attack's by its framework-neutral config (when it has
        # one): building it would import TensorFlow here
        if framework == "torch":
            spec.create(**params, **contest)
        elif name in ATTACK_PARAMS:
            AttackConfig.for_attack(name, **params, **contest)
    except HarnessError as exc:
        raise _field_error(path, f"{where}.params", exc.message) from None
    return Baseline(label=label, attack=name, params=params, surrogate=surrogate,
                    surrogate_profile=item.get("surrogate_profile"), framework=framework)


def _check_adaptive(path: Path, where: str, item: Mapping[str, Any]) -> None:
    """An adaptive entry's attack, budget, norm, parameters and members, checked against the attack registry
    (built-in and installed attacks: the attacking child loads no recipe plugin modules)."""
    from ..registry import get_attack
    from ..robustness.ensemble import build_ensemble

    extra = next((k for k in NOT_ADAPTIVE if k in item), None)
    if extra:
        raise _field_error(path, f"{where}.{extra}", "adaptive entries take no "
                           f"{extra}: they are attacked per submission, on its own exported model")
    if item.get("eps") is None or not 0 < item["eps"] < math.inf:
        raise _field_error(path, f"{where}.eps", f"missing or not > 0: the attack budget in pixel space "
                                                 f"(e.g. 0.1), got {item.get('eps')!r}")
    norm = item.get("norm", "linf")
    if norm not in NORMS:
        raise _field_error(path, f"{where}.norm", f"must be one of {', '.join(NORMS)}, got {norm!r}."
                                                  f"{suggest(str(norm), NORMS)}")
    name = item["name"]
    if name == ENSEMBLE:
        members = item.get("members", [])
        if item.get("params"):
            raise _field_error(path, f"{where}.params", "an ensemble takes its parameters per member: "
                                                        "members = [{ name = \"pgd\", params = { steps = 20 } }]")
    else:
        if "members" in item:
            raise _field_error(path, f"{where}.members", f"only name = \"{ENSEMBLE}\" takes members")
        members = [{"name": name, "params": item.get("params", {})}]
    seen: set[str] = set()
    for i, member in enumerate(members or ()):
        field_name = f"{where}.members[{i}]" if name == ENSEMBLE else f"{where}.name"
        if isinstance(member, dict):
            unknown = sorted(set(member) - {"name", "params"})
            if unknown or not isinstance(member.get("name"), str) or not isinstance(member.get("params", {}), dict):
                raise _field_error(path, field_name, "a member is an attack name or a table { name = \"pgd\", "
                                                     f"params = {{ ... }} }}, got {member!r}")
            member_name, params = member["name"], member.get("params", {})
        elif isinstance(member, str):
            member_name, params = member, {}
        else:
            raise _field_error(path, field_name, f"must be an attack name or a table, got {member!r}")
        try:
            spec = get_attack(member_name)
        except UsageError as exc:
            raise _field_error(path, field_name, f"{exc.message} (adaptive attacks must be built-in or "
                                                 "installed: the attacking child loads no recipe plugins)") from None
        if "eps" not in spec.params:
            raise _field_error(path, field_name, f"attack '{member_name}' has no eps parameter: it cannot be given "
                                                 "the category's budget")
        if member_name in seen:
            raise _field_error(path, field_name, f"attack '{member_name}' is a member twice")
        seen.add(member_name)
        if norm != "linf" and "norm" not in spec.params:
            raise _field_error(path, f"{where}.norm", f"attack '{member_name}' has no norm parameter: "
                                                      "it attacks in linf only")
        if "norm" in params:
            raise _field_error(path, f"{where}.norm" if name != ENSEMBLE else field_name,
                               "set the norm with the entry's norm field, not in params")
        try:
            build_ensemble({member_name: params})
        except UsageError as exc:
            where_params = f"{where}.params" if name != ENSEMBLE else field_name
            raise _field_error(path, where_params, exc.message.replace("ensemble attack", "attack", 1)) from None


# --------------------------------------------------------------------------- building


def allocate(weights: list[float], count: int, rng: np.random.Generator) -> np.ndarray:
    """Perturbation index per image: exact shares by largest remainder, in random order."""
    shares = np.asarray(weights, dtype=np.float64) / float(np.sum(weights)) * count
    counts = np.floor(shares).astype(int)
    for i in np.argsort(-(shares - counts), kind="stable")[: count - counts.sum()]:
        counts[i] += 1
    return rng.permutation(np.repeat(np.arange(len(weights)), counts))


def _augmenter(perturbation: Perturbation, seed: int):
    """The entry's augmentation as an :class:`harness.augment.AugmentStream` seeded with ``seed``: called on
    consecutive chunks, it gives the images of one call on the whole group."""
    from ..augment import AugmentStream, BoundAugmentation
    from ..frameworks import framework_available
    from ..registry import get_augmentation, variants

    params = dict(perturbation.params)
    if perturbation.severity is not None:
        params["severity"] = perturbation.severity
    if perturbation.framework:
        spec = get_augmentation(perturbation.name, framework=perturbation.framework)
    else:
        usable = [s for s in variants("augmentation", perturbation.name).values() if s.available]
        if not usable:
            raise UsageError(f"augmentation '{perturbation.name}': its framework is not installed")
        spec = usable[0]
    if spec.framework != "any" and not framework_available(spec.framework):
        raise UsageError(f"augmentation '{perturbation.name}' needs {spec.framework}, which is not installed")
    return AugmentStream([BoundAugmentation(spec.create(**params), spec.framework, perturbation.name)], seed)


def _matching_artifact(submission, folders: list[Path], class_names: list[str]) -> Path | None:
    """The first of ``folders`` holding a model trained from ``submission`` as it is now: same content hash,
    profile and classes (a reference edited since, or trained on other data, does not match)."""
    from ..submission import content_hash
    from ..workflow import read_model_info

    digest = content_hash(submission.root)
    for folder in folders:
        try:
            info = read_model_info(folder)
        except UsageError:
            continue
        recorded = info.get("submission") or {}
        if (info.get("content_hash") == digest and recorded.get("profile") == submission.profile
                and info.get("class_names") == class_names):
            return folder
    return None


def _reference_model(perturbation: Perturbation, references: Path, runs: Path | None, class_names: list[str],
                     progress: bool) -> tuple[Any, str]:
    """The attacked reference model and how it was found: the recipe's ``reference_artifact``; else a model
    of the reference submission with its current content hash, trained by ``harness train`` (``runs``) or
    by an earlier split build (``references``); else one trained now into ``references``."""
    from ..submission import load_submission
    from ..workflow import default_run_dir, load_model, train_submission

    if perturbation.reference_artifact is not None:
        return load_model(perturbation.reference_artifact), f"artifact {perturbation.reference_artifact}"
    submission = load_submission(perturbation.reference, perturbation.reference_profile)
    run_dir = default_run_dir(submission, references)
    candidates = ([default_run_dir(submission, runs)] if runs is not None else []) + [run_dir]
    found = _matching_artifact(submission, candidates, class_names)
    if found is not None:
        return load_model(found), f"reused {found} (same content hash)"
    train_submission(submission, run_dir, progress=progress)
    return load_model(run_dir), f"trained into {run_dir}"


def _attacker(perturbation: Perturbation, seed: int, references: Path, runs: Path | None,
              class_names: list[str], progress: bool):
    """(attack, how its reference was found): ``attack(uint8 images, labels) -> uint8 adversarial images`` on
    the reference model, quantized inside the budget. One attack object serves every chunk: its batches and
    random stream are those of one call on the whole group."""
    from ..frameworks import quantize_within_budget
    from ..registry import create_attack, get_attack

    loaded, used = _reference_model(perturbation, references, runs, class_names, progress)
    framework = loaded.submission.framework
    seeded = {"seed": seed} if "seed" in get_attack(perturbation.name, framework=framework).params else {}
    attack = create_attack(perturbation.name, framework=framework, **{**seeded, **dict(perturbation.params)})
    config = getattr(attack, "config", None)

    def run(images: np.ndarray, labels: np.ndarray) -> np.ndarray:
        adversarial = loaded.runtime.adversarial_images(loaded.model, images, labels, attack)
        return quantize_within_budget(adversarial, images, getattr(config, "eps", None),
                                      getattr(config, "norm", "linf"))

    return run, used


def _checked(perturbation: Perturbation, result: np.ndarray, original: np.ndarray) -> np.ndarray:
    if result.shape != original.shape or result.dtype != np.uint8:
        raise UsageError(f"{perturbation.kind} '{perturbation.name}' returned {result.dtype} {result.shape}, "
                         f"expected uint8 {original.shape}")
    return result


def _perturb_group(perturbation: Perturbation, source, chosen: np.ndarray, members: np.ndarray,
                   position: np.ndarray, out: np.ndarray, seed: int, references: Path, runs: Path | None,
                   class_names: list[str], progress: bool) -> dict[str, str]:
    """Perturb the images of one recipe entry (``members``: indices into ``chosen``, in source order) a chunk
    of :data:`SPLIT_CHUNK` at a time and write each into ``out`` at its ``position``; {tag: reference used} for
    an attack. The augmentation's random stream and the attack run on across chunks of whole batches, so the
    images are those of one call on the whole group."""
    if not len(members):
        return {}
    augment = attack = None
    used: dict[str, str] = {}
    if perturbation.kind == "augmentation":
        augment = _augmenter(perturbation, seed)
    elif perturbation.kind == "attack":
        attack, used[perturbation.tag] = _attacker(perturbation, seed, references, runs, class_names, progress)
    for part in spans(len(members), SPLIT_CHUNK):
        rows = members[part]
        images = np.asarray(source.images[chosen[rows]])
        if augment is not None:
            images = _checked(perturbation, np.asarray(augment(images), dtype=np.uint8), images)
        elif attack is not None:
            labels = np.asarray(source.labels[chosen[rows]], dtype=np.int64)
            images = _checked(perturbation, attack(images, labels), images)
        out[position[rows]] = images
    return used


def _manifest(folder: Path, root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): sha256_file(p)
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != MANIFEST}


def split_digest(files: Mapping[str, str]) -> str:
    """The split hash: sha256 over every (path, sha256) pair."""
    return hashlib.sha256("".join(f"{k}\0{v}\n" for k, v in sorted(files.items())).encode()).hexdigest()


def build_split(recipe: Recipe, out: str | Path, *, references: str | Path = "runs/references",
                runs: str | Path | None = None, progress: bool = True) -> dict[str, Any]:
    """Build the hidden split of ``recipe`` into ``out`` (atomically); return its summary. The recipe's
    own ``plugins`` modules are registered meanwhile (the organiser's code: imported in this process).

    Attack references are trained into ``references`` unless a model of the same content hash is
    found at ``runs/<name>/<profile>`` (where ``harness train`` writes) or in ``references``;
    ``summary["references"]`` says, per attack, which model was used (it is not written to the split)."""
    from ..plugins import folder_plugins

    with folder_plugins(recipe.folder, recipe.plugins, declared_in=recipe.path):
        return _build_split(recipe, Path(out), Path(references), Path(runs) if runs is not None else None, progress)


def _build_split(recipe: Recipe, out: Path, references: Path, runs: Path | None, progress: bool) -> dict[str, Any]:
    from ..data import load_dataset
    from ..progress import stage

    dataset = load_dataset(recipe.dataset, progress=progress, **dict(recipe.dataset_params))
    if recipe.source not in dataset.splits:
        raise UsageError(f"{recipe.path}: split.source: dataset '{recipe.dataset}' has no split "
                         f"'{recipe.source}' (splits: {', '.join(dataset.splits)})")
    source = dataset.split(recipe.source)
    if not source.labelled:
        raise UsageError(f"{recipe.path}: split.source: split '{recipe.source}' has no labels; "
                         "the hidden split needs labelled held-out images")
    rng = np.random.default_rng(recipe.seed)
    count = len(source) if recipe.limit is None else min(recipe.limit, len(source))
    chosen = np.sort(rng.permutation(len(source))[:count])
    labels = np.asarray(source.labels[chosen], dtype=np.int64)
    grouped = allocate([p.weight for p in recipe.perturbations], count, rng)  # entry per chosen image
    seeds = rng.integers(0, 2**31 - 1, size=len(recipe.perturbations))
    adaptive = {p.category: p.adaptive_settings(int(seeds[i]))  # kept clean here; attacked per submission
                for i, p in enumerate(recipe.perturbations) if p.kind == "adaptive"}
    order = rng.permutation(count)  # hide the source order and the grouping by perturbation
    labels, assignment = labels[order], grouped[order]
    category_of = np.asarray([recipe.perturbations[a].category for a in assignment], dtype=object)
    public = np.zeros(count, dtype=bool)
    for category in dict.fromkeys(p.category for p in recipe.perturbations):  # stratified: each its share
        members = np.flatnonzero(category_of == category)
        public[rng.permutation(members)[: int(round(recipe.public_fraction * len(members)))]] = True
    ids = [f"img-{i:05d}" for i in range(count)]

    summary = {
        "name": recipe.name, "dataset": recipe.dataset, "source": recipe.source, "count": count,
        "image_shape": list(source.images.shape[1:]), "num_classes": dataset.num_classes,
        "class_names": dataset.class_names, "public_fraction": recipe.public_fraction,
        "public_count": int(public.sum()),
        "categories": {c: int(sum(1 for a in assignment if recipe.perturbations[a].category == c))
                       for c in dict.fromkeys(p.category for p in recipe.perturbations)},
    }
    if adaptive:
        summary["adaptive"] = adaptive
    if recipe.attack_track is not None:
        rules = recipe.attack_track.to_dict()
        for baseline in rules["baselines"]:  # the copy in the split, not the organiser's folder (hash: content only)
            if baseline["surrogate"]:
                baseline["surrogate"] = f"{SURROGATES_DIR}/{baseline['label']}"
    used: dict[str, str] = {}
    with atomic_directory(out) as tmp:
        image_dir, organiser = tmp / IMAGES_DIR, tmp / ORGANISER_DIR
        image_dir.mkdir()
        organiser.mkdir()
        perturbed = open_npy(image_dir / "images.npy", (count, *source.images.shape[1:]), np.uint8)
        position = np.empty(count, dtype=np.int64)  # where each chosen image lands in the split's order
        position[order] = np.arange(count)
        with stage("split build: perturbing", len(recipe.perturbations), enabled=progress) as report:
            for index, perturbation in enumerate(recipe.perturbations):
                report.advance(0, perturbation.tag)
                members = np.flatnonzero(grouped == index)
                used.update(_perturb_group(perturbation, source, chosen, members, position, perturbed,
                                           int(seeds[index]), references, runs, dataset.class_names, progress))
                report.done(f"{perturbation.category}: {perturbation.tag} done ({len(members)} images)")
        perturbed.flush()
        del perturbed
        (image_dir / "ids.json").write_text(json.dumps(ids) + "\n")
        np.save(organiser / "labels.npy", labels)
        with open(organiser / "tags.csv", "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["id", "label", "category", "perturbation", "partition"])
            for i in range(count):
                p = recipe.perturbations[assignment[i]]
                writer.writerow([ids[i], int(labels[i]), p.category, p.tag, "public" if public[i] else "private"])
        shutil.copyfile(recipe.path, organiser / "recipe.toml")
        if recipe.attack_track is not None:
            attack_count, attack_public = _write_attack_track(tmp, recipe, dataset)
            summary["attack_track"] = {**rules, "count": attack_count, "public_count": attack_public}
            _copy_surrogates(tmp, recipe.attack_track)
        (organiser / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
        image_files = _manifest(image_dir, image_dir)
        (image_dir / MANIFEST).write_text(json.dumps({"files": image_files, "count": count}, indent=2) + "\n")
        files = _manifest(tmp, tmp)
        summary["split_hash"] = split_digest(files)
        (tmp / MANIFEST).write_text(json.dumps({"split_hash": summary["split_hash"], "files": files}, indent=2) + "\n")
    summary["references"] = used
    return summary


def _write_attack_track(tmp: Path, recipe: Recipe, dataset) -> tuple[int, int]:
    """The attack track's ``count`` labelled images of its source split in a random order, a
    ``public_fraction`` share public, drawn from a stream of the split's seed of their own (the split's other
    draws are unchanged): ``attack_track/images.npy`` (what attacks receive: no labels, written chunk by chunk),
    ``organiser/attack_labels.npy`` and ``organiser/attack_tags.csv`` (id, label, partition). Returns (count,
    public count)."""
    rules = recipe.attack_track
    source = dataset.split(rules.source)  # the split's own source: present and labelled, checked before
    if rules.count > len(source):
        raise UsageError(f"{recipe.path}: attack_track.count: {rules.count} images asked, split "
                         f"'{rules.source}' holds {len(source)}")
    rng = np.random.default_rng([recipe.seed, ATTACK_STREAM])
    chosen = rng.permutation(len(source))[: rules.count]
    public = np.zeros(rules.count, dtype=bool)
    public[rng.permutation(rules.count)[: int(round(recipe.public_fraction * rules.count))]] = True
    labels = np.asarray(source.labels[chosen], dtype=np.int64)
    (tmp / ATTACK_DIR).mkdir()
    images = open_npy(tmp / ATTACK_DIR / "images.npy", (rules.count, *source.images.shape[1:]), np.uint8)
    for part in spans(rules.count, SPLIT_CHUNK):
        images[part] = source.images[chosen[part]]
    images.flush()
    del images
    np.save(tmp / ORGANISER_DIR / "attack_labels.npy", labels)
    with open(tmp / ORGANISER_DIR / "attack_tags.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "label", "partition"])
        for i, (label, is_public) in enumerate(zip(labels, public)):
            writer.writerow([f"atk-{i:05d}", int(label), "public" if is_public else "private"])
    return rules.count, int(public.sum())


def _copy_surrogates(tmp: Path, rules: AttackTrackRules) -> None:
    """Each transfer baseline's surrogate submission, copied into ``SURROGATES_DIR/<label>`` (its files as
    :func:`harness.submission.submission_files` lists them): the split holds everything its scoring runs, and
    its hash follows their content, not where the organiser keeps them."""
    from ..submission import submission_files

    for baseline in rules.baselines:
        if baseline.surrogate is None:
            continue
        target = tmp / SURROGATES_DIR / baseline.label
        for relative in submission_files(baseline.surrogate):
            (target / relative).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(baseline.surrogate / relative, target / relative)


# --------------------------------------------------------------------------- reading and verifying


@dataclass
class HiddenSplit:
    """A built split as the organiser reads it."""

    root: Path
    split_hash: str
    #: image ids in split order (a numpy text array when read by :func:`open_split`: no object per image)
    ids: Sequence[str]
    labels: np.ndarray
    categories: list[str]
    public: np.ndarray
    summary: dict[str, Any]
    #: the attack track's labels and public mask in attack-track image order (None: the split has none)
    attack_labels: np.ndarray | None = None
    attack_public: np.ndarray | None = None
    #: each image's perturbation tag (tags.csv, split order): :func:`parse_tag` reads one
    perturbations: list[str] = field(default_factory=list)

    @property
    def images_path(self) -> Path:
        return self.root / IMAGES_DIR / "images.npy"

    @property
    def attack_track(self) -> AttackTrackRules | None:
        """The attack track's rules (None: the split has no attack track)."""
        data = self.summary.get("attack_track")
        if not data:
            return None
        rules = AttackTrackRules.from_dict(data)
        baselines = tuple(replace(b, surrogate=self.root / b.surrogate) if b.surrogate is not None
                          and not b.surrogate.is_absolute() else b for b in rules.baselines)
        return replace(rules, baselines=baselines)  # surrogates: their copies in this split

    @property
    def attack_images_path(self) -> Path:
        """The attack track's clean source images (uint8 N,H,W,C), what every attack receives."""
        return self.root / ATTACK_DIR / "images.npy"


def verify_split(root: str | Path) -> str:
    """Check every file against the manifest; return the split hash. A changed, missing or added file is named."""
    root = Path(root)
    manifest_path = root / MANIFEST
    if not manifest_path.is_file():
        raise DataError(f"{root}: not a hidden split (no {MANIFEST})", hint="build one: harness split build")
    try:
        manifest = json.loads(manifest_path.read_text())
        expected = dict(manifest["files"])
    except (ValueError, KeyError, TypeError) as exc:
        raise DataError(f"{manifest_path}: unreadable manifest: {exc}") from None
    present = {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() and p.name != MANIFEST}
    for name in sorted(set(expected) - present):
        raise DataError(f"{root / name}: missing from the hidden split (listed in {MANIFEST})")
    for name in sorted(present - set(expected)):
        raise DataError(f"{root / name}: not part of the hidden split (not in {MANIFEST})")
    for name, digest in sorted(expected.items()):
        if sha256_file(root / name) != digest:
            raise DataError(f"{root / name}: changed since the split was built (sha256 mismatch)")
    if split_digest(expected) != manifest.get("split_hash"):
        raise DataError(f"{manifest_path}: split_hash does not match its file list")
    return manifest["split_hash"]


def open_split(root: str | Path, verify: bool = True) -> HiddenSplit:
    """Read the organiser's view of a split (verified against its manifest first)."""
    root = Path(root)
    split_hash = verify_split(root) if verify else json.loads((root / MANIFEST).read_text())["split_hash"]
    organiser = root / ORGANISER_DIR
    ids = np.asarray(json.loads((root / IMAGES_DIR / "ids.json").read_text()), dtype=str)
    categories, perturbations, public = _read_tags(organiser / "tags.csv", ids)
    attack_labels = attack_public = None
    if (organiser / "attack_tags.csv").is_file():
        with open(organiser / "attack_tags.csv", newline="") as handle:
            attack_public = np.array([r["partition"] == "public" for r in csv.DictReader(handle)], dtype=bool)
        attack_labels = np.load(organiser / "attack_labels.npy", allow_pickle=False)
        if len(attack_labels) != len(attack_public):
            raise DataError(f"{organiser / 'attack_tags.csv'}: {len(attack_public)} rows, attack_labels.npy holds "
                            f"{len(attack_labels)}")
    return HiddenSplit(root=root, split_hash=split_hash, ids=ids,
                       labels=np.load(organiser / "labels.npy", allow_pickle=False),
                       categories=categories, public=public,
                       summary=json.loads((organiser / "summary.json").read_text()),
                       attack_labels=attack_labels, attack_public=attack_public,
                       perturbations=perturbations)


def _read_tags(path: Path, ids: Sequence[str]) -> tuple[list[str], list[str], np.ndarray]:
    """(category, perturbation tag, public) per image of ``tags.csv``, row by row: every repeated text is one
    shared string, so a large split's tags stay small in memory. DataError when its ids are not ``ids``."""
    shared: dict[str, str] = {}
    categories, perturbations = [], []
    public = np.zeros(len(ids), dtype=bool)
    with open(path, newline="") as handle:
        rows = csv.DictReader(handle)
        count = 0
        for count, row in enumerate(rows, 1):
            if count > len(ids) or row["id"] != ids[count - 1]:
                raise DataError(f"{path}: ids do not match {IMAGES_DIR}/ids.json")
            categories.append(shared.setdefault(row["category"], row["category"]))
            perturbations.append(shared.setdefault(row["perturbation"], row["perturbation"]))
            public[count - 1] = row["partition"] == "public"
    if count != len(ids):
        raise DataError(f"{path}: ids do not match {IMAGES_DIR}/ids.json")
    return categories, perturbations, public
