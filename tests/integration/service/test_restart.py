"""Restart safety with a real service process and real toy training: a SIGKILLed service re-attaches a task that
still runs; a task that died with it becomes ``interrupted`` and its resume ends with exactly the adapter an
uninterrupted run produces."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch
from safetensors.torch import load_file

from tuneforge.training.checkpoint import MANIFEST
from tuneforge.rundir import lock_holder


def _losses(run_dir: Path) -> list:
    rows = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [(r["step"], r["loss"]) for r in rows if "loss" in r]


def test_sigkilled_service_loses_no_task_and_resume_is_exact(start_service, toy_data, toy_config, tmp_path):
    config = toy_config(toy_data["good"], max_steps=20, save_steps=5, logging_steps=2, lora_dropout=0.1,
                        learning_rate=1e-2)
    first = start_service()
    other = subprocess.run([sys.executable, "-m", "tuneforge.cli", "console", "--home", str(first.home), "--port", "0"],
                           capture_output=True, text=True, timeout=120)
    assert other.returncode == 2 and "another tuneforge console" in other.stderr  # one console per home
    task = first.submit(config, "long")
    run_dir = Path(task["run_dir"])
    deadline = time.time() + 240
    while not (run_dir / "checkpoint-5" / MANIFEST).exists():
        assert time.time() < deadline and first.get(f"/api/tasks/{task['id']}")["status"] in ("queued", "running")
        time.sleep(0.02)
    pid = lock_holder(run_dir)  # the training process (the task's process group leader) holds the run's lock
    assert pid and pid > 0
    os.killpg(pid, signal.SIGSTOP)  # freeze it mid-run so the restarts below see it alive, deterministically
    first.kill()

    second = start_service(home=first.home)  # the task process still lives: re-attached, still running
    assert second.get(f"/api/tasks/{task['id']}")["status"] == "running"
    second.kill()
    os.killpg(pid, signal.SIGKILL)  # now the machine "reboots": the task dies with the service
    deadline = time.time() + 30
    while lock_holder(run_dir):
        assert time.time() < deadline
        time.sleep(0.05)

    third = start_service(home=first.home)
    task = third.get(f"/api/tasks/{task['id']}")
    assert task["status"] == "interrupted" and "resume" in task["error"]
    assert not (run_dir / "tuneforge_config.yaml").exists()
    assert third.post(f"/api/tasks/{task['id']}/resume")["status"] in ("queued", "running")
    done = third.wait(task["id"], timeout=240)
    assert done["status"] == "succeeded", third.get(f"/api/tasks/{task['id']}/log")["text"][-3000:]
    assert "resum" in third.get(f"/api/tasks/{task['id']}/log")["text"]

    # The reference runs as a process of its own with the task's environment (the service runs its tasks with
    # OMP_NUM_THREADS=1; another thread count sums in another order and moves the last bits of the floats).
    reference = tmp_path / "reference"
    reference_config = tmp_path / "reference.json"
    reference_config.write_text(json.dumps({**config, "output_dir": str(reference)}))
    subprocess.run([sys.executable, "-m", "tuneforge.cli", "train", str(reference_config), "--no-progress"],
                   check=True, capture_output=True, timeout=300,
                   env={**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"})
    assert _losses(run_dir) == _losses(reference)
    got, want = load_file(str(run_dir / "adapter_model.safetensors")), load_file(str(reference / "adapter_model.safetensors"))
    assert got.keys() == want.keys()
    for key in want:
        torch.testing.assert_close(got[key], want[key], atol=1e-6, rtol=0, msg=key)
