"""The HTTP API in-process (no worker, no training): token, path policy, uploads, validation, control errors."""
from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from tuneforge.apps import create_app
from tuneforge.service.settings import Settings

TOKEN = "s3cret-token"
ROW = {"instruction": "What is 2 plus 2?", "output": "It is 4."}


@pytest.fixture(scope="module")
def allowed(tmp_path_factory):
    d = tmp_path_factory.mktemp("allowed")
    (d / "train.jsonl").write_text(json.dumps(ROW) + "\n")
    return d


@pytest.fixture(scope="module")
def client(tmp_path_factory, allowed):
    settings = Settings(home=tmp_path_factory.mktemp("home"), token=TOKEN, allow_dirs=[allowed], upload_limit_mb=0.01)
    with TestClient(create_app(settings, start_worker=False), base_url="http://127.0.0.1", headers={"Authorization": f"Bearer {TOKEN}"}) as c:
        yield c


@pytest.fixture(scope="module")
def open_client(tmp_path_factory):
    """No token (loopback): any path the config names may be used."""
    with TestClient(create_app(Settings(home=tmp_path_factory.mktemp("home")), start_worker=False), base_url="http://127.0.0.1") as c:
        yield c


def test_requests_without_the_token_are_refused(client):
    for headers in ({"Authorization": ""}, {"Authorization": "Bearer wrong"}):
        r = client.get("/api/tasks", headers=headers)
        assert r.status_code == 401 and "token" in r.json()["detail"]
    assert client.get("/api/tasks").status_code == 200
    r = client.get("/api/info", headers={"Authorization": ""}, params={"token": TOKEN})
    assert r.status_code == 200 and r.cookies.get("tuneforge_token") == TOKEN  # a browser link sets the cookie


@pytest.mark.parametrize("key,value", [("train_data", "/etc/passwd"), ("train_data", "../../../etc/passwd"),
                                       ("validation_data", "/etc/hostname"), ("model", "/etc"),
                                       ("adapter_name_or_path", "/tmp")])
def test_paths_outside_the_allowed_directories_are_refused_with_a_token(client, allowed, key, value):
    config = {"train_data": str(allowed / "train.jsonl"), "lora_dim": 4, key: value}
    r = client.post("/api/tasks", json={"config": config})
    assert r.status_code == 400 and r.json()["key"] == key and "outside" in r.json()["detail"], r.text


def test_allowed_paths_and_uploaded_datasets_are_accepted(client, allowed):
    r = client.post("/api/tasks/validate", json={"config": {"train_data": str(allowed / "train.jsonl")}})
    assert r.status_code == 200 and r.json()["ok"] is True
    assert r.json()["estimate"]["total"] > 0 and r.json()["estimate"]["unit"] == "GiB"
    up = client.post("/api/datasets", files={"file": ("../../My Data!.jsonl", json.dumps(ROW) + "\n")})
    assert up.status_code == 201, up.text
    dataset = up.json()
    assert dataset["filename"] == "My_Data.jsonl" and dataset["rows"] == 1 and dataset["training_strategy"] == "sft"
    r = client.post("/api/tasks/validate", json={"config": {"train_data": "My_Data.jsonl"}})
    assert r.status_code == 200 and r.json()["config"]["train_data"] == dataset["path"]
    assert client.get("/api/datasets").json()[0]["id"] == dataset["id"]


def test_uploads_are_validated_as_data_and_size_limited(client):
    bad = json.dumps(ROW) + "\n" + '{"instruction": "no answer"}\n'
    r = client.post("/api/datasets", files={"file": ("rows.jsonl", bad)})
    assert r.status_code == 400 and "rows.jsonl, line 2" in r.json()["detail"] and "output" in r.json()["detail"]
    assert client.post("/api/datasets", files={"file": ("x.exe", "MZ")}).status_code == 400
    r = client.post("/api/datasets", files={"file": ("big.jsonl", (json.dumps(ROW) + "\n") * 1000)})
    assert r.status_code == 413 and "limit" in r.json()["detail"]
    names = [d["filename"] for d in client.get("/api/datasets").json()]
    assert "rows.jsonl" not in names and "big.jsonl" not in names  # nothing half-accepted


