"""The memory-aware queue's decisions with fake GPUs (an injected memory probe and stand-in estimates): small
tasks share a GPU, a large one waits with its reason and starts once nothing else runs, ``gpus`` is honoured,
a task without an estimate keeps GPUs to itself, and a CPU-only machine keeps one task at a time by default."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from tuneforge.service.core import TaskService
from tuneforge.service.executors import Executor, Exit
from tuneforge.service.placement import Placer, Wait, cpu_threads_per_task, need_gib, task_estimate_gib
from tuneforge.service.settings import Settings



class FakeExecutor(Executor):
    """Starts nothing; records (task id, CUDA_VISIBLE_DEVICES) of what it was asked to start."""

    name = "local"

    def __init__(self):
        self.started: list[tuple[int, str | None]] = []
        self.threads: dict[int, str | None] = {}
        self.exits: dict[int, Exit] = {}

    def start(self, task, env, sample_interval):
        self.started.append((task["id"], env.get("CUDA_VISIBLE_DEVICES")))
        self.threads[task["id"]] = env.get("OMP_NUM_THREADS")
        return {"pid": None, "proc_started": None, "job_id": None}

    def poll(self, task):
        return self.exits.get(task["id"])

    def stop(self, task, force=False):
        pass


class FakeProbe:
    """GPUs with fixed free memory (GiB) that drops as the service's tasks start on them, and a host."""

    def __init__(self, gpu_free: dict[int, float], host: float = 64.0):
        self.gpu_free, self.host = dict(gpu_free), host

    def gpu_free_gib(self, index):
        return self.gpu_free.get(index)

    def host_available_gib(self):
        return self.host


@pytest.fixture
def make_service(tmp_path):
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"instruction": "q", "output": "a"}) + "\n")
    made = []

    def make(gpus: int, max_concurrent: int, probe: FakeProbe, sizes: dict[str, float | None]):
        svc = TaskService(Settings(home=tmp_path / f"home{len(made)}", stop_grace=0.0), executor=FakeExecutor())
        svc.gpus, svc.max_concurrent = gpus, max_concurrent
        svc.worker.probe = probe
        # the estimate of each task by its name: stands in for the planner (tested below on a real config)
        svc.worker._estimate = lambda task: sizes.get(task["name"], 1.0)
        svc.add = lambda name, gpus=1: svc.submit({"train_data": str(data)}, name=name, gpus=gpus)["id"]
        svc.data = str(data)
        made.append(svc)
        return svc

    yield make
    for svc in made:
        svc.store.close()


def status(svc, *ids):
    return [svc.get_task(i)["status"] for i in ids]


def test_two_small_tasks_share_gpu_0_and_a_large_one_waits_then_runs_alone(make_service):
    probe = FakeProbe({0: 40.0})
    svc = make_service(1, 3, probe, {"small-a": 10.0, "small-b": 10.0, "large": 60.0})
    a, b, big = svc.add("small-a"), svc.add("small-b"), svc.add("large")
    svc.worker.tick()
    assert svc.executor.started == [(a, "0"), (b, "0")]  # a took the idle GPU; b fits beside it (11 GiB of 40)
    waiting = svc.get_task(big)
    # 40 GiB free less the 2 x 11 GiB the two small ones are still expected to take
    assert waiting["status"] == "queued"
    assert waiting["wait_reason"] == "waiting: needs 66.0 GiB, 18.0 GiB free on GPU 0"
    svc.executor.exits[a] = Exit(0)
    svc.worker.tick()
    assert status(svc, a, big) == ["succeeded", "queued"]  # b still runs on GPU 0
    svc.executor.exits[b] = Exit(0)
    svc.worker.tick()
    # nothing of the service's runs on GPU 0 any more: the large task starts (its own memory check decides)
    assert svc.executor.started[-1] == (big, "0") and svc.get_task(big)["wait_reason"] is None


