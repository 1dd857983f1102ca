"""Deployments: a finished task served by ``tuneforge serve`` in its own process group, and a chat proxy to it.

The serve process writes to ``RUN_DIR/serve.log`` (a file, never a pipe: a full pipe would block the server).
Its state lives in the ``deployments`` table: ``starting`` until ``GET /health`` answers, then ``ready``;
``stopped`` once stopped; ``failed`` when the process ended by itself (the last line of serve.log says why).
The state is refreshed when it is read, so no extra thread is needed.
"""
from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import httpx
import psutil

from . import DEPLOY_FAILED, DEPLOY_LIVE as LIVE, DEPLOY_READY, DEPLOY_STARTING, DEPLOY_STOPPED
from .errors import BadRequest, Conflict, NotFound, ServiceError
from ..rundir import SERVE_LOG, log_error_line
from .store import Store, utc_now

STOP_GRACE_S = 10.0  # SIGTERM → SIGKILL: a server holds no state worth waiting longer for
MODEL_FILES = ("adapter_config.json", "config.json")  # a LoRA/QLoRA adapter, or a full model
CHAT_TIMEOUT_S = 300.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def model_name(task: dict) -> str:
    """A model id ``tuneforge serve`` accepts (letters, digits, . _ : / -), from the task name or its directory."""
    for raw in (task.get("name") or "", Path(task["run_dir"]).name):
        name = re.sub(r"[^A-Za-z0-9._:/-]+", "-", raw).strip("-._:/")[:128]
        if name:
            return name
    return f"task-{task['id']}"


def has_model(run_dir: Path) -> bool:
    return any((Path(run_dir) / f).is_file() for f in MODEL_FILES)


def serve_command(run_dir: Path, port: int, name: str, python: str = sys.executable) -> list[str]:
    return [python, "-m", "tuneforge.cli", "serve", str(run_dir), "--host", "127.0.0.1", "--port", str(port),
            "--name", name]


def _process(row: dict) -> psutil.Process | None:
    """The deployment's server if it still runs (a recycled PID with another start time is not it)."""
    try:
        proc = psutil.Process(row["pid"])
        if row.get("proc_started") and abs(proc.create_time() - row["proc_started"]) > 1.0:
            return None
        return None if proc.status() == psutil.STATUS_ZOMBIE else proc
    except (psutil.Error, TypeError, ValueError):
        return None


def _refused(response: httpx.Response) -> ServiceError:
    """The deployment's own refusal as ours: its status for a 4xx, 409 for its 5xx (never a 5xx of ours)."""
    error = ServiceError(f"the deployment refused the request: {_upstream_reason(response)}")
    error.status = response.status_code if response.status_code < 500 else 409
    return error


def _upstream_reason(response: httpx.Response) -> str:
    """The message of an OpenAI-style error object (or FastAPI's detail, or the raw text)."""
    try:
        data = response.json()
    except ValueError:
        return response.text[:500] or f"HTTP {response.status_code}"
    if isinstance(data, dict):
        err = data.get("error")
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])
        if data.get("detail"):
            return str(data["detail"])
    return str(data)[:500]


