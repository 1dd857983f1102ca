"""A real task service (``tuneforge console``) in a subprocess on a free loopback port, and tiny toy tasks.

The service runs as its own process so a test can SIGKILL it; every task it started is killed at teardown."""
from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

FINAL = ("succeeded", "failed", "stopped", "interrupted")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServiceProcess:
    def __init__(self, home: Path, *extra: str):
        self.home, self.extra = home, list(extra)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        self.headers: dict[str, str] = {}

    def start(self, timeout: float = 60) -> "ServiceProcess":
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
        cmd = [sys.executable, "-m", "tuneforge.cli", "console", "--home", str(self.home), "--port", str(self.port),
               "--sample-interval", "0.2", "--stop-grace", "10", *self.extra]
        self.log = open(self.home.parent / f"console-{self.port}.log", "ab")
        self.proc = subprocess.Popen(cmd, env=env, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + timeout
        while time.time() < deadline:
            assert self.proc.poll() is None, (self.home.parent / f"console-{self.port}.log").read_text()
            try:
                if httpx.get(self.url + "/api/info", headers=self.headers, timeout=2).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise AssertionError("the service did not start in time")

    def kill(self) -> None:
        """SIGKILL, as a crash or an out-of-memory kill would."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.log.close()

    def kill_tasks(self) -> None:
        """Kill every task process group this home's database knows, so no test leaves training running."""
        db = self.home / "tuneforge.db"
        if not db.exists():
            return
        with sqlite3.connect(db) as conn:
            pids = [r[0] for r in conn.execute("SELECT pid FROM tasks WHERE pid IS NOT NULL")]
        for pid in pids:
            try:
                os.killpg(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass

    # -- API helpers -------------------------------------------------------------------------------------------

    def get(self, path: str, **params):
        r = httpx.get(self.url + path, params=params, headers=self.headers, timeout=30)
        assert r.status_code == 200, r.text
        return r.json()

    def post(self, path: str, body=None, expect: int = 200):
        r = httpx.post(self.url + path, json=body, headers=self.headers, timeout=60)
        assert r.status_code == expect, r.text
        return r.json()

    def submit(self, config: dict, name: str | None = None) -> dict:
        return self.post("/api/tasks", {"config": config, **({"name": name} if name else {})}, expect=201)

    def wait(self, task_id: int, statuses=FINAL, timeout: float = 180) -> dict:
        deadline = time.time() + timeout
        while time.time() < deadline:
            task = self.get(f"/api/tasks/{task_id}")
            if task["status"] in statuses:
                return task
            time.sleep(0.2)
        raise AssertionError(f"task {task_id} still {task['status']} after {timeout}s: "
                             + self.get(f"/api/tasks/{task_id}/log")["text"][-2000:])


@pytest.fixture(scope="module")
def toy_data(tmp_path_factory) -> dict[str, str]:
    d = tmp_path_factory.mktemp("service-data")
    good = d / "train.jsonl"
    good.write_text("".join(json.dumps({"instruction": f"Question {i}: what is {i} plus {i}?",
                                        "output": f"It is {2 * i}."}) + "\n" for i in range(16)))
    bad = d / "bad.jsonl"  # a valid file name, a bad third row: found when the task loads its data
    bad.write_text('{"instruction": "a", "output": "b"}\n{"instruction": "c", "output": "d"}\n{"instruction": "e"}\n')
    return {"good": str(good), "bad": str(bad), "dir": str(d)}


def toy_config(train_data: str, **keys) -> dict:
    """A task that trains the built-in toy model for a few quick steps."""
    return {"model": "builtin:toy", "train_data": train_data, "per_device_train_batch_size": 2, "seq_length": 64,
            "lora_dim": 4, "max_steps": 2, "logging_steps": 1, "eval_steps": 0, "save_steps": -1, **keys}


@pytest.fixture(name="toy_config", scope="session")
def toy_config_fixture():
    return toy_config


@pytest.fixture(scope="module")
def start_service(tmp_path_factory):
    """``start_service(*console_args, home=None)`` → a started ServiceProcess; all are stopped at module end."""
    started: list[ServiceProcess] = []

    def start(*extra: str, home: Path | None = None) -> ServiceProcess:
        svc = ServiceProcess(home or tmp_path_factory.mktemp("svc") / "home", *extra)
        started.append(svc)
        return svc.start()

    yield start
    for svc in started:
        svc.kill_tasks()
        svc.stop()