def test_running_tasks_count_what_they_have_not_allocated_yet(make_service):
    probe = FakeProbe({0: 30.0})
    svc = make_service(1, 4, probe, {"a": 10.0, "b": 10.0, "c": 10.0})
    a, b, c = svc.add("a"), svc.add("b"), svc.add("c")
    svc.worker.tick()
    assert [i for i, _ in svc.executor.started] == [a, b]  # 30 - 11 = 19 >= 11 for b; 19 - 11 = 8 < 11 for c
    assert "needs 11.0 GiB, 8.0 GiB free on GPU 0" in svc.get_task(c)["wait_reason"]
    # a reached 11 GiB: NVML now reports it as used, so it is no longer counted twice; b allocated nothing yet
    run_dir = Path(svc.get_task(a)["run_dir"])
    (run_dir / "resources.jsonl").write_text(json.dumps({"time": 1.0, "host_rss_gib": 1.0, "gpu0_task_gib": 11.0}) + "\n")
    probe.gpu_free[0] = 19.0
    svc.worker.tick()  # the worker folds a's resources row into its peak: a has nothing left to take
    assert svc.get_task(a)["peak_gpu_gib"] == 11.0
    assert svc.get_task(c)["status"] == "queued" and "8.0 GiB free" in svc.get_task(c)["wait_reason"]
    probe.gpu_free[0] = 25.0  # another program on the GPU released memory
    svc.worker.tick()
    assert svc.executor.started[-1] == (c, "0")


def test_gpus_are_honoured_idle_gpus_first_then_shared(make_service):
    probe = FakeProbe({0: 80.0, 1: 80.0})
    svc = make_service(2, 4, probe, {"one": 5.0, "two": 5.0, "pair": 5.0, "three": 5.0})
    one, two, pair = svc.add("one"), svc.add("two"), svc.add("pair", gpus=2)
    svc.worker.tick()
    # idle GPUs first (one on 0, two on 1), then the two-GPU task shares both
    assert svc.executor.started == [(one, "0"), (two, "1"), (pair, "0,1")]
    # a CPU task (gpus 0) on the GPU machine sees no GPU and is placed by host memory
    cpu = svc.add("three", gpus=0)
    svc.worker.tick()
    assert svc.executor.started[-1] == (cpu, "")


def test_a_task_without_an_estimate_keeps_its_gpus_to_itself(make_service):
    probe = FakeProbe({0: 80.0, 1: 80.0})
    svc = make_service(2, 4, probe, {"unknown": None, "small": 2.0, "unknown-2": None, "small-2": 2.0})
    unknown, small = svc.add("unknown"), svc.add("small")
    svc.worker.tick()
    assert svc.executor.started == [(unknown, "0"), (small, "1")]  # idle GPUs: no memory check either way
    unknown2 = svc.add("unknown-2")
    svc.worker.tick()
    # no idle GPU, and without an estimate it may not share GPU 1 with "small"
    assert svc.get_task(unknown2)["wait_reason"] == "waiting: needs 1 GPU(s) to itself (no memory estimate for its model), 0 idle"
    small2 = svc.add("small-2")
    svc.worker.tick()
    assert status(svc, small2) == ["queued"]  # first in, first out: behind unknown-2
    svc.executor.exits[unknown] = Exit(0)
    svc.worker.tick()
    assert svc.executor.started[-2:] == [(unknown2, "0"), (small2, "1")]  # never beside unknown-2 on GPU 0


