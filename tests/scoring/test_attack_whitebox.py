"""White-box access end to end: each attack runs once per scored defense, on that defense's code-free export,
and a defense that cannot be exported gets failed cells (its ``attacks`` category counts 0, with the reason)."""

from __future__ import annotations

import pytest

from conftest import write_recipe

TRACK = """
[attack_track]
count = 20
eps = 0.1
access = "white-box"
defense_time_limit = 120

[[attack_track.baselines]]
name = "fgsm"
"""


@pytest.fixture(scope="module")
def whitebox_run(tmp_path_factory, submissions_dir, tiny_artifact):
    from harness.scoring.scorer import entries_from_paths, score_submissions
    from harness.scoring.split import build_split, load_recipe
    from harness.scoring.store import ResultStore

    folder = tmp_path_factory.mktemp("whitebox")
    recipe = write_recipe(folder, submissions_dir / "tiny")
    recipe.write_text(recipe.read_text() + TRACK)
    build_split(load_recipe(recipe), folder / "split", references=tiny_artifact.parents[1], progress=False)
    entries = entries_from_paths([submissions_dir / "tiny"], {"tiny": tiny_artifact})
    store_path = folder / "results.sqlite"
    score_submissions(entries, folder / "split", store_path, folder / "board.csv", profile="cpu", timeout=120,
                      work_dir=folder / "work", progress=False)
    with ResultStore(store_path) as store:
        split_hash = store.latest_split()
        # a second defense whose model could not be exported: its record says why, and it has no export
        (tiny,) = store.records(split_hash)
        from dataclasses import replace

        store.add(replace(tiny, submission="opaque", content_hash="o" * 64,
                          details={**tiny.details, "export": {"status": "not exportable", "reason": "custom op"},
                                   "export_dir": None}))
    again = []
    score_submissions(entries, folder / "split", store_path, folder / "board.csv", profile="cpu", timeout=120,
                      work_dir=folder / "work", progress=False,
                      on_event=lambda kind, who, detail: again.append((kind, who.name)))
    with ResultStore(store_path) as store:
        return store.records(split_hash), store.attack_records(split_hash), store.matrix_records(split_hash), again


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
    _, _, _, again = whitebox_run
    assert ("cached", "tiny") in again  # the defense
    assert ("cached", "baseline-fgsm vs tiny") in again  # its attack run
    # only the defense added since runs: its cell fails at once (no export), nothing else runs again
    assert {who for kind, who in again if kind in ("running", "attacked", "classified")} <= {"baseline-fgsm vs opaque"}
    assert ("failed", "baseline-fgsm vs opaque") in again
