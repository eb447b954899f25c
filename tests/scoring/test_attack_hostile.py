"""Hostile attack submissions in the attack track: each is contained and reported, and the defense's scores
change only through the clipped images of the attacks that returned usable ones.

The track runs (:func:`harness.scoring.attack_track.run_attack_track`, each attack in its sandboxed child) on a
split with a transfer attack track, against the tiny defense (scored and exported in this process: the demo's
test runs the whole ``harness score``), with four hostile attacks (tests/attack_submissions/hostile_attacks.py):
far outside the budget, NaN, a peek at the organiser's and the defenses' files (which then returns the clean
images unchanged) and a hang. Baselines and surrogates run in the demo's test and
tests/scoring/test_attack_worker.py.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from conftest import scored_tiny_record, write_recipe

HOSTILE = Path(__file__).resolve().parents[1] / "attack_submissions" / "hostile_attacks.py"
#: every attack's limit (the hang uses it all): model-free attacks start and finish in a few seconds
TIME_LIMIT = 10.0
TRACK = """
[attack_track]
count = 30
eps = 0.1
access = "transfer"
time_limit = {limit}
"""


def attack_submission(folder: Path, kind: str) -> Path:
    """A hostile attack submission: ``track = "attack"``, no surrogate, the hostile module as its plugin."""
    root = folder / kind
    root.mkdir(parents=True)
    shutil.copy(HOSTILE, root / "hostile_attacks.py")
    (root / "submission.toml").write_text(
        f'name = "{kind}"\nteam = "hostile tests"\ntrack = "attack"\nframework = "torch"\ndataset = "digits"\n'
        f'plugins = ["hostile_attacks"]\n\n[attack]\nname = "hostile-{kind}"\n\n[profiles.cpu]\n')
    return root


@pytest.fixture(scope="module")
def track_run(tmp_path_factory, submissions_dir, tiny_artifact):
    from harness.sandbox.choice import choose_isolation
    from harness.scoring.attack_track import run_attack_track
    from harness.scoring.child_run import RunSettings
    from harness.scoring.scorer import attack_leaderboard_path, entries_from_paths, invalid_reason, write_boards
    from harness.scoring.split import build_split, load_recipe, open_split
    from harness.scoring.store import ResultStore

    folder = tmp_path_factory.mktemp("attack-track")
    recipe = write_recipe(folder, submissions_dir / "tiny")
    recipe.write_text(recipe.read_text() + TRACK.format(limit=TIME_LIMIT))
    # the split's FGSM reference is the tiny model the session's hidden split trained: found there, not retrained
    build_split(load_recipe(recipe), folder / "split", references=tiny_artifact.parents[1], progress=False)
    split = open_split(folder / "split")
    attacks = folder / "attacks"
    for kind in ("far", "nan", "peek", "hang"):
        attack_submission(attacks, kind)
    with ResultStore(folder / "results.sqlite") as store:
        store.add(scored_tiny_record(folder / "split", tiny_artifact, folder / "export"))
        run_attack_track(split, entries_from_paths([attacks]), store, profile="cpu",
                         settings=RunSettings("cpu", 120.0, None, "auto", None, ("digits", "test")),
                         isolation=choose_isolation("auto"), work_dir=folder / "work",
                         invalid=lambda entry: invalid_reason(entry, "cpu"))
        write_boards(store, split.split_hash, folder / "board.csv")
        records = (store.records(split.split_hash), store.attack_records(split.split_hash),
                   store.matrix_records(split.split_hash))
    return folder, records, attack_leaderboard_path(folder / "board.csv")


def test_each_hostile_attack_is_contained_and_reported(track_run):
    folder, (defenses, attacks, matrix), board = track_run
    by_name = {a.attack: a for a in attacks}
    assert set(by_name) == {"far", "nan", "peek", "hang"}
    assert by_name["far"].status == "ok" and by_name["far"].clipped["outside_budget"] == 30
    assert by_name["far"].clipped["clipped"] == 30
    assert by_name["nan"].status == "failed" and "not finite" in by_name["nan"].reason
    assert by_name["hang"].status == "failed" and by_name["hang"].reason.startswith("timeout")
    assert by_name["peek"].status == "ok" and by_name["peek"].clipped["clipped"] == 0  # the clean images
    # the far attack's images were clipped into the budget before any defense saw them
    from harness.scoring.adaptive import check_adversarial
    from harness.scoring.split import open_split

    split = open_split(folder / "split")
    clean = np.load(split.attack_images_path)
    kept = np.load(by_name["far"].details["images"])
    assert check_adversarial(kept, clean, 0.1, "linf") == ""
    # failed attacks are on the attack leaderboard, unranked, with their reasons
    text = board.read_text()
    assert "not finite" in text and "timeout" in text


def test_the_peeking_attack_reads_nothing_of_the_organiser_or_the_defenses(track_run):
    folder, _, _ = track_run
    report = json.loads(next((folder / "work").rglob("peek-report.json")).read_text())
    assert report["walked"] > 100  # it really looked
    assert report["found"] == []
    assert report["labels_given"] is False


def test_defense_scores_change_only_through_the_clipped_images(track_run):
    from harness.export import load_exported
    from harness.scoring.attack_board import with_attack_category
    from harness.scoring.split import open_split
    from harness.scoring.stats import unpack_bits

    folder, (defenses, attacks, matrix), _ = track_run
    split = open_split(folder / "split")
    (defense,) = defenses
    rows = {m.attack: m for m in matrix if m.defense == "tiny"}
    assert set(rows) == {"far", "peek"}  # the failed attacks give no images
    assert all(row.status == "scored" for row in rows.values())
    assert rows["peek"].metrics["public"]["fooled"] == 0 and rows["peek"].metrics["private"]["fooled"] == 0
    # each row is what the defense's export says of that attack's clipped images, hostile neighbours or not
    exported = load_exported(Path(defense.details["export_dir"]))
    for name in rows:
        images = np.load(next(a for a in attacks if a.attack == name).details["images"])
        right = exported.runtime.predict_logits_float(exported.model, images).argmax(axis=1) == split.attack_labels
        for partition, mask in (("public", split.attack_public), ("private", ~split.attack_public)):
            assert list(unpack_bits(rows[name].correct[partition]["adversarial"])) == list(right[mask])
    # every other category is the defense's own; the attacks category is the worst case over both
    (ranked,) = with_attack_category(defenses, matrix)
    for partition in ("public", "private"):
        kept = {k: v for k, v in defense.metrics[partition].items() if "attacks" not in k and "score" not in k}
        assert {k: v for k, v in ranked.metrics[partition].items() if k in kept} == kept
        worst = unpack_bits(rows["peek"].correct[partition]["clean"]).copy()
        for row in rows.values():
            worst &= unpack_bits(row.correct[partition]["adversarial"])
        assert ranked.metrics[partition]["top1_attacks"] == pytest.approx(worst.mean())