class Deployments:
    """Start, follow, stop and talk to the serve processes of one task service (its ``store``: the tasks they
    serve and the ``deployments`` table)."""

    def __init__(self, store: Store):
        self.store = store
        self._children: dict[int, subprocess.Popen] = {}  # servers this service started (reaped on stop)
        self._starting = threading.Lock()  # two deploy requests at once must not start two servers

    # -- lifecycle --------------------------------------------------------------------------------------

    def recover(self) -> None:
        """At service start: a recorded live deployment whose process is gone is marked stopped."""
        for row in self.store.list_deployments(LIVE):
            if _process(row) is None:
                self.store.update_deployment(row["task_id"], status=DEPLOY_STOPPED, stopped_at=utc_now(),
                                             error="its process was gone when the service started")

    def close(self) -> None:
        """At service shutdown: every live deployment is stopped (a server nobody can reach or stop is waste)."""
        for row in self.store.list_deployments(LIVE):
            self._terminate(row)
            self.store.update_deployment(row["task_id"], status=DEPLOY_STOPPED, stopped_at=utc_now(),
                                         error="stopped with the service")

    # -- operations -------------------------------------------------------------------------------------

    def deploy(self, task_id: int) -> dict[str, Any]:
        with self._starting:
            return self._deploy(task_id)

    def _deploy(self, task_id: int) -> dict[str, Any]:

        task = self.store.require_task(task_id)
        current = self.get(task["id"], missing_ok=True)
        if current and current["status"] in LIVE:
            return current  # already deployed: deploying again is not an error
        run_dir = Path(task["run_dir"])
        if not has_model(run_dir):
            raise Conflict(f"task {task['id']} is {task['status']} and its run directory {run_dir} holds no trained "
                           f"model ({' or '.join(MODEL_FILES)}): only a finished task can be deployed.")
        port, name = free_port(), model_name(task)
        with open(run_dir / SERVE_LOG, "ab") as log:  # the child keeps its own descriptor
            log.write(f"=== tuneforge deploy of task {task['id']} on port {port} at {utc_now()} ===\n".encode())
            log.flush()
            env = {**os.environ, "PYTHONUNBUFFERED": "1", "TOKENIZERS_PARALLELISM": "false"}
            proc = subprocess.Popen(serve_command(run_dir, port, name), cwd=run_dir, env=env,
                                    stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        self._children[task["id"]] = proc
        try:
            started = psutil.Process(proc.pid).create_time()
        except psutil.Error:
            started = None
        self.store.upsert_deployment(task_id=task["id"], port=port, pid=proc.pid, proc_started=started,
                                     status=DEPLOY_STARTING, model=name, run_dir=str(run_dir), started_at=utc_now(),
                                     ready_at=None, stopped_at=None, error=None)
        return self.get(task["id"])

    def get(self, task_id: int, missing_ok: bool = False) -> dict[str, Any] | None:

        row = self.store.get_deployment(int(task_id))
        if row is None:
            self.store.require_task(task_id)  # an unknown task is 404 "no such task"
            if missing_ok:
                return None
            raise NotFound(f"task {task_id} has no deployment: deploy it with POST /api/tasks/{task_id}/deploy.")
        return self._view(self._refresh(row))

    def undeploy(self, task_id: int) -> dict[str, Any]:

        row = self.store.get_deployment(int(task_id))
        if row is None:
            self.store.require_task(task_id)
            raise Conflict(f"task {task_id} has no deployment to stop.")
        row = self._refresh(row)
        if row["status"] in LIVE:
            self._terminate(row)
            self.store.update_deployment(row["task_id"], status=DEPLOY_STOPPED, stopped_at=utc_now())
        return self.get(task_id)

    def forget(self, task_id: int) -> None:
        """A task is deleted: stop its server and drop the record."""
        row = self.store.get_deployment(int(task_id))
        if row is not None:
            if row["status"] in LIVE:
                self._terminate(row)
            self.store.delete_deployment(row["task_id"])
        self._children.pop(int(task_id), None)

    def _ready_deployment(self, task_id: int, body: Any) -> dict:
        """The task's ready deployment for a chat body; BadRequest / Conflict naming what is missing."""
        deployment = self.get(task_id, missing_ok=True)  # an unknown task: 404 before anything else
        if not isinstance(body, dict) or not isinstance(body.get("messages"), list):
            raise BadRequest('body: expected an OpenAI chat body {"messages": [{"role": "user", "content": "..."}]}.',
                             "messages")
        if deployment is None:
            raise Conflict(f"task {task_id} is not deployed: deploy it first (POST /api/tasks/{task_id}/deploy).")
        if deployment["status"] != DEPLOY_READY:
            raise Conflict(f"task {task_id}: its deployment is {deployment['status']}"
                           + (f" ({deployment['error']})" if deployment.get("error") else "")
                           + ("; wait until it is ready." if deployment["status"] == DEPLOY_STARTING
                              else "; deploy it again."))
        return deployment

    def chat(self, task_id: int, body: Any) -> dict[str, Any]:
        """One whole answer from the task's deployment (``stream: true`` goes through ``chat_stream``)."""
        deployment = self._ready_deployment(task_id, body)
        try:
            response = httpx.post(f"{deployment['url']}/v1/chat/completions", timeout=CHAT_TIMEOUT_S,
                                  json={**body, "model": deployment["model"], "stream": False})
        except httpx.TransportError as exc:
            raise Conflict(f"task {task_id}: its deployment at {deployment['url']} did not answer "
                           f"({exc.__class__.__name__}).") from None
        if response.status_code >= 400:
            raise _refused(response)
        return response.json()

    def chat_stream(self, task_id: int, body: Any) -> Iterator[bytes]:
        """The deployment's server-sent events, passed through as they arrive. Refusals (not deployed, a bad
        body, the server's own 4xx) are raised before the first byte; a reader that leaves closes the upstream
        request, which cancels the generation there."""
        deployment = self._ready_deployment(task_id, body)
        client = httpx.Client(timeout=httpx.Timeout(CHAT_TIMEOUT_S, connect=5.0))
        try:
            request = client.build_request("POST", f"{deployment['url']}/v1/chat/completions",
                                           json={**body, "model": deployment["model"], "stream": True})
            response = client.send(request, stream=True)
        except httpx.TransportError as exc:
            client.close()
            raise Conflict(f"task {task_id}: its deployment at {deployment['url']} did not answer "
                           f"({exc.__class__.__name__}).") from None
        if response.status_code >= 400:
            response.read()
            client.close()
            raise _refused(response)

        def relay() -> Iterator[bytes]:
            try:
                yield from response.iter_raw()
            except httpx.TransportError as exc:  # the server died mid-answer: say so in the stream itself
                yield (b'data: {"error": {"message": "the deployment stopped answering (%s)"}}\n\n'
                       % exc.__class__.__name__.encode())
            finally:
                response.close()
                client.close()
        return relay()

    # -- state --------------------------------------------------------------------------------------------

    def _refresh(self, row: dict) -> dict:
        """Bring a live deployment's status up to date: process gone → failed; /health answers → ready."""
        if row["status"] not in LIVE:
            return row
        child = self._children.get(row["task_id"])
        if child is not None and child.pid == row["pid"]:
            child.poll()  # reap it if it ended, so it is not left a zombie
        if _process(row) is None:
            why = log_error_line(Path(row["run_dir"]) / SERVE_LOG) or "its process ended"
            self.store.update_deployment(row["task_id"], status=DEPLOY_FAILED, stopped_at=utc_now(), error=why)
        elif row["status"] == DEPLOY_STARTING and self._healthy(row["port"]):
            self.store.update_deployment(row["task_id"], status=DEPLOY_READY, ready_at=utc_now())
        return self.store.get_deployment(row["task_id"]) or row

    @staticmethod
    def _healthy(port: int) -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{port}/health", timeout=1.0).status_code == 200
        except httpx.HTTPError:
            return False

    def _terminate(self, row: dict) -> None:
        """SIGTERM to the server's process group, SIGKILL once the grace period is over."""
        proc = _process(row)
        if proc is None:
            return
        for sig, wait in ((signal.SIGTERM, STOP_GRACE_S), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(row["pid"], sig)
            except (ProcessLookupError, PermissionError):
                return
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                child = self._children.get(row["task_id"])
                if child is not None and child.pid == row["pid"] and child.poll() is not None:
                    return
                if _process(row) is None:
                    return
                time.sleep(0.1)

    @staticmethod
    def _view(row: dict) -> dict[str, Any]:
        keys = ("task_id", "status", "model", "port", "pid", "run_dir", "started_at", "ready_at", "stopped_at", "error")
        view = {k: row.get(k) for k in keys}
        view["url"] = f"http://127.0.0.1:{row['port']}"
        view["log"] = str(Path(row["run_dir"]) / SERVE_LOG)
        return view
