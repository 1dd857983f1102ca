"""The queue end to end with a real service and real toy training (concurrency 1): order, a failing task that
does not stop the queue, the monitoring record, stop, the event stream and submission errors."""
from __future__ import annotations

import json
import os
import time

import httpx
import psutil
import pytest


@pytest.fixture(scope="module")
def svc(start_service):
    return start_service("--max-concurrent", "1")


@pytest.fixture(scope="module")
def three(svc, toy_data, toy_config):
    """Three tasks submitted at once: ok, failing (a bad data row), ok. Waited for together."""
    ids = [svc.submit(toy_config(toy_data["good"]), "first")["id"],
           svc.submit(toy_config(toy_data["bad"]), "broken")["id"],
           svc.submit(toy_config(toy_data["good"], seed=7), "third")["id"]]
    return [svc.wait(i) for i in ids]


def test_tasks_run_in_order_and_a_failure_does_not_stop_the_queue(three):
    first, broken, third = three
    assert [t["status"] for t in three] == ["succeeded", "failed", "succeeded"]
    # Concurrency 1: each starts only after the one before it finished (ISO times compare as strings).
    assert first["finished_at"] <= broken["started_at"] and broken["finished_at"] <= third["started_at"]
    assert broken["exit_code"] == 2
    assert "bad.jsonl" in broken["error"] and "line 3" in broken["error"], broken["error"]
    assert first["progress"]["step"] == 2 and first["progress"]["total_steps"] == 2


def test_metrics_resources_and_log_of_a_finished_task(svc, three):
    task = three[0]
    metrics = svc.get(f"/api/tasks/{task['id']}/metrics")
    assert [r["step"] for r in metrics if "loss" in r] == [1, 2]
    assert svc.get(f"/api/tasks/{task['id']}/metrics", after=len(metrics) - 1) == metrics[-1:]
    resources = svc.get(f"/api/tasks/{task['id']}/resources")
    assert len(resources) >= 2
    for row in resources:
        assert {"time", "host_rss_gib", "host_total_gib", "host_available_gib"} <= set(row)
        assert not any(k.startswith("gpu") for k in row)  # a CPU machine: GPU fields absent
    assert max(r["host_rss_gib"] for r in resources) > 0.05  # a torch process holds far more than 50 MiB
    assert task["peak_host_gib"] == pytest.approx(max(r["host_rss_gib"] for r in resources), abs=1e-3)
    log = svc.get(f"/api/tasks/{task['id']}/log")
    assert "done: 2 steps" in log["text"] and log["next_offset"] == log["size"]
    assert os.path.isfile(os.path.join(task["run_dir"], "adapter_model.safetensors"))


def test_the_config_the_task_ran_from_is_the_config_its_run_recorded(three):
    """The service hands the task one file; the finished run's tuneforge_config.yaml is that file plus its _run."""
    run_dir = three[0]["run_dir"]
    with open(os.path.join(run_dir, "tuneforge_task.yaml"), encoding="utf-8") as fh:
        handed = fh.read()
    with open(os.path.join(run_dir, "tuneforge_config.yaml"), encoding="utf-8") as fh:
        recorded = fh.read()
    assert recorded.startswith(handed) and recorded[len(handed):].startswith("_run:\n"), (handed, recorded)


def _events(svc, task_id: int, last_id: str | None = None) -> list[tuple[str, str, dict]]:
    headers = {"Last-Event-ID": last_id} if last_id else {}
    out, current = [], {}
    with httpx.stream("GET", f"{svc.url}/api/tasks/{task_id}/events", headers=headers, timeout=60) as response:
        assert response.status_code == 200
        for line in response.iter_lines():
            if line.startswith(("id:", "event:", "data:")):
                key, _, value = line.partition(": ")
                current[key] = value
            elif not line and "event" in current:
                out.append((current["id"], current["event"], json.loads(current["data"])))
                if current["event"] == "end":
                    break
                current = {}
    return out