def test_config_errors_name_the_key(open_client, allowed):
    data = str(allowed / "train.jsonl")
    cases = [({"train_data": data, "lora_dim": -1}, "lora_dim"), ({"train_data": data, "dpo_bta": 0.2}, "dpo_bta"),
             ({"train_data": data, "training_strategy": "ppo"}, "training_strategy"), ({}, "train_data")]
    for config, key in cases:
        for path in ("/api/tasks", "/api/tasks/validate"):
            r = open_client.post(path, json={"config": config})
            assert r.status_code == 400 and r.json()["key"] == key and key in r.json()["detail"], (path, r.text)
    assert open_client.post("/api/tasks", json={"confg": {}}).json()["key"] == "confg"
    r = open_client.post("/api/tasks", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["key"] == "body" and "not valid JSON" in r.json()["detail"]
    assert open_client.post("/api/tasks", json={"config": {"train_data": data}, "gpus": 3}).json()["key"] == "gpus"
    assert open_client.get("/api/tasks").json() == []  # nothing entered the queue


def test_task_lifecycle_errors_without_a_worker(open_client, allowed):
    task = open_client.post("/api/tasks", json={"config": {"train_data": str(allowed / "train.jsonl")}, "name": "t"})
    assert task.status_code == 201
    task = task.json()
    assert task["status"] == "queued" and task["config"]["output_dir"] == task["run_dir"]
    tid = task["id"]
    assert open_client.get("/api/tasks/999").status_code == 404
    assert open_client.get("/api/tasks/abc").status_code == 400
    assert open_client.get("/api/tasks", params={"status": "done"}).status_code == 400
    assert open_client.delete(f"/api/tasks/{tid}").status_code == 409  # queued: stop it first
    assert open_client.post(f"/api/tasks/{tid}/resume").status_code == 409
    assert open_client.post(f"/api/tasks/{tid}/stop").json()["status"] == "stopped"
    assert open_client.post(f"/api/tasks/{tid}/stop").status_code == 409
    clone = open_client.post(f"/api/tasks/{tid}/clone")
    assert clone.status_code == 201 and clone.json()["config"]["train_data"] == task["config"]["train_data"]
    assert open_client.get(f"/api/tasks/{tid}/metrics").json() == []
    assert open_client.get(f"/api/tasks/{tid}/log", params={"offset": -1}).status_code == 400
    assert open_client.get(f"/api/tasks/{tid}/events", headers={"Last-Event-ID": "x"}).status_code == 400
    r = open_client.delete(f"/api/tasks/{tid}", params={"files": "true"})
    assert r.status_code == 200 and not __import__("os").path.exists(task["run_dir"])


def test_models_list_the_gallery_with_the_builtin_model(open_client):
    ids = [m["id"] for m in open_client.get("/api/models").json()]
    assert "builtin:toy" in ids


def test_dataset_preview_and_stats_are_the_tools_results(open_client):
    rows = "".join(json.dumps({"instruction": f"What is {i} plus {i}?", "output": f"It is {2 * i}."}) + "\n" for i in range(5))
    dataset = open_client.post("/api/datasets", files={"file": ("sums.jsonl", rows)}).json()
    preview = open_client.get(f"/api/datasets/{dataset['id']}/preview", params={"n": 2})
    assert preview.status_code == 200, preview.text
    assert len(preview.json()["rows"]) == 2 and "It is 0." in preview.json()["rows"][0]["text"]
    stats = open_client.get(f"/api/datasets/{dataset['id']}/stats", params={"seq_length": 64})
    assert stats.status_code == 200 and stats.json()["splits"]["train"]["rows"] == 5, stats.text
    bad = open_client.get(f"/api/datasets/{dataset['id']}/preview", params={"training_strategy": "dpo"})
    assert bad.status_code == 400 and "dpo" in bad.json()["detail"]
    assert open_client.get("/api/datasets/99/stats").status_code == 404
    r = open_client.get(f"/api/datasets/{dataset['id']}/preview", params={"model": "builtin:nope"})
    assert r.status_code == 400 and r.json()["key"] == "model"


@pytest.mark.parametrize("path", ["/api/tasks/999999999999999999999", "/api/tasks/-1/metrics",
                                  "/api/datasets/99999999999999999999/stats"])
def test_ids_out_of_the_database_range_are_a_400_naming_the_parameter(client, path):
    """An id past SQLite's 64-bit range once overflowed inside the database (HTTP 500)."""
    response = client.get(path)
    assert response.status_code == 400
    assert response.json()["key"] in ("task_id", "dataset_id")
