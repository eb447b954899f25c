"""White-box access end to end: each attack runs once per scored defense, on that defense's code-free export,
and a defense that cannot be exported gets failed cells (its ``attacks`` category counts 0, with the reason)."""

from __future__ import annotations

import pytest

from conftest import scored_tiny_record

RECIPE = """
[split]
dataset = "digits"
source = "test"
seed = 7
limit = 30

[[perturbations]]
category = "clean"
kind = "clean"

[attack_track]
count = 20
eps = 0.1
access = "white-box"
defense_time_limit = 120

[[attack_track.baselines]]
name = "fgsm"
"""


@pytest.fixture(scope="module")
def whitebox_run(tmp_path_factory, tiny_artifact):
    """Two scored defenses (made in this process): tiny with its export, and "opaque" whose model could not be
    exported; the track run twice, the second time with nothing new to do."""
    from harness.sandbox.choice import choose_isolation
    from harness.scoring.attack_track import run_attack_track
    from harness.scoring.child_run import RunSettings
    from harness.scoring.split import build_split, load_recipe, open_split
    from harness.scoring.store import ResultStore

    folder = tmp_path_factory.mktemp("whitebox")
    (folder / "recipe.toml").write_text(RECIPE)
    build_split(load_recipe(folder / "recipe.toml"), folder / "split", progress=False)
    split = open_split(folder / "split")
    settings = RunSettings("cpu", 120.0, None, "auto", None, ("digits", "test"))
    events = [], []
    with ResultStore(folder / "results.sqlite") as store:
        store.add(scored_tiny_record(folder / "split", tiny_artifact, folder / "export"))
        store.add(scored_tiny_record(folder / "split", tiny_artifact, None, name="opaque"))
        for seen in events:
            run_attack_track(split, [], store, profile="cpu", settings=settings, isolation=choose_isolation("auto"),
                             work_dir=folder / "work", event=lambda kind, who, detail: seen.append((kind, who.name)))
        return (store.records(split.split_hash), store.attack_records(split.split_hash),
                store.matrix_records(split.split_hash), events)


def test_each_attack_runs_on_each_defense_export(whitebox_run):
    defenses, attacks, matrix, _ = whitebox_run
    runs = {(a.attack, a.defense): a for a in attacks}
    assert set(runs) == {("baseline-fgsm", "tiny"), ("baseline-fgsm", "opaque")}
    tiny = next(r for r in defenses if r.submission == "tiny")
    assert runs["baseline-fgsm", "tiny"].status == "ok" and runs["baseline-fgsm", "tiny"].defense_key == tiny.key
    assert runs["baseline-fgsm", "tiny"].details["target"] == "export"
    assert runs["baseline-fgsm", "opaque"].status == "failed"
    assert runs["baseline-fgsm", "opaque"].reason == "not exportable: custom op"
    cells = {(m.attack, m.defense): m for m in matrix}
    assert cells["baseline-fgsm", "tiny"].status == "scored"
    assert cells["baseline-fgsm", "tiny"].attack_key == runs["baseline-fgsm", "tiny"].key
    # white-box FGSM on its own export fools the tiny model on some images it gets right
    assert sum(cells["baseline-fgsm", "tiny"].metrics[p]["fooled"] for p in ("public", "private")) > 0
    assert cells["baseline-fgsm", "opaque"].status == "failed"


def test_the_unexportable_defense_counts_0_in_attacks_with_the_reason(whitebox_run):
    from harness.scoring.attack_board import with_attack_category

    defenses, _, matrix, _ = whitebox_run
    ranked = {r.submission: r for r in with_attack_category(defenses, matrix)}
    assert "top1_attacks" in ranked["tiny"].metrics["public"]
    assert "custom op" in ranked["opaque"].metrics["public"]["unscored"]["attacks"]
    assert ranked["opaque"].metrics["public"]["top1_attacks"] == 0.0


def test_a_rerun_runs_only_what_is_missing(whitebox_run):
    _, _, _, (first, again) = whitebox_run
    assert ("attacked", "baseline-fgsm vs tiny") in first and ("classified", "tiny") in first
    assert ("failed", "baseline-fgsm vs opaque") in first
    assert again == [("cached", "baseline-fgsm vs tiny"), ("cached", "baseline-fgsm vs opaque")]
