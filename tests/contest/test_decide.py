"""The decision rules, in arrival order through a real ledger; invalid_reason is stubbed (no plugin is loaded)
except where a test says so."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from contest_helpers import tiny_copy
from harness.contest.inbox import take, inbox_item
from harness.contest.ledger import Ledger
from harness.contest.runner import decide
from harness.contest.spec import ContestSpec

DAY = 86400.0
T0 = 1_800_000_000.0  # 2027-01-15 08:00 UTC
EPOCHS = iter(range(10_000))


@pytest.fixture(autouse=True)
def valid(monkeypatch):
    """Every submission valid unless its name starts with 'bad' (what harness submission validate would say)."""
    from harness.scoring import scorer

    monkeypatch.setattr(scorer, "invalid_reason",
                        lambda entry, profile: "backbone.name: unknown" if entry.name.startswith("bad") else "")


class Contest:
    """A contest on ``tmp_path`` deciding entries one after the other (each a distinct tiny copy)."""

    def __init__(self, tmp_path: Path, **settings):
        self.root = tmp_path
        self.spec = ContestSpec(path=tmp_path / "contest.toml", name="t", recipe=None, split=tmp_path / "split",
                                output=tmp_path / "out", **settings)
        self.ledger = Ledger(tmp_path / "out" / "results.sqlite")

    def send(self, team: str | None, arrived_at: float, name: str = "tiny", toml_team: str | None = None,
             baseline: bool = False, changes: dict[str, str] | None = None, same_as: Path | None = None):
        """Decide and record one entry; ``same_as`` sends that folder's content again."""
        where = self.root / "inbox" / (team or "") / f"entry{next(EPOCHS)}"
        if same_as is not None:
            import shutil

            shutil.copytree(same_as, where)
        else:  # a distinct content: each copy trains one epoch more
            epochs = next(EPOCHS) + 5
            tiny_copy(where, team=toml_team or team or "nobody", name=name,
                      changes={"epochs = 2": f"epochs = {epochs}", **(changes or {})})
        item = inbox_item(where, where.relative_to(self.root / "inbox").as_posix(), team)
        accepted = [e for e in self.ledger.entries() if e.status == "accepted"]
        entry = decide(self.spec, accepted, inbox_path=item.inbox_path, taken=take(item, self.root / "snapshots"),
                       team_folder=team, arrived_at=arrived_at, baseline=baseline)
        recorded = self.ledger.add(entry)
        recorded.folder = where
        return recorded


def test_deadline_rejects_later_arrivals_but_not_baselines(tmp_path):
    contest = Contest(tmp_path, deadline=T0)
    assert contest.send("alpha", T0).status == "accepted"
    late = contest.send("alpha", T0 + 1)
    assert (late.status, late.reason) == ("rejected", "arrived 2027-01-15T08:00:01Z, after the deadline "
                                                      "2027-01-15T08:00:00Z")
    assert late.submission == "" and late.team == "alpha" and "epochs" in late.spec
    assert contest.send("organisers", T0 + DAY, baseline=True).status == "accepted"


def test_daily_and_total_limits_count_accepted_entries_per_utc_day(tmp_path):
    contest = Contest(tmp_path, max_per_team_per_day=2, max_total_per_team=3)
    midnight = T0 - 8 * 3600  # 2027-01-15 00:00 UTC
    first = contest.send("alpha", midnight - 1)  # 2027-01-14 23:59:59
    assert [first.status, contest.send("alpha", midnight - 0.5).status] == ["accepted", "accepted"]
    assert contest.send("alpha", midnight + 1, name="bad").status == "rejected"  # invalid: does not count
    assert contest.send("alpha", midnight + 2).status == "accepted"  # a new UTC day
    over_day = contest.send("alpha", midnight - 0.2)  # arrived late on the 14th
    assert over_day.reason == "over max_per_team_per_day = 2: team 'alpha' has 2 accepted on 2027-01-14 (UTC)"
    over_total = contest.send("alpha", midnight + DAY)
    assert over_total.reason == "over max_total_per_team = 3: team 'alpha' has 3 accepted"
    assert contest.send("beta", midnight + DAY).status == "accepted"  # another team's own limits
    assert contest.send("alpha", midnight + DAY, baseline=True).status == "accepted"  # baselines: no limits
    names = [e.submission for e in contest.ledger.entries() if e.status == "accepted"]
    assert names == ["alpha.tiny.v1", "alpha.tiny.v2", "alpha.tiny.v3", "beta.tiny.v1", "alpha.tiny.v4"]


def test_identical_content_track_team_and_toml(tmp_path):
    contest = Contest(tmp_path, tracks=("defense",))
    first = contest.send("alpha", T0)
    copy = contest.send("alpha", T0 + 1, same_as=first.folder)  # sent again
    assert copy.reason == f"identical to alpha.tiny.v1 (team 'alpha', {first.inbox_path})"
    attack = contest.send("alpha", T0 + 2, changes={'framework = "torch"': 'framework = "torch"\ntrack = "attack"'})
    assert (attack.track, attack.reason) == ("attack", "track 'attack': this contest runs defense only")
    other = contest.send("alpha", T0 + 3, toml_team="gamma")
    assert other.reason == "submission.toml team 'gamma' differs from its inbox folder 'alpha'"
    broken = contest.send("alpha", T0 + 4, changes={"[training]": "[training"})
    assert broken.status == "rejected" and broken.reason.startswith("not valid TOML:") and broken.team == "alpha"
    assert contest.send("alpha", T0 + 5, name="bad").reason == "backbone.name: unknown"
    top = contest.send(None, T0 + 6, toml_team="delta")  # directly in the inbox: its TOML names the team
    assert (top.status, top.team, top.submission) == ("accepted", "delta", "delta.tiny.v1")


def test_teams_whose_names_meet_in_one_slug_keep_unique_names(tmp_path):
    contest = Contest(tmp_path)
    names = [contest.send(team, T0 + i, toml_team=team).submission for i, team in enumerate(["A B", "a-b", "A B"])]
    assert names == ["a-b.tiny.v1", "a-b.tiny.v2", "a-b.tiny.v3"]


def test_a_recorded_entry_is_never_decided_again(tmp_path):
    contest = Contest(tmp_path, max_total_per_team=1)
    first = contest.send("alpha", T0)
    again = contest.ledger.add(dataclasses.replace(first, status="rejected", reason="other", id=None))
    assert again == first and len(contest.ledger.entries()) == 1
