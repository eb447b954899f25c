"""The store's attack tables: created on open (older stores too), keys, idempotent adds, forgetting failures."""

from __future__ import annotations

import sqlite3

from harness.scoring.store import (AttackRecord, MatrixRecord, ResultStore, attack_key, matrix_key)

from test_store import old_store


def run(name: str = "a", status: str = "ok", defense_key: str = "", split: str = "s") -> AttackRecord:
    return AttackRecord(attack=name, team="t", framework="torch", kind="submission", profile="cpu",
                        content_hash=f"hash-{name}", split_hash=split, harness_version="0", status=status,
                        defense="d" if defense_key else "", defense_key=defense_key,
                        clipped={"outside_budget": 1, "outside_box": 0, "clipped": 1},
                        details={"target": "surrogate", "seconds": {"attack": 1.5}})


def cell(record: AttackRecord, defense_key: str = "dk") -> MatrixRecord:
    return MatrixRecord(attack=record.attack, attack_kind=record.kind, attack_key=record.key, defense="d",
                        defense_team="t", defense_key=defense_key, split_hash=record.split_hash, harness_version="0",
                        status="scored", metrics={"public": {"count": 2, "clean_correct": 2, "fooled": 1,
                                                             "success": 0.5}},
                        correct={"public": {"clean": "2:wA==", "adversarial": "2:gA=="}})


def tables(db) -> set[str]:
    with sqlite3.connect(db) as connection:
        return {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def test_keys_name_what_was_run_against_what():
    assert run().key == attack_key("hash-a", "s", "0", "cpu")
    assert run(defense_key="k1").key != run(defense_key="k2").key != run().key  # white-box: one run per defense
    assert run(split="other").key != run().key
    assert cell(run(), "k1").key == matrix_key(run().key, "k1") != cell(run(), "k2").key


def test_rows_round_trip_once_per_key(tmp_path):
    with ResultStore(tmp_path / "db.sqlite") as store:
        first = run()
        assert store.add_attack(first) and not store.add_attack(run())  # same key: never duplicated
        assert store.has_attack(first.key) and not store.has_attack(run("b").key)
        store.add_attack(run("b", split="other"))
        assert store.attack_records("s") == [first]
        assert [r.attack for r in store.attack_records()] == ["a", "b"]
        row = cell(first)
        assert store.add_matrix(row) and not store.add_matrix(cell(first)) and store.has_matrix(row.key)
        assert store.matrix_records("s") == [row] and store.matrix_records("other") == []


def test_forgetting_a_failed_attack_drops_its_matrix_rows(tmp_path):
    with ResultStore(tmp_path / "db.sqlite") as store:
        good, bad = run("good"), run("bad", status="failed")
        for record in (good, bad):
            store.add_attack(record)
            store.add_matrix(cell(record))
        assert not store.forget_attack_failure(good.key)  # ok runs stay
        assert store.forget_attack_failure(bad.key) and not store.has_attack(bad.key)
        assert [m.attack for m in store.matrix_records()] == ["good"]


def test_an_older_store_gains_the_attack_tables(tmp_path):
    db = tmp_path / "old.sqlite"
    old_store(db, "s", "{}")
    assert tables(db) == {"results"}
    with ResultStore(db) as store:
        assert [r.submission for r in store.records()] == ["old"]
        assert store.add_attack(run())
    assert {"results", "attack_runs", "matrix"} <= tables(db)
    with ResultStore(db) as store:
        assert [r.attack for r in store.attack_records()] == ["a"]
