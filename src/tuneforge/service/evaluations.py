"""Evaluating a finished task from the console: ``tuneforge eval RUN --data FILE [--compare-base]`` run as a child
process whose results land in the run directory (``RUN/eval/<data name>[-N]/``), its output in ``eval.log``.

As for exports (service/exports.py), the state is read from the run directory and the process handle: a live
process → running; a finished one that failed → the last line of its log; the results themselves are listed by
the evaluation page (console/evaluations.py). One evaluation at a time per task.
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from . import COMMAND_FAILED, SUCCEEDED
from .errors import BadRequest, Conflict
from .children import TaskCommands
from ..rundir import EVAL_LOG, log_error_line


class Evaluations:
    """The console-started evaluations of a service's tasks (one at a time per task)."""

    def __init__(self) -> None:
        self.commands = TaskCommands("an evaluation")

    def start(self, task: dict, data_path: str, compare_base: bool, has_model: bool) -> dict[str, Any]:
        if task["status"] != SUCCEEDED or not has_model:
            raise Conflict(f"task {task['id']} is {task['status']}: only a succeeded task with a trained model can be "
                           "evaluated.")
        if not Path(data_path).is_file():
            raise BadRequest(f"data={data_path!r}: no such file.", "data")
        run_dir = Path(task["run_dir"])
        command = [sys.executable, "-m", "tuneforge.cli", "eval", str(run_dir), "--data", data_path]
        self.commands.start(task["id"], command + (["--compare-base"] if compare_base else []), run_dir / EVAL_LOG,
                            f"tuneforge eval of task {task['id']} on {data_path}")
        return self.status(task)

    def status(self, task: dict) -> dict[str, Any]:
        state = self.commands.state(task["id"])
        log = Path(task["run_dir"]) / EVAL_LOG
        return {"task_id": task["id"], "state": state, "log": str(log),
                "error": log_error_line(log) if state == COMMAND_FAILED else None}