def test_cpu_machine_keeps_one_task_at_a_time_by_default_and_places_by_host_memory(make_service):
    probe = FakeProbe({}, host=3.0)
    svc = make_service(0, 1, probe, {"a": 0.8, "b": 0.8, "c": 0.8, "d": 0.8})
    a, b = svc.add("a", gpus=0), svc.add("b", gpus=0)
    svc.worker.tick()
    assert svc.executor.started == [(a, None)]  # the default on a CPU-only machine: one at a time
    assert svc.get_task(b)["wait_reason"] == "waiting: 1 task(s) running, the most at once (--max-concurrent)"
    svc.max_concurrent = 4  # --max-concurrent 4: side by side while the host's memory holds them
    c, d = svc.add("c", gpus=0), svc.add("d", gpus=0)
    svc.worker.tick()
    # 3.0 GiB available - 0.88 (a) = 2.12 -> b; 1.24 -> c; 0.36 < 0.88 -> d waits
    assert [i for i, _ in svc.executor.started] == [a, b, c]
    assert svc.get_task(d)["wait_reason"] == "waiting: needs 0.88 GiB, 0.36 GiB free on the host"
    probe.host = 0.1  # something else took the memory: d waits until nothing of ours runs, then runs anyway
    for task_id in (a, b, c):
        svc.executor.exits[task_id] = Exit(0)
    svc.worker.tick()
    assert svc.executor.started[-1] == (d, None)


def test_a_sweep_at_its_limit_waits_with_its_reason_and_the_tasks_behind_it_start(make_service):
    from tuneforge.service import sweeps

    svc = make_service(0, 4, FakeProbe({}, host=64.0), {})
    sweep = sweeps.create(svc, {"config": {"train_data": svc.data}, "space": {"lora_dim": "4,8"}, "max_concurrent": 1})
    first, second = (t["id"] for t in sweep["trials"])
    other = svc.add("other", gpus=0)
    svc.worker.tick()
    assert [i for i, _ in svc.executor.started] == [first, other]
    assert svc.get_task(second)["wait_reason"] == "waiting: its sweep has its most trials running (--max-concurrent of the sweep)"
    svc.executor.exits[first] = Exit(0)
    svc.worker.tick()
    assert svc.executor.started[-1] == (second, None) and svc.get_task(second)["wait_reason"] is None


def test_placer_without_nvml_answers_shares_nothing():
    class Blind(FakeProbe):
        def gpu_free_gib(self, index):
            return None

    placer = Placer(1, Blind({}), lambda task: 1.0)
    assert placer.place({"gpus": 1}) == [0]
    second = placer.place({"gpus": 1})
    assert isinstance(second, Wait) and "free memory unknown" in second.reason
    assert need_gib(10.0) == 11.0 and need_gib(None) is None


def test_the_estimate_is_the_planners(tmp_path):
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"instruction": "q", "output": "a"}) + "\n")
    config = {"model": "builtin:toy", "train_data": str(data), "output_dir": str(tmp_path / "run")}
    cpu = task_estimate_gib({"config": config, "gpus": 0})
    gpu = task_estimate_gib({"config": config, "gpus": 1})
    assert cpu is not None and 0.2 < cpu < 2.0  # a CPU process's peak RSS: the runtime dominates for the toy model
    assert gpu is not None and gpu != cpu
    assert task_estimate_gib({"config": {"train_data": str(tmp_path / "gone.jsonl")}, "gpus": 0}) is None


def test_cpu_tasks_side_by_side_share_the_cores(make_service, monkeypatch):
    assert cpu_threads_per_task(16, 1) is None  # one task at a time: torch's default, every core
    assert [cpu_threads_per_task(16, n) for n in (2, 3, 4)] == [8, 5, 4]
    assert cpu_threads_per_task(2, 3) == 1  # never zero
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr("os.cpu_count", lambda: 8)
    svc = make_service(0, 4, FakeProbe({}, host=64.0), {"a": 0.5, "b": 0.5})
    a, b = svc.add("a", gpus=0), svc.add("b", gpus=0)
    svc.worker.tick()
    assert svc.executor.threads == {a: "2", b: "2"}
    monkeypatch.setenv("OMP_NUM_THREADS", "3")  # the user's own setting is left alone
    c = svc.add("c", gpus=0)
    svc.worker.tick()
    assert svc.executor.threads[c] == "3"  # the user's own setting reaches the task unchanged
    one = make_service(0, 1, FakeProbe({}, host=64.0), {"d": 0.5})
    monkeypatch.delenv("OMP_NUM_THREADS")
    d = one.add("d", gpus=0)
    one.worker.tick()
    assert one.executor.threads[d] is None
