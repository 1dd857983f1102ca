"""Evaluating a finished task from the console: ``tuneforge eval RUN --data FILE [--compare-base]`` run as a child
process whose results land in the run directory (``RUN/eval/<data name>[-N]/``), its output in ``eval.log``.

As for exports (service/exports.py), the state is read from the run directory and the process handle: a live
process → running; a finished one that failed → the last line of its log; the results themselves are listed by
the evaluation page (console/evaluations.py). One evaluation at a time per task.
"""
from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from .errors import BadRequest, Conflict
from .runfiles import log_error_line
from .store import utc_now

EVAL_LOG = "eval.log"


class Evaluations:
    def __init__(self) -> None:
        self._children: dict[int, subprocess.Popen] = {}
        self._lock = threading.Lock()

    def start(self, task: dict, data_path: str, compare_base: bool, has_model: bool) -> dict[str, Any]:
        if task["status"] != "succeeded" or not has_model:
            raise Conflict(f"task {task['id']} is {task['status']}: only a succeeded task with a trained model can be "
                           "evaluated.")
        if not Path(data_path).is_file():
            raise BadRequest(f"data={data_path!r}: no such file.", "data")
        run_dir = Path(task["run_dir"])
        with self._lock:
            if self._running(task["id"]):
                raise Conflict(f"task {task['id']}: an evaluation is already running; wait for it.")
            command = [sys.executable, "-m", "tuneforge.cli", "eval", str(run_dir), "--data", data_path]
            if compare_base:
                command.append("--compare-base")
            with open(run_dir / EVAL_LOG, "ab") as log:  # the child keeps its own descriptor
                log.write(f"=== tuneforge eval of task {task['id']} on {data_path} at {utc_now()} ===\n".encode())
                self._children[task["id"]] = subprocess.Popen(
                    command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        return self.status(task)

    def _running(self, task_id: int) -> bool:
        child = self._children.get(task_id)
        return child is not None and child.poll() is None

    def status(self, task: dict) -> dict[str, Any]:
        child = self._children.get(task["id"])
        if self._running(task["id"]):
            state = "running"
        elif child is None:
            state = "none"
        else:
            state = "done" if child.returncode == 0 else "failed"
        log = Path(task["run_dir"]) / EVAL_LOG
        return {"task_id": task["id"], "state": state, "log": str(log),
                "error": log_error_line(log) if state == "failed" else None}
