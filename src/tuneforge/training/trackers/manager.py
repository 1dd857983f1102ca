"""Running the configured trackers beside a run, on rank 0, without ever stopping it.

``TrackerSet`` hands every metrics.jsonl record to each tracker. A tracker that raises (server down, disk
full, a bug) costs one warning with the reason; its records wait in a bounded backlog and every later
record retries (the start included), so a tracker that comes back gets the records it missed, in order.
metrics.jsonl has every record whatever the trackers do.

Starts, records and the end go, in order, to one worker thread: a tracker that blocks (a server that does
not answer, a client retrying for minutes) delays only the trackers, never a training step. At the end
the run waits for them at most ``FINISH_TIMEOUT_S``.

Each tracker's run id, URL and store go to ``trackers.json`` in the run directory: a resumed run continues
the same tracker run, and the console links to it. Its shape::

    {"mlflow": {"id": "<run id>", "name": "...", "project": "...", "url": null | "https://...",
                "location": "sqlite:///.../mlflow.db", "view": "mlflow ui --backend-store-uri ...",
                "extra": {...}}, "wandb": {...}, ...}
"""
from __future__ import annotations

import dataclasses
import json
import os
import queue
import threading
from pathlib import Path
from typing import Any, Callable

from ...rundir import TRACKERS_FILE
from . import tracker_class, tracker_names
from .base import Tracker

MAX_BACKLOG = 10_000  # records kept for a failing tracker; older ones are dropped (metrics.jsonl has them)
FINISH_TIMEOUT_S = 300.0  # how long the end of a run waits for busy trackers
CLOSE_TIMEOUT_S = 10.0  # the same after an error or a signal
_STOP = object()


