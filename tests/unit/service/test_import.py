"""Runs trained from a terminal: listed with their charts, and never deleted by the service unless it made them."""
from __future__ import annotations

import json

import pytest
import yaml

from tuneforge.service.core import TaskService
from tuneforge.service.errors import Conflict
from tuneforge.service.settings import Settings


def _fake_run(path, finished=True):
    path.mkdir(parents=True)
    rows = [{"event": "start", "step": 0, "total_steps": 4}, {"step": 4, "loss": 1.0}, {"step": 4, "eval_loss": 0.9}]
    (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (path / "resources.jsonl").write_text(json.dumps({"time": 1, "host_rss_gib": 0.7}) + "\n")
    if finished:
        (path / "tuneforge_config.yaml").write_text(yaml.safe_dump({"lora_dim": 4, "train_data": "/d.jsonl",
                                                                   "finished": "2026-11-29T00:00:00"}))
    return path


def test_terminal_runs_are_indexed_and_a_deleted_one_stays_hidden(tmp_path):
    service = TaskService(Settings(home=tmp_path / "home"))
    _fake_run(tmp_path / "home" / "runs" / "my-run")
    assert service.scan_runs() == 1 and service.scan_runs() == 0
    task = service.list_tasks()[0]
    assert task["status"] == "succeeded" and task["source"] == "import" and task["config"] == {"lora_dim": 4, "train_data": "/d.jsonl"}
    assert task["best_metric"] == 0.9 and task["peak_host_gib"] == 0.7 and task["progress"]["fraction"] == 1.0
    assert len(service.metrics(task["id"])) == 3
    service.delete(task["id"])
    assert service.scan_runs() == 0 and (tmp_path / "home" / "runs" / "my-run").is_dir()


def test_import_elsewhere_never_deletes_the_users_files(tmp_path):
    service = TaskService(Settings(home=tmp_path / "home"))
    run = _fake_run(tmp_path / "elsewhere" / "run", finished=False)
    task = service.import_run(run)
    assert task["status"] == "interrupted" and service.import_run(run)["id"] == task["id"]
    with pytest.raises(Conflict, match="never deletes files it did not create"):
        service.delete(task["id"], files=True)
    assert run.is_dir()