def test_event_stream_resumes_from_its_position(svc, three):
    task_id = three[0]["id"]
    events = _events(svc, task_id)
    kinds = [e[1] for e in events]
    assert kinds[0] == "task" and kinds[-1] == "end"
    rows = [(e[1], e[2]) for e in events if e[1] in ("metric", "resource")]
    assert ("metric" in kinds) and ("resource" in kinds) and "log" in kinds
    # Reconnect from the middle of the stream: exactly the rows after that point, no repeats, none missing.
    middle = next(i for i, e in enumerate(events) if e[1] == "resource" and i > len(events) // 3)
    again = _events(svc, task_id, last_id=events[middle][0])
    rest = [(e[1], e[2]) for e in again if e[1] in ("metric", "resource")]
    assert rest == [(e[1], e[2]) for e in events[middle + 1:] if e[1] in ("metric", "resource")]
    assert len(rest) < len(rows)
    log_after = lambda evs: "".join(e[2]["text"] for e in evs if e[1] == "log")  # noqa: E731
    assert log_after(again) == log_after(events[middle + 1:])


def test_stop_a_running_task_and_a_queued_one(svc, toy_data, toy_config):
    long = svc.submit(toy_config(toy_data["good"], max_steps=100000), "long")
    waiting = svc.submit(toy_config(toy_data["good"]), "waiting")
    deadline = time.time() + 120
    while not [r for r in svc.get(f"/api/tasks/{long['id']}/metrics") if "loss" in r]:
        assert time.time() < deadline
        time.sleep(0.2)
    # The memory record grows while the task runs.
    before = len(svc.get(f"/api/tasks/{long['id']}/resources"))
    time.sleep(1.0)
    assert len(svc.get(f"/api/tasks/{long['id']}/resources")) > before
    assert svc.post(f"/api/tasks/{waiting['id']}/stop")["status"] == "stopped"  # never started
    svc.post(f"/api/tasks/{long['id']}/stop")
    task = svc.wait(long["id"], timeout=60)
    assert task["status"] == "stopped" and task["error"] is None
    with open(os.path.join(task["run_dir"], "task_exit.json"), encoding="utf-8") as fh:
        assert json.load(fh)["exit_code"] == 143  # SIGTERM, recorded by the task's own process
    assert not [p for p in psutil.process_iter(["cmdline"]) if task["run_dir"] in " ".join(p.info["cmdline"] or [])]
    assert svc.get(f"/api/tasks/{waiting['id']}")["started_at"] is None


def test_config_errors_are_400_naming_the_key(svc, toy_data, toy_config):
    for keys, key in (({"learning_rate": "fast"}, "learning_rate"),
                      ({"train_data": toy_data["dir"] + "/missing.jsonl"}, "train_data"), ({"lora_dimm": 8}, "lora_dimm")):
        r = httpx.post(svc.url + "/api/tasks", json={"config": toy_config(toy_data["good"]) | keys}, timeout=30)
        assert r.status_code == 400 and r.json()["key"] == key and key in r.json()["detail"], r.text
    assert "did you mean 'lora_dim'" in r.json()["detail"]  # the last one: the CLI's own message
    before = len(svc.get("/api/tasks"))
    r = httpx.post(svc.url + "/api/tasks", json={"config": toy_config(toy_data["good"]) | {"seq_length": 2}}, timeout=30)
    assert r.status_code == 400 and r.json()["key"] == "seq_length"
    assert len(svc.get("/api/tasks")) == before  # a bad task never enters the queue


def test_cli_submits_follows_and_controls_tasks(svc, three, tmp_path, capsys):
    from tuneforge.cli import main

    server = ["--server", svc.url]
    example = os.path.join(os.path.dirname(__file__), "..", "..", "..", "examples", "configs", "sft_lora.yaml")
    # The README's path: an example config (data paths relative to the file), run through the service.
    assert main(["tasks", "submit", example, "max_steps=2", "eval_steps=0", "--name", "example", "--wait", *server]) == 0
    out = capsys.readouterr().out
    assert "queued" in out and "succeeded" in out
    task_id = int(out.split()[1])
    assert main(["tasks", "list", *server]) == 0
    listing = capsys.readouterr().out
    assert "example" in listing and "succeeded" in listing and "GiB" in listing
    assert main(["tasks", "show", str(task_id), *server]) == 0 and "peak memory: host" in capsys.readouterr().out
    assert main(["tasks", "logs", str(task_id), "--follow", *server]) == 0
    assert "done: 2 steps" in capsys.readouterr().out
    # Errors: the same message and exit code as `tuneforge train`.
    bad = tmp_path / "bad.yaml"
    bad.write_text(f"train_data: {three[0]['config']['train_data']}\nlora_dimm: 8\n")
    assert main(["tasks", "submit", str(bad), *server]) == 2
    via_service = capsys.readouterr().err
    assert main(["train", str(bad)]) == 2
    assert via_service == capsys.readouterr().err and "lora_dimm" in via_service
    assert main(["tasks", "resume", str(task_id), *server]) == 2
    assert "succeeded: only interrupted, stopped, failed" in capsys.readouterr().err
    assert main(["tasks", "list", "--server", "http://127.0.0.1:9"]) == 2
    assert "cannot reach the task service" in capsys.readouterr().err