def read_trackers_file(run_dir: str | Path) -> dict[str, dict[str, Any]]:
    """The run directory's tracker runs (empty when none, or when the file is unreadable)."""
    try:
        data = json.loads((Path(run_dir) / TRACKERS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


class _Slot:
    """One tracker's state: started or not, the records it has not taken yet, whether it is failing."""

    def __init__(self, tracker: Tracker, resume_id: str | None):
        self.tracker, self.resume_id = tracker, resume_id
        self.started = self.failing = False
        self.backlog: list[tuple[dict[str, Any], int]] = []
        self.dropped = 0


class TrackerSet:
    """The run's trackers. ``start(config, resumed)`` once the config is resolved, ``log(record)`` for every
    metrics record (a MetricsLog listener), ``finish(summary, output_dir)`` at the end, ``close()`` always."""

    def __init__(self, trackers: list[Tracker], run_dir: Path, say: Callable[[str], None] = print):
        self.run_dir, self.say = Path(run_dir), say
        self.slots = [_Slot(t, None) for t in trackers]
        self.config: dict[str, Any] = {}
        self._queue: queue.Queue = queue.Queue()
        self._worker: threading.Thread | None = None

    @classmethod
    def for_config(cls, cfg, run_dir: Path, say: Callable[[str], None] = print) -> "TrackerSet":
        return cls([tracker_class(name)(cfg, run_dir) for name in tracker_names(cfg.report_to)], run_dir, say)

    def __bool__(self) -> bool:
        return bool(self.slots)

    def start(self, config: dict[str, Any], resumed: bool) -> None:
        """Start the worker, which opens each tracker's run (a resumed run continues the tracker runs named
        in trackers.json) and then takes the records; returns at once."""
        self.config = config
        saved = read_trackers_file(self.run_dir) if resumed else {}
        for slot in self.slots:
            slot.resume_id = (saved.get(slot.tracker.name) or {}).get("id")
        if self.slots and self._worker is None:
            self._worker = threading.Thread(target=self._work, name="tuneforge-trackers", daemon=True)
            self._worker.start()
            self._queue.put(("start", None))

    def log(self, record: dict[str, Any]) -> None:
        """Queue one record for the trackers (returns at once)."""
        if self._worker is not None:
            self._queue.put(("log", record))

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until the trackers have taken every queued record; False if they are still busy."""
        if self._worker is None:
            return True
        done = threading.Event()
        self._queue.put(("call", done.set))
        return done.wait(timeout)

    def finish(self, summary: dict[str, Any], output_dir: Path) -> None:
        """The summary and the output reference, then end each tracker's run; waits FINISH_TIMEOUT_S at most."""
        self._stop(("finish", (summary, Path(output_dir))), FINISH_TIMEOUT_S)

    def close(self) -> None:
        """Release trackers whose run did not finish (an error or a signal stopped training)."""
        self._stop(("close", None), CLOSE_TIMEOUT_S)

    # -- the worker ----------------------------------------------------------------------------
    def _stop(self, last: tuple[str, Any], timeout: float) -> None:
        worker, self._worker = self._worker, None
        if worker is None:
            return
        self._queue.put(last)
        self._queue.put((_STOP, None))
        worker.join(timeout)
        if worker.is_alive():
            busy = ", ".join(slot.tracker.name for slot in self.slots)
            self.say(f"warning: trackers ({busy}) still busy after {timeout:g} s; the run's own files are "
                     "complete, the tracker runs may lack their last records.")

    def _work(self) -> None:
        while True:
            kind, payload = self._queue.get()
            if kind is _STOP:
                return
            if kind == "call":
                payload()
                continue
            for slot in self.slots:
                if kind == "start":
                    self._attempt(slot, "start")
                elif kind == "log":
                    self._log(slot, payload)
                elif kind == "finish":
                    self._finish(slot, *payload)
                elif slot.started:  # close
                    self._close(slot)

    def _log(self, slot: _Slot, record: dict[str, Any]) -> None:
        step = int(record.get("step") or 0)
        slot.backlog.append((record, step))
        if len(slot.backlog) > MAX_BACKLOG:
            slot.backlog.pop(0)
            slot.dropped += 1
        self._attempt(slot, f"step {step}")

    def _finish(self, slot: _Slot, summary: dict[str, Any], output_dir: Path) -> None:
        if self._attempt(slot, "the end of the run"):
            try:
                slot.tracker.finish(summary, output_dir)
                slot.started = False
            except Exception as exc:  # noqa: BLE001 - a tracker never stops the run
                self._warn(slot, "the end of the run", exc)

    @staticmethod
    def _close(slot: _Slot) -> None:
        slot.started = False
        try:
            slot.tracker.close()
        except Exception:  # noqa: BLE001 - already stopping; the tracker run stays as it was
            pass

    # -- failures ------------------------------------------------------------------------------
    def _attempt(self, slot: _Slot, where: str) -> bool:
        """Start the tracker if needed and hand it its backlog; False (and one warning) on a failure."""
        try:
            if not slot.started:
                run = slot.tracker.start(self.config, slot.resume_id)
                slot.started, slot.resume_id = True, run.id
                self._save(slot.tracker.name, run)
            while slot.backlog:
                record, step = slot.backlog[0]
                slot.tracker.log(record, step)
                slot.backlog.pop(0)
        except Exception as exc:  # noqa: BLE001 - any failure of a tracker is its own, never the run's
            self._warn(slot, where, exc)
            return False
        if slot.failing:
            slot.failing = False
            lost = f"; {slot.dropped} older records were dropped (metrics.jsonl has them)" if slot.dropped else ""
            self.say(f"tracker {slot.tracker.name}: working again, the records it missed were sent{lost}")
            slot.dropped = 0
        return True

    def _warn(self, slot: _Slot, where: str, exc: Exception) -> None:
        if slot.failing:
            return  # one warning per outage
        slot.failing = True
        reason = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
        self.say(f"warning: tracker {slot.tracker.name} failed at {where} ({reason[:300]}); training goes on, "
                 f"metrics.jsonl has every record, and the next record retries.")

    def _save(self, name: str, run) -> None:
        """Write trackers.json (atomically: a reader never sees half a file)."""
        data = read_trackers_file(self.run_dir)
        data[name] = dataclasses.asdict(run)
        path = self.run_dir / TRACKERS_FILE
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        os.replace(tmp, path)
