"""Where tasks run: an ``Executor`` starts a task's process, polls it, stops it and reads its log.

``LocalExecutor`` (the default) runs each task as its own process group on this machine; ``RayExecutor``
submits each task as a Ray job to a cluster whose nodes share the run directories' storage.
The command is the same everywhere: ``python -m tuneforge.service.taskmain RUN_DIR`` (``tuneforge train`` on the
task's config, plus the memory record and the exit-code file), output appended to ``RUN_DIR/train.log``.
"""
from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from ..errors import TuneforgeError
from ..rundir import LOG_FILE, read_exit_status, read_log


@dataclass
class Exit:
    """A finished task: its exit code (negative = killed by that signal; None = not known)."""

    code: int | None


def task_command(run_dir: Path, sample_interval: float, python: str = sys.executable) -> list[str]:
    return [python, "-m", "tuneforge.service.taskmain", str(run_dir), "--sample-interval", str(sample_interval)]


class Executor:
    """What the worker needs from a place that runs tasks. Handles are the task row's ``pid``,
    ``proc_started`` and ``job_id`` columns, so a restarted service can find a task again."""

    name = "base"

    def start(self, task: dict, env: dict[str, str], sample_interval: float) -> dict[str, Any]:
        """Start the task; returns the columns that identify it (stored before anything else happens)."""
        raise NotImplementedError

    def poll(self, task: dict) -> Exit | None:
        """None while the task runs, else how it ended."""
        raise NotImplementedError

    def stop(self, task: dict, force: bool = False) -> None:
        """Ask the task to stop (SIGTERM to its process group), or kill it (``force``: SIGKILL)."""
        raise NotImplementedError

    def read_log(self, task: dict, offset: int, limit: int) -> dict:
        return read_log(Path(task["run_dir"]) / LOG_FILE, offset, limit)

    def close(self) -> None:
        pass


class LocalExecutor(Executor):
    """Each task is ``start_new_session`` process group on this machine; stdout and stderr go to train.log."""

    name = "local"

    def __init__(self) -> None:
        self._children: dict[int, subprocess.Popen] = {}  # tasks this service started (so it can reap them)

    def start(self, task: dict, env: dict[str, str], sample_interval: float) -> dict[str, Any]:
        run_dir = Path(task["run_dir"])
        with open(run_dir / LOG_FILE, "ab") as log:  # the child keeps its own descriptor; ours closes here
            proc = subprocess.Popen(task_command(run_dir, sample_interval), cwd=run_dir, env=env,
                                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        self._children[task["id"]] = proc
        try:
            started = psutil.Process(proc.pid).create_time()
        except psutil.Error:  # already gone: poll() reports its exit code
            started = None
        return {"pid": proc.pid, "proc_started": started, "job_id": None}

    def _same_process(self, task: dict) -> psutil.Process | None:
        """The task's process if it still runs (a recycled PID with another start time is not it)."""
        pid = task.get("pid")
        if not pid:
            return None
        try:
            proc = psutil.Process(pid)
            if task.get("proc_started") and abs(proc.create_time() - task["proc_started"]) > 1.0:
                return None
            if proc.status() == psutil.STATUS_ZOMBIE:
                return None
            return proc
        except psutil.Error:
            return None

    def poll(self, task: dict) -> Exit | None:
        child = self._children.get(task["id"])
        if child is not None and child.pid == task.get("pid"):
            code = child.poll()
            if code is None:
                return None
            del self._children[task["id"]]
            return Exit(code)
        if self._same_process(task) is not None:  # re-attached after a service restart: not our child
            return None
        return Exit(read_exit_status(Path(task["run_dir"])))

    def stop(self, task: dict, force: bool = False) -> None:
        pid = task.get("pid")
        if not pid or self.poll(task) is not None:
            return
        sig = signal.SIGKILL if force else signal.SIGTERM
        try:
            os.killpg(pid, sig)  # the group: launched ranks too
        except ProcessLookupError:  # not a group leader (a run started from a terminal): the process itself
            try:
                os.kill(pid, sig)
            except (ProcessLookupError, PermissionError):
                pass
        except PermissionError:
            pass


class RayExecutor(Executor):
    """Each task is a Ray job (``entrypoint_num_gpus`` = the task's GPUs) on the cluster at ``address``."""

    name = "ray"
    TERMINAL = {"SUCCEEDED": 0, "FAILED": 1, "STOPPED": -signal.SIGTERM}

    def __init__(self, address: str | None):
        try:
            from ray.job_submission import JobSubmissionClient
        except ImportError:
            raise TuneforgeError("--executor ray needs Ray: "
                                 "pip install 'tuneforge[ray]' (or 'ray[default]').") from None
        self.address = address or os.environ.get("RAY_ADDRESS") or "http://127.0.0.1:8265"
        try:
            self.client = JobSubmissionClient(self.address)
        except Exception as exc:  # connection refused, wrong address: one clear line at start-up
            raise TuneforgeError(f"--ray-address {self.address}: cannot reach the Ray job server ({exc}).") from None

    def start(self, task: dict, env: dict[str, str], sample_interval: float) -> dict[str, Any]:
        run_dir = Path(task["run_dir"])
        command = " ".join(shlex.quote(c) for c in task_command(run_dir, sample_interval))
        entrypoint = f"cd {shlex.quote(str(run_dir))} && exec {command} >> {shlex.quote(str(run_dir / LOG_FILE))} 2>&1"
        passed = {k: v for k, v in env.items() if k.startswith(("HF_", "TUNEFORGE_", "OMP_", "TOKENIZERS_",
                                                                "PYTHONPATH"))}
        job_id = self.client.submit_job(
            entrypoint=entrypoint, submission_id=f"tuneforge-task-{task['id']}-{uuid.uuid4().hex[:8]}",
            runtime_env={"env_vars": passed}, entrypoint_num_gpus=task.get("gpus") or None,
            metadata={"tuneforge_task": str(task["id"]), "run_dir": str(run_dir)})
        return {"pid": None, "proc_started": None, "job_id": job_id}

    def poll(self, task: dict) -> Exit | None:
        try:
            status = str(self.client.get_job_status(task["job_id"]))
        except Exception:  # the cluster forgot the job (restarted head): it is not running
            return Exit(read_exit_status(Path(task["run_dir"])))
        status = status.rsplit(".", 1)[-1]
        if status not in self.TERMINAL:
            return None
        code = read_exit_status(Path(task["run_dir"]))
        return Exit(code if code is not None else self.TERMINAL[status])

    def stop(self, task: dict, force: bool = False) -> None:
        try:
            self.client.stop_job(task["job_id"])  # Ray sends SIGTERM, then SIGKILL after its own grace
        except Exception:
            pass

    def read_log(self, task: dict, offset: int, limit: int) -> dict:
        local = Path(task["run_dir"]) / LOG_FILE
        if local.exists() or not task.get("job_id"):
            return read_log(local, offset, limit)
        try:  # run directory not visible from here: tail Ray's copy of the job's output
            data = self.client.get_job_logs(task["job_id"]).encode("utf-8")
        except Exception:
            data = b""
        chunk = data[offset: offset + limit]
        return {"offset": offset, "next_offset": offset + len(chunk), "size": len(data),
                "text": chunk.decode("utf-8", "replace")}


def make_executor(name: str, ray_address: str | None = None) -> Executor:
    if name == "local":
        return LocalExecutor()
    if name == "ray":
        return RayExecutor(ray_address)
    raise TuneforgeError(f"--executor {name!r}: expected 'local' or 'ray'.")
