"""contest.toml: every field's problem is one line naming the file and the field; a good file loads."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from contest_helpers import tiny_copy, write_contest
from harness.cli.main import app
from harness.contest.spec import load_contest
from harness.errors import UsageError

EXAMPLE = Path(__file__).resolve().parents[2] / "submissions" / "digits-contest.toml"


@pytest.fixture
def folder(tmp_path, contest_recipe) -> Path:
    """A folder with a recipe and a baseline submission, for contest files to name."""
    (tmp_path / "recipe.toml").write_text(contest_recipe.read_text())
    tiny_copy(tmp_path / "base")
    return tmp_path


@pytest.mark.parametrize("line, field, words", [
    ('nmae = "x"', "nmae", "Did you mean 'name'?"),
    ('recipe = "missing.toml"', "recipe", "no such recipe file"),
    ('split = "nowhere"', "split", "not a split built by harness split build"),
    ('tracks = []', "tracks", "at least one track"),
    ('tracks = ["defence"]', "tracks[0]", "Did you mean 'defense'?"),
    ('tracks = ["attack"]', "tracks", "needs an attack track"),
    ('timeout = 0', "timeout", "above 0"),
    ('timeout = nan', "timeout", "finite"),
    ('sandbox = "docker"', "sandbox", "one of auto, bwrap, ns, landlock, none"),
    ('executor = { kind = "slurm" }', "executor.kind", "one of local, ray"),
    ('executor = { address = "auto" }', "executor.address", "only the Ray executor"),
    ('executor = { kind = "ray", gpus_per_submission = -1 }', "executor.gpus_per_submission", "0 or more"),
    ('executor = { kind = "ray", cpus = 2 }', "executor.cpus", "unknown field"),
    ('deadline = 2026-12-15T23:59:00', "deadline", "no time zone"),
    ('deadline = 2026-12-15', "deadline", "UTC date-time"),
    ('deadline = "tomorrow"', "deadline", "not an ISO 8601 date-time"),
    ('max_per_team_per_day = 0', "max_per_team_per_day", "at least 1"),
    ('max_total_per_team = 1.5', "max_total_per_team", "must be an integer"),
    ('reveal_private = true', "reveal_private", "needs a deadline"),
    ('baselines = ["nothing-here"]', "baselines[0]", "a submission folder"),
    ('poll_seconds = -1', "poll_seconds", "above 0"),
    ('settle_seconds = "5"', "settle_seconds", "must be a number"),
    ('explain = 17', "explain", "must be 0 to 16 images"),
    ('publish_specs = "no"', "publish_specs", "must be"),
])
def test_each_field_error_is_one_line_naming_it(folder, line, field, words):
    recipe = "" if line.startswith(("recipe", "split")) else 'recipe = "recipe.toml"\n'
    path = write_contest(folder, f'name = "c"\n{recipe}{line}\n')
    with pytest.raises(UsageError) as raised:
        load_contest(path)
    message = raised.value.message
    assert message.startswith(f"{path}: {field}: ") and words in message and "\n" not in message, message


def test_recipe_or_split_exactly_one(folder, contest_split):
    both = write_contest(folder, f'name = "c"\nrecipe = "recipe.toml"\nsplit = "{contest_split}"\n')
    with pytest.raises(UsageError, match="recipe: give exactly one of recipe"):
        load_contest(both)
    split = load_contest(write_contest(folder, f'name = "c"\nsplit = "{contest_split}"\n'))
    assert split.split_dir == contest_split and split.recipe is None


def test_a_full_file_loads_with_paths_beside_it(folder):
    path = write_contest(folder, '''name = "spring"
recipe = "recipe.toml"
tracks = ["defense"]
profile = "cpu"
timeout = 60
sandbox = "none"
deadline = 2026-12-15T23:59:00+01:00
max_per_team_per_day = 2
max_total_per_team = 5
reveal_private = true
baselines = ["base"]
poll_seconds = 1
settle_seconds = 0
explain = 2
[executor]
kind = "ray"
address = "auto"
cpus_per_submission = 2
''')
    contest = load_contest(path)
    assert contest.output == folder / "runs" / "spring" and contest.split_dir == contest.output / "split"
    assert contest.deadline == 1797375540.0  # 22:59 UTC
    assert contest.settings()["deadline_utc"] == "2026-12-15T22:59:00Z"
    assert contest.baselines == ((folder / "base").resolve(),) and contest.timeout == 60.0 and contest.explain == 2
    options = contest.executor.ray_options()
    assert (options.address, options.cpus_per_submission, options.gpus_per_submission) == ("auto", 2.0, 0.0)


def test_cli_validate(folder):
    runner = CliRunner()
    done = runner.invoke(app, ["contest", "validate", str(EXAMPLE)])
    assert done.exit_code == 0 and done.output.strip() == f"ok {EXAMPLE}", done.output
    bad = write_contest(folder, 'name = "c"\nrecipe = "recipe.toml"\ntimeout = -1\nsandbox = "x"\n')
    done = runner.invoke(app, ["contest", "validate", str(bad)])
    assert done.exit_code == 2
    assert done.output.splitlines() == [f"{bad}: timeout: must be a finite number above 0, got -1.0",
                                        f"{bad}: sandbox: must be one of auto, bwrap, ns, landlock, none, got 'x'"]


CONTEST_KEYS = ["name", "recipe", "split", "output", "tracks", "profile", "timeout", "sandbox", "deadline",
                "max_per_team_per_day", "max_total_per_team", "reveal_private", "baselines", "poll_seconds",
                "settle_seconds", "explain", "publish_specs", "bogus"]
DATE_TIMES = ["2026-12-15T23:59:00Z", "2026-12-15T23:59:00", "2026-12-15", "23:59:00", "9999-12-31T23:59:59-23:59",
              "0001-01-01T00:00:00+23:59", '"2026-12-15T23:59:00+01:00"', '"\\u0000"']


def test_contest_toml_fuzz(folder):
    """Every contest file ends in a contest or one-line problems, never another exception."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from harness.contest.spec import contest_problems
    from harness.errors import HarnessError
    from test_toml_fuzz import FUZZ, garbage, one_line, toml_value, values

    value_text = st.one_of(values.map(toml_value), st.sampled_from(DATE_TIMES),
                           st.sampled_from(['"recipe.toml"', '"base"', '["defense", "attack"]', '"ray"']))
    executor = st.dictionaries(st.sampled_from(["kind", "address", "gpus_per_submission", "cpus", "x"]), value_text,
                               max_size=4).map(lambda d: "[executor]\n" + "".join(f"{k} = {v}\n" for k, v in d.items()))
    document = st.tuples(st.dictionaries(st.sampled_from(CONTEST_KEYS), value_text, max_size=8), executor).map(
        lambda t: "".join(f"{k} = {v}\n" for k, v in t[0].items()) + t[1])

    @settings(FUZZ, max_examples=60)
    @given(st.one_of(document, garbage))
    def check(text):
        path = write_contest(folder, text)
        try:
            contest, problems = contest_problems(path)
        except HarnessError as error:
            one_line(error)
            return
        assert (contest is None) == bool(problems)
        assert all("\n" not in str(p) and p.field for p in problems), problems

    check()
