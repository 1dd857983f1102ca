"""The task index: SQLite in WAL mode, schema versioned with ``PRAGMA user_version``.

The database only indexes runs (the run directory is the source of truth), so it stays small. WAL with
``synchronous=NORMAL`` keeps it consistent whatever moment the service is killed. Every state change is one
statement, so claiming a queued task is atomic: two workers never start the same task.
"""
from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Iterable, Iterator

from ..errors import TuneforgeError
from . import QUEUED
from .errors import NotFound

SCHEMA_VERSION = 7

# MIGRATIONS[v] takes a database at version v to v + 1; a new column is one more entry, never an edit.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE tasks (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT NOT NULL,
        status TEXT NOT NULL,
        config TEXT NOT NULL,
        run_dir TEXT NOT NULL UNIQUE,
        executor TEXT NOT NULL DEFAULT 'local',
        gpus INTEGER NOT NULL DEFAULT 0,
        gpu_ids TEXT,
        pid INTEGER,
        proc_started REAL,
        job_id TEXT,
        created_at TEXT NOT NULL,
        started_at TEXT,
        finished_at TEXT,
        exit_code INTEGER,
        error TEXT,
        best_metric REAL,
        best_metric_name TEXT,
        peak_host_gib REAL,
        peak_gpu_gib REAL,
        progress TEXT,
        source TEXT NOT NULL DEFAULT 'service',
        stop_requested INTEGER NOT NULL DEFAULT 0,
        attempt INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX tasks_status ON tasks(status, id);
    CREATE TABLE datasets (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT NOT NULL,
        path TEXT NOT NULL UNIQUE,
        size_bytes INTEGER NOT NULL,
        rows INTEGER,
        format TEXT,
        created_at TEXT NOT NULL
    );
    """,
    # 2: run directories under runs/ whose task was deleted (kept on disk): the scan must not list them again
    "CREATE TABLE ignored_runs (run_dir TEXT PRIMARY KEY)",
    # 3: a task's deployment (its `tuneforge serve` process): one row per task, replaced by a new deploy
    """
    CREATE TABLE deployments (
        task_id INTEGER PRIMARY KEY,
        status TEXT NOT NULL,
        model TEXT NOT NULL,
        port INTEGER NOT NULL,
        pid INTEGER,
        proc_started REAL,
        run_dir TEXT NOT NULL,
        started_at TEXT NOT NULL,
        ready_at TEXT,
        stopped_at TEXT,
        error TEXT
    )
    """,
    # 4: an accepted data set's content digest: a task refuses to train on a file that changed since its upload
    "ALTER TABLE datasets ADD COLUMN sha256 TEXT",
    # 5: sweeps (service/sweeps.py): a named group of trial tasks; a task knows its sweep, its trial's
    # parameters, and why it was stopped when the service stopped it (a pruning decision, kept across restarts)
    """
    CREATE TABLE sweeps (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT NOT NULL,
        base_config TEXT NOT NULL,
        space TEXT NOT NULL,
        search TEXT,
        metric TEXT NOT NULL,
        mode TEXT NOT NULL,
        early_stop TEXT,
        grace_steps INTEGER NOT NULL DEFAULT 0,
        max_concurrent INTEGER,
        created_at TEXT NOT NULL,
        status TEXT NOT NULL
    );
    ALTER TABLE tasks ADD COLUMN sweep_id INTEGER;
    ALTER TABLE tasks ADD COLUMN trial_params TEXT;
    ALTER TABLE tasks ADD COLUMN stop_reason TEXT;
    CREATE INDEX tasks_sweep ON tasks(sweep_id)
    """,
    # 6: time across attempts: when the first attempt started and the seconds of the attempts before this one
    # (a resume starts a new attempt; the console's elapsed time covers them all)
    """
    ALTER TABLE tasks ADD COLUMN first_started_at TEXT;
    ALTER TABLE tasks ADD COLUMN earlier_attempts_s REAL NOT NULL DEFAULT 0
    """,
    # 7: why a queued task has not started (the memory-aware queue: "waiting: needs 12.3 GiB, 5.1 GiB free on GPU 0")
    "ALTER TABLE tasks ADD COLUMN wait_reason TEXT",
]
assert len(MIGRATIONS) == SCHEMA_VERSION

JSON_COLUMNS = ("config", "progress", "gpu_ids", "trial_params")
SWEEP_JSON_COLUMNS = ("base_config", "space", "search")


class StoreError(TuneforgeError):
    """The database cannot be used (made by a newer tuneforge, or not a tuneforge database)."""


def utc_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class Store:
    """Thread-safe access to ``tuneforge.db``: one connection, one lock, short statements."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.lock = threading.RLock()
        try:
            self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None, timeout=30)
            self._db.row_factory = sqlite3.Row
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._migrate()
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path}: not a usable tuneforge database ({exc}).") from None

    def _migrate(self) -> None:
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{self.path}: database schema version {version} was written by a newer tuneforge (this one reads "
                f"up to {SCHEMA_VERSION}). Upgrade tuneforge, or start the service with another --home.")
        for v in range(version, SCHEMA_VERSION):
            with self.lock:
                self._db.execute("BEGIN IMMEDIATE")  # one migration = one transaction
                for statement in filter(str.strip, MIGRATIONS[v].split(";")):
                    self._db.execute(statement)
                self._db.execute(f"PRAGMA user_version = {v + 1}")
                self._db.execute("COMMIT")

    def close(self) -> None:
        with self.lock:
            self._db.close()

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """Statements in the block commit together or not at all (a kill in between leaves no half state)."""
        with self.lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # -- generic helpers -------------------------------------------------------------------------------

    def _execute(self, sql: str, params: Iterable[Any] = ()) -> sqlite3.Cursor:
        with self.lock:
            return self._db.execute(sql, tuple(params))

    @staticmethod
    def _row(row: sqlite3.Row | None) -> dict | None:
        if row is None:
            return None
        out = dict(row)
        for key in JSON_COLUMNS:
            if out.get(key) is not None:
                out[key] = json.loads(out[key])
        return out

    @staticmethod
    def _encode(values: dict[str, Any]) -> dict[str, Any]:
        return {k: (json.dumps(v, ensure_ascii=False) if k in JSON_COLUMNS and v is not None else v)
                for k, v in values.items()}

    # -- tasks -------------------------------------------------------------------------------------------

    def insert_task(self, **values: Any) -> int:
        values = self._encode({"created_at": utc_now(), **values})
        cols = ", ".join(values)
        marks = ", ".join("?" for _ in values)
        return int(self._execute(f"INSERT INTO tasks ({cols}) VALUES ({marks})", values.values()).lastrowid)

    def update_task(self, task_id: int, *, where_status: Iterable[str] | None = None, **values: Any) -> bool:
        """Set columns of one task; with ``where_status``, only if its status is one of those (atomic)."""
        values = self._encode(values)
        sets = ", ".join(f"{k} = ?" for k in values)
        sql, params = f"UPDATE tasks SET {sets} WHERE id = ?", [*values.values(), task_id]
        if where_status is not None:
            statuses = list(where_status)
            sql += f" AND status IN ({', '.join('?' for _ in statuses)})"
            params += statuses
        return self._execute(sql, params).rowcount == 1

    def get_task(self, task_id: int) -> dict | None:
        return self._row(self._execute("SELECT * FROM tasks WHERE id = ?", (task_id,)).fetchone())

    def require_task(self, task_id: int) -> dict:
        """The task's row; ``NotFound`` (404, "no such task") when there is none."""
        row = self.get_task(int(task_id))
        if row is None:
            raise NotFound(f"task {task_id}: no such task.")
        return row

    def task_by_run_dir(self, run_dir: str) -> dict | None:
        return self._row(self._execute("SELECT * FROM tasks WHERE run_dir = ?", (run_dir,)).fetchone())

    def list_tasks(self, status: str | None = None) -> list[dict]:
        if status:
            rows = self._execute("SELECT * FROM tasks WHERE status = ? ORDER BY id DESC", (status,)).fetchall()
        else:
            rows = self._execute("SELECT * FROM tasks ORDER BY id DESC").fetchall()
        return [self._row(r) for r in rows]  # type: ignore[misc]

    def queued_in_order(self) -> list[dict]:
        rows = self._execute("SELECT * FROM tasks WHERE status = ? ORDER BY id", (QUEUED,)).fetchall()
        return [self._row(r) for r in rows]  # type: ignore[misc]

    def delete_task(self, task_id: int) -> None:
        self._execute("DELETE FROM tasks WHERE id = ?", (task_id,))

    def ignore_run(self, run_dir: str) -> None:
        self._execute("INSERT OR IGNORE INTO ignored_runs (run_dir) VALUES (?)", (run_dir,))

    def is_ignored(self, run_dir: str) -> bool:
        return self._execute("SELECT 1 FROM ignored_runs WHERE run_dir = ?", (run_dir,)).fetchone() is not None

    # -- datasets ----------------------------------------------------------------------------------------

    def insert_dataset(self, **values: Any) -> int:
        values = {"created_at": utc_now(), **values}
        cols, marks = ", ".join(values), ", ".join("?" for _ in values)
        return int(self._execute(f"INSERT INTO datasets ({cols}) VALUES ({marks})", values.values()).lastrowid)

    def get_dataset(self, dataset_id: int) -> dict | None:
        return self._row(self._execute("SELECT * FROM datasets WHERE id = ?", (dataset_id,)).fetchone())

    def dataset_by_path(self, path: str) -> dict | None:
        return self._row(self._execute("SELECT * FROM datasets WHERE path = ?", (path,)).fetchone())

    def list_datasets(self) -> list[dict]:
        return [dict(r) for r in self._execute("SELECT * FROM datasets ORDER BY id DESC").fetchall()]

    # -- deployments -------------------------------------------------------------------------------------

    def upsert_deployment(self, **values: Any) -> None:
        cols, marks = ", ".join(values), ", ".join("?" for _ in values)
        self._execute(f"INSERT OR REPLACE INTO deployments ({cols}) VALUES ({marks})", values.values())

    def update_deployment(self, task_id: int, **values: Any) -> None:
        sets = ", ".join(f"{k} = ?" for k in values)
        self._execute(f"UPDATE deployments SET {sets} WHERE task_id = ?", [*values.values(), task_id])

    def get_deployment(self, task_id: int) -> dict | None:
        row = self._execute("SELECT * FROM deployments WHERE task_id = ?", (task_id,)).fetchone()
        return dict(row) if row else None

    def delete_deployment(self, task_id: int) -> None:
        self._execute("DELETE FROM deployments WHERE task_id = ?", (task_id,))

    def list_deployments(self, statuses: Iterable[str]) -> list[dict]:
        statuses = list(statuses)
        sql = f"SELECT * FROM deployments WHERE status IN ({', '.join('?' for _ in statuses)}) ORDER BY task_id"
        return [dict(r) for r in self._execute(sql, statuses).fetchall()]

    # -- sweeps ------------------------------------------------------------------------------------------

    @staticmethod
    def _sweep(row: sqlite3.Row | None) -> dict | None:
        if row is None:
            return None
        out = dict(row)
        for key in SWEEP_JSON_COLUMNS:
            out[key] = json.loads(out[key]) if out.get(key) is not None else None
        return out

    def insert_sweep(self, **values: Any) -> int:
        values = {"created_at": utc_now(), **{k: json.dumps(v, ensure_ascii=False) if k in SWEEP_JSON_COLUMNS else v
                                              for k, v in values.items()}}
        cols, marks = ", ".join(values), ", ".join("?" for _ in values)
        return int(self._execute(f"INSERT INTO sweeps ({cols}) VALUES ({marks})", values.values()).lastrowid)

    def get_sweep(self, sweep_id: int) -> dict | None:
        return self._sweep(self._execute("SELECT * FROM sweeps WHERE id = ?", (sweep_id,)).fetchone())

    def list_sweeps(self) -> list[dict]:
        rows = self._execute("SELECT * FROM sweeps ORDER BY id DESC").fetchall()
        return [self._sweep(r) for r in rows]  # type: ignore[misc]

    def update_sweep(self, sweep_id: int, **values: Any) -> None:
        sets = ", ".join(f"{k} = ?" for k in values)
        self._execute(f"UPDATE sweeps SET {sets} WHERE id = ?", [*values.values(), sweep_id])

    def sweep_tasks(self, sweep_id: int) -> list[dict]:
        rows = self._execute("SELECT * FROM tasks WHERE sweep_id = ? ORDER BY id", (sweep_id,)).fetchall()
        return [self._row(r) for r in rows]  # type: ignore[misc]
