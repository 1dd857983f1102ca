"""Commands the service runs for a task beside its training (a GGUF export, an evaluation): one at a time per task,
as a child process in its own session whose output is appended to a log file in the run directory."""
from __future__ import annotations

import subprocess
import threading
from pathlib import Path

from . import COMMAND_DONE, COMMAND_FAILED, COMMAND_NONE, COMMAND_RUNNING
from .errors import Conflict
from .store import utc_now


class TaskCommands:
    """The live child process of each task for one kind of command (``what`` names it in messages)."""

    def __init__(self, what: str) -> None:
        self.what = what
        self._children: dict[int, subprocess.Popen] = {}
        self._lock = threading.Lock()

    def start(self, task_id: int, command: list[str], log: Path, header: str) -> None:
        """Run ``command`` for the task; Conflict while an earlier one of this kind still runs."""
        with self._lock:
            if self.running(task_id):
                raise Conflict(f"task {task_id}: {self.what} is already running; wait for it.")
            with open(log, "ab") as out:  # the child keeps its own descriptor
                out.write(f"=== {header} at {utc_now()} ===\n".encode())
                self._children[task_id] = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT,
                                                           stdin=subprocess.DEVNULL, start_new_session=True)

    def running(self, task_id: int) -> bool:
        child = self._children.get(task_id)
        return child is not None and child.poll() is None

    def state(self, task_id: int) -> str:
        """'running', 'done', 'failed', or 'none' when this service started none for the task."""
        child = self._children.get(task_id)
        if child is None:
            return COMMAND_NONE
        if child.poll() is None:
            return COMMAND_RUNNING
        return COMMAND_DONE if child.returncode == 0 else COMMAND_FAILED
