"""Exporting a finished task's model as GGUF from the console: ``tuneforge export`` run as a child process that
writes into the task's run directory (``export-gguf-<dtype>/``, the GGUF file, its Modelfile, README and
verification report), with its output in ``export.log``.

The export command itself verifies the file and keeps nothing that fails (``export/outdir.py``), so the state is
read from the run directory: the output folder with its report → done; a live process → running; otherwise the
last line of the log says why it failed. A restart of the console loses nothing but the process handle.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from . import COMMAND_DONE, COMMAND_FAILED, COMMAND_NONE, SUCCEEDED
from .errors import BadRequest, Conflict
from .children import TaskCommands
from ..rundir import EXPORT_LOG, EXPORT_REPORT as REPORT_FILE, export_dir_name, log_error_line

DTYPES = ("f32", "f16", "bf16", "q8_0")


def export_dir(run_dir: Path, dtype: str) -> Path:
    return Path(run_dir) / export_dir_name(dtype)


class Exports:
    """The GGUF exports of a service's tasks (one at a time per task)."""

    def __init__(self) -> None:
        self.commands = TaskCommands("an export")

    def start(self, task: dict, dtype: Any, has_model: bool) -> dict[str, Any]:
        if dtype not in DTYPES:
            raise BadRequest(f"dtype={dtype!r}: expected one of {', '.join(DTYPES)}.", "dtype")
        if task["status"] != SUCCEEDED or not has_model:
            raise Conflict(f"task {task['id']} is {task['status']}: only a succeeded task with a trained model can be "
                           "exported.")
        run_dir = Path(task["run_dir"])
        out = export_dir(run_dir, dtype)
        if (out / REPORT_FILE).is_file():
            raise Conflict(f"task {task['id']}: already exported as {dtype} in {out}.")
        self.commands.start(task["id"], [sys.executable, "-m", "tuneforge.cli", "export", str(run_dir), "--format",
                                         "gguf", "--out", str(out), "--dtype", dtype],
                            run_dir / EXPORT_LOG, f"tuneforge export of task {task['id']} as {dtype}")
        return self.status(task)

    def status(self, task: dict) -> dict[str, Any]:
        """Every export of the task: dtype, state (running / done / failed), files and the verification."""
        run_dir = Path(task["run_dir"])
        done = []
        for dtype in DTYPES:
            out = export_dir(run_dir, dtype)
            if (out / REPORT_FILE).is_file():
                try:
                    report = json.loads((out / REPORT_FILE).read_text(encoding="utf-8"))
                except (OSError, ValueError):
                    report = None
                done.append({"dtype": dtype, "dir": out.name, "files": sorted(p.name for p in out.iterdir()),
                             "report": report})
        state = self.commands.state(task["id"])
        if state == COMMAND_NONE and done:
            state = COMMAND_DONE  # exported before this service started
        error = log_error_line(run_dir / EXPORT_LOG) if state == COMMAND_FAILED else None
        return {"task_id": task["id"], "state": state, "exports": done, "error": error,
                "log": str(run_dir / EXPORT_LOG)}
