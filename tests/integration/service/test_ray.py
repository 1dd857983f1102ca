"""The Ray Jobs executor end to end: a local Ray head on this machine, a real toy task submitted through it."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

pytest.importorskip("ray.job_submission", reason="ray is not installed (pip install 'tuneforge[ray]')")


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def ray_head():
    ray = str(Path(sys.executable).with_name("ray"))
    dashboard = free_port()
    temp = tempfile.mkdtemp(prefix="rt", dir="/tmp")  # Ray's socket paths must stay short
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    subprocess.run([ray, "start", "--head", "--num-cpus", "1", "--dashboard-host", "127.0.0.1",
                    "--dashboard-port", str(dashboard), "--port", str(free_port()), "--temp-dir", temp,
                    "--disable-usage-stats"], env=env, check=True, capture_output=True, timeout=120)
    try:
        yield f"http://127.0.0.1:{dashboard}"
    finally:
        subprocess.run([ray, "stop", "--force"], env=env, capture_output=True, timeout=120)
        shutil.rmtree(temp, ignore_errors=True)


@pytest.mark.slow  # a Ray head start and stop plus a task: over a minute on 2 shared cores
def test_a_task_runs_end_to_end_as_a_ray_job(ray_head, start_service, toy_data, toy_config):
    svc = start_service("--executor", "ray", "--ray-address", ray_head)
    assert svc.get("/api/info")["executor"] == "ray"
    task = svc.submit(toy_config(toy_data["good"]), "on ray")
    done = svc.wait(task["id"], timeout=300)
    log = svc.get(f"/api/tasks/{task['id']}/log")["text"]
    assert done["status"] == "succeeded", log[-3000:]
    assert done["executor"] == "ray" and "done: 2 steps" in log
    assert (Path(done["run_dir"]) / "adapter_model.safetensors").is_file()
    assert svc.get(f"/api/tasks/{task['id']}/resources")[0]["host_rss_gib"] > 0


@pytest.mark.slow  # four trials as Ray jobs, one after the other: about two minutes on 2 shared cores
def test_a_sweep_runs_its_trials_as_ray_jobs_and_prunes_one(ray_head, start_service, toy_data, toy_config):
    svc = start_service("--executor", "ray", "--ray-address", ray_head)
    base = toy_config(toy_data["good"], max_steps=40, eval_steps=5, logging_steps=5, validation_split=0.25)
    sweep = svc.post("/api/sweeps", {"config": base, "space": {"learning_rate": [1e-2, 2e-2, 3e-2, 1e-6]},
                                     "early_stop": "median", "grace_steps": 5, "max_concurrent": 1}, expect=201)
    ids = [t["id"] for t in sweep["trials"]]
    for task_id in ids:
        svc.wait(task_id, timeout=300)
    done = svc.get(f"/api/sweeps/{sweep['id']}")
    trials = {t["id"]: t for t in done["trials"]}
    assert all(svc.get(f"/api/tasks/{i}")["executor"] == "ray" for i in ids)
    assert trials[ids[3]]["status"] == "stopped" and trials[ids[3]]["error"].startswith("pruned at step "), trials
    assert done["winner"]["id"] in ids[:3] and trials[done["winner"]["id"]]["status"] == "succeeded"
