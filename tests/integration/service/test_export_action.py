"""Exporting a finished task as GGUF through the service (issue 26, item 5): the API starts `tuneforge export`
into the run directory, reports its state, and the verified files are listed and downloadable on the task page."""
from __future__ import annotations

import time

import httpx


def test_export_a_finished_task_through_the_service(start_service, toy_data, toy_config):
    svc = start_service()
    failed = svc.submit(toy_config(toy_data["bad"]))
    task = svc.submit(toy_config(toy_data["good"]))
    assert svc.wait(task["id"])["status"] == "succeeded"
    assert svc.wait(failed["id"])["status"] == "failed"
    r = httpx.post(f"{svc.url}/api/tasks/{failed['id']}/export", json={"dtype": "f16"}, timeout=30)
    assert r.status_code == 409 and "only a succeeded task" in r.json()["detail"]
    r = httpx.post(f"{svc.url}/api/tasks/{task['id']}/export", json={"dtype": "f8"}, timeout=30)
    assert r.status_code == 400 and r.json()["key"] == "dtype"

    url = f"{svc.url}/api/tasks/{task['id']}/export"
    assert httpx.post(url, json={"dtype": "f16"}, timeout=30).status_code == 202
    deadline = time.time() + 300
    while (state := httpx.get(url, timeout=30).json())["state"] == "running" and time.time() < deadline:
        time.sleep(1)
    assert state["state"] == "done", state
    export = state["exports"][0]
    assert export["dtype"] == "f16" and any(f.endswith(".gguf") for f in export["files"]) and "Modelfile" in export["files"]
    assert export["report"]  # the export's own verification against the run's model
    assert httpx.post(url, json={"dtype": "f16"}, timeout=30).status_code == 409  # done already: never overwritten

    page = httpx.get(f"{svc.url}/tasks/{task['id']}", timeout=30).text
    gguf = next(f for f in export["files"] if f.endswith(".gguf"))
    assert f"{export['dir']}/{gguf}" in page
    download = httpx.get(f"{svc.url}/tasks/{task['id']}/files/{export['dir']}/{gguf}", timeout=60)
    assert download.status_code == 200 and download.content[:4] == b"GGUF"
