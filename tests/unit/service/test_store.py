"""The SQLite index: schema version, refusal of a newer database, atomic claims."""
from __future__ import annotations

import sqlite3
import threading

import pytest

from tuneforge.service.store import SCHEMA_VERSION, Store, StoreError


def test_new_database_is_wal_with_the_current_schema_version(tmp_path):
    store = Store(tmp_path / "t.db")
    assert store._execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert store._execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    task_id = store.insert_task(name="a", status="queued", config={"lora_dim": 4}, run_dir="/r/1")
    store.close()
    again = Store(tmp_path / "t.db")  # reopening migrates nothing and keeps the rows
    assert again.get_task(task_id)["config"] == {"lora_dim": 4}


def test_database_from_a_newer_version_is_refused(tmp_path):
    with sqlite3.connect(tmp_path / "t.db") as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(StoreError, match="newer tuneforge"):
        Store(tmp_path / "t.db")


def test_not_a_database_is_a_clear_error(tmp_path):
    (tmp_path / "t.db").write_text("hello, not sqlite " * 100)
    with pytest.raises(StoreError, match="not a usable tuneforge database"):
        Store(tmp_path / "t.db")


def test_claiming_a_queued_task_succeeds_exactly_once(tmp_path):
    store = Store(tmp_path / "t.db")
    task_id = store.insert_task(name="a", status="queued", config={}, run_dir="/r/1")
    wins, barrier = [], threading.Barrier(8)

    def claim():
        barrier.wait()
        if store.update_task(task_id, where_status=["queued"], status="running"):
            wins.append(1)

    threads = [threading.Thread(target=claim) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(wins) == 1 and store.get_task(task_id)["status"] == "running"


def test_a_version_1_database_is_migrated_forward(tmp_path):
    from tuneforge.service.store import MIGRATIONS

    with sqlite3.connect(tmp_path / "t.db") as conn:  # what tuneforge with schema 1 wrote
        for statement in filter(str.strip, MIGRATIONS[0].split(";")):
            conn.execute(statement)
        conn.execute("INSERT INTO tasks (name, status, config, run_dir, created_at) VALUES ('old', 'succeeded', '{}', '/r', 'x')")
        conn.execute("PRAGMA user_version = 1")
    store = Store(tmp_path / "t.db")
    assert store._execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert store.list_tasks()[0]["name"] == "old"
    store.ignore_run("/r")
    assert store.is_ignored("/r")
