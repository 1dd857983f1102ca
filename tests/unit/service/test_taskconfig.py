"""The service hands a task its config once: the file written when the task is queued (or resumed) is the file the
task's process trains from; the task row in SQLite is not read to start it."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from tuneforge.config import FIELDS, load_config
from tuneforge.service.core import TaskService
from tuneforge.service.executors import Executor
from tuneforge.service.settings import Settings
from tuneforge.service.taskconfig import task_config_text


class RecordingExecutor(Executor):
    """Starts nothing; records the config file each task would start from, as it is at the start."""

    name = "local"

    def __init__(self):
        self.started: dict[int, str] = {}

    def start(self, task, env, sample_interval):
        self.started[task["id"]] = (Path(task["run_dir"]) / "tuneforge_task.yaml").read_text(encoding="utf-8")
        return {"pid": None, "proc_started": None, "job_id": None}

    def poll(self, task):
        return None

    def stop(self, task, force=False):
        pass


@pytest.fixture
def service(tmp_path):
    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"instruction": "q", "output": "a"}) + "\n")
    svc = TaskService(Settings(home=tmp_path / "home", stop_grace=0.0), executor=RecordingExecutor())
    svc.data = str(data)
    yield svc
    svc.store.close()


def test_the_queued_file_holds_every_key_and_reads_back_to_the_same_config(service):
    task = service.submit({"train_data": service.data, "learning_rate": "2e-4", "lora_dim": 4})
    path = f"{task['run_dir']}/tuneforge_task.yaml"
    text = open(path, encoding="utf-8").read()
    keys = yaml.safe_load(text)
    # every key, defaults included, in the order the run records them (TrainConfig.to_dict)
    assert set(keys) == set(FIELDS) and list(keys) == list(load_config(path).to_dict())
    assert keys["output_dir"] == task["run_dir"] and keys["learning_rate"] == 2e-4 and keys["lora_dim"] == 4
    # What the task's process builds from it writes the same text again: nothing is changed on the way.
    assert task_config_text(load_config(path), task["run_dir"]) == text


def test_the_worker_starts_from_the_file_not_from_the_stored_row(service):
    task = service.submit({"train_data": service.data, "learning_rate": 1e-3})
    written = open(f"{task['run_dir']}/tuneforge_task.yaml", encoding="utf-8").read()
    service.store.update_task(task["id"], config={**task["config"], "learning_rate": 0.5})  # the row is no hand-over
    service.worker.tick()
    assert service.get_task(task["id"])["status"] == "running"
    assert service.executor.started[task["id"]] == written
    assert yaml.safe_load(written)["learning_rate"] == 1e-3


def test_a_missing_file_fails_the_start_clearly_and_resume_writes_it_again(service):
    task = service.submit({"train_data": service.data})
    (Path(task["run_dir"]) / "tuneforge_task.yaml").unlink()
    service.worker.tick()
    failed = service.get_task(task["id"])
    assert failed["status"] == "failed" and "tuneforge_task.yaml is missing" in failed["error"]
    assert task["id"] not in service.executor.started
    service.resume(task["id"])
    service.worker.tick()
    assert service.get_task(task["id"])["status"] == "running"
    assert yaml.safe_load(service.executor.started[task["id"]])["resume_from_checkpoint"] == "auto"
