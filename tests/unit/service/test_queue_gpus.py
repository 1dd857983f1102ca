"""The worker's scheduling with a stand-in executor: FIFO, the concurrency limit, GPUs handed out and waited for."""
from __future__ import annotations

import json

import pytest

from tuneforge.service.core import TaskService
from tuneforge.service.executors import Executor, Exit
from tuneforge.service.settings import Settings


class FakeExecutor(Executor):
    """Starts nothing; records what it was asked to start and ends tasks when told."""

    name = "local"

    def __init__(self):
        self.started: list[tuple[int, str | None]] = []
        self.exits: dict[int, Exit] = {}
        self.signals: list[tuple[int, bool]] = []

    def start(self, task, env, sample_interval):
        self.started.append((task["id"], env.get("CUDA_VISIBLE_DEVICES")))
        return {"pid": None, "proc_started": None, "job_id": None}

    def poll(self, task):
        return self.exits.get(task["id"])

    def stop(self, task, force=False):
        self.signals.append((task["id"], force))


@pytest.fixture
def service(tmp_path):
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"instruction": "q", "output": "a"}) + "\n")
    svc = TaskService(Settings(home=tmp_path / "home", stop_grace=0.0), executor=FakeExecutor())
    svc.gpus, svc.max_concurrent = 2, 2  # a machine with two GPUs, one task per GPU
    svc.data = str(data)
    yield svc
    svc.store.close()


def test_gpus_are_handed_out_in_order_and_waited_for(service):
    ex = service.executor
    a, b, c = (service.submit({"train_data": service.data}, gpus=g)["id"] for g in (1, 2, 1))
    service.worker.tick()
    # a gets GPU 0; b needs both GPUs and waits; c, behind b, waits too (first in, first out).
    assert ex.started == [(a, "0")]
    assert [service.get_task(i)["status"] for i in (a, b, c)] == ["running", "queued", "queued"]
    ex.exits[a] = Exit(0)
    service.worker.tick()
    assert ex.started[-1] == (b, "0,1") and service.get_task(a)["status"] == "succeeded"
    ex.exits[b] = Exit(2)
    service.worker.tick()
    assert ex.started[-1] == (c, "0") and service.get_task(b)["status"] == "failed"


def test_cpu_task_on_a_gpu_machine_sees_no_gpu_and_stop_escalates(service):
    ex = service.executor
    task = service.submit({"train_data": service.data}, gpus=0)["id"]
    service.worker.tick()
    assert ex.started == [(task, "")]
    service.stop(task)
    assert ex.signals == [(task, False)]  # SIGTERM first
    service.worker.tick()  # stop_grace 0: the grace period is over at the next pass
    assert ex.signals[-1] == (task, True)
    ex.exits[task] = Exit(-9)
    service.worker.tick()
    assert service.get_task(task)["status"] == "stopped"


def test_restart_reattaches_live_tasks_and_interrupts_dead_ones(service, tmp_path):
    ex = service.executor
    alive, dead = (service.submit({"train_data": service.data}, gpus=1)["id"] for _ in range(2))
    service.worker.tick()
    assert {i for i, _ in ex.started} == {alive, dead}
    ex.exits[dead] = Exit(None)  # gone without an exit code, as after a machine restart
    fresh = TaskService(service.settings, executor=ex)
    fresh.worker.recover()
    assert fresh.get_task(alive)["status"] == "running" and fresh.get_task(dead)["status"] == "interrupted"
    fresh.store.close()
