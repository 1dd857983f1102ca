"""Deployment records across service restarts and shutdowns, without starting a real server."""
from __future__ import annotations

import subprocess
import sys

import psutil

from tuneforge.service.core import TaskService
from tuneforge.service.deploy import model_name
from tuneforge.service.settings import Settings


def _service(tmp_path) -> TaskService:
    return TaskService(Settings(home=tmp_path / "home", scan_runs=False))


def _record(service: TaskService, pid: int, started: float | None, status: str = "ready") -> int:
    task_id = service.store.insert_task(name="t", status="succeeded", config={}, run_dir=str(service.settings.runs_dir / "t"))
    (service.settings.runs_dir / "t").mkdir(exist_ok=True)
    service.store.upsert_deployment(task_id=task_id, status=status, model="t", port=1, pid=pid, proc_started=started,
                                    run_dir=str(service.settings.runs_dir / "t"), started_at="2026-01-01T00:00:00Z")
    return task_id


def test_restart_marks_dead_deployments_stopped(tmp_path):
    service = _service(tmp_path)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    task_id = _record(service, dead.pid, 1.0)
    service.deployments.recover()
    row = service.store.get_deployment(task_id)
    assert row["status"] == "stopped" and "gone" in row["error"]
    service.store.close()


def test_shutdown_stops_live_deployments(tmp_path):
    service = _service(tmp_path)
    server = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
    try:
        task_id = _record(service, server.pid, psutil.Process(server.pid).create_time())
        service.deployments.close()
        assert server.wait(timeout=15) is not None
        assert service.store.get_deployment(task_id)["status"] == "stopped"
    finally:
        if server.poll() is None:
            server.kill()
        service.store.close()


def test_model_name_is_a_valid_serve_name():
    assert model_name({"id": 3, "name": "sft-lora toy (copy)", "run_dir": "/x/task-3"}) == "sft-lora-toy-copy"
    assert model_name({"id": 3, "name": "  ", "run_dir": "/x/task-3"}) == "task-3"
    assert model_name({"id": 3, "name": "÷÷", "run_dir": "/x/÷"}) == "task-3"
