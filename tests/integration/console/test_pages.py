"""The console's pages, rendered by the real service app (no browser, no worker): every page answers with
HTML, unknown ids give an error page rather than a traceback, and downloads stay inside the run directory."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

fastapi = pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from tuneforge.console.pages import config_rows  # noqa: E402

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "data"


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    from tuneforge.apps import create_app
    from tuneforge.service.settings import Settings

    home = tmp_path_factory.mktemp("console-home")
    app = create_app(Settings(home=home), start_worker=False)
    with TestClient(app, base_url="http://127.0.0.1") as c:
        yield c


@pytest.fixture(scope="module")
def dataset(client):
    with open(EXAMPLES / "sft_train.jsonl", "rb") as fh:
        res = client.post("/api/datasets", files={"file": ("sft_train.jsonl", fh, "application/jsonl")})
    assert res.status_code == 201, res.text
    return res.json()


@pytest.fixture(scope="module")
def task(client, dataset):
    res = client.post("/api/tasks", json={"name": "page-test", "config": {
        "model": "builtin:toy", "train_data": dataset["path"], "max_steps": 2}})
    assert res.status_code == 201, res.text
    return res.json()


def test_empty_states(tmp_path):
    from tuneforge.apps import create_app
    from tuneforge.service.settings import Settings

    with TestClient(create_app(Settings(home=tmp_path), start_worker=False), base_url="http://127.0.0.1") as c:
        assert "No tasks yet" in c.get("/tasks").text
        assert "No data sets yet" in c.get("/datasets").text
        assert "Add the example data sets" in c.get("/datasets").text
        res = c.post("/datasets/examples", follow_redirects=False)
        assert res.status_code == 303
        names = sorted(d["name"] for d in c.get("/api/datasets").json())
        assert names == ["dpo_train.jsonl", "dpo_val.jsonl", "sft_train.jsonl", "sft_val.jsonl"]
        c.post("/datasets/examples")  # twice: nothing added twice
        datasets = {d["name"]: d["path"] for d in c.get("/api/datasets").json()}
        assert len(datasets) == 4
        # "Fine-tune" then opens with the strategy's training file and its validation partner chosen
        html = c.get("/tasks/new?model=builtin:toy&strategy=dpo&method=lora").text
        assert re.search(f'<option value="{re.escape(datasets["dpo_train.jsonl"])}"[^>]* selected>', html)
        assert f'<option value="{datasets["dpo_val.jsonl"]}" selected>' in html
        assert "No tasks yet" in c.get("/compare").text
        assert c.get("/", follow_redirects=False).headers["location"] == "/tasks"


@pytest.mark.parametrize("path", ["/tasks", "/models", "/datasets", "/tasks/new", "/compare",
                                  "/tasks/new?model=builtin:toy&strategy=dpo&method=qlora4",
                                  "/tasks/new?model=nosuch&strategy=ppo&method=lora9", "/tasks?status=running"])
def test_pages_render(client, dataset, path):
    res = client.get(path)
    assert res.status_code == 200
    assert res.headers["content-type"].startswith("text/html")
    assert "<main" in res.text and "/static/console.css" in res.text


def test_mistyped_link_still_opens_a_usable_form(client, dataset):
    html = client.get("/tasks/new?model=nosuch&strategy=ppo&method=lora9").text
    assert 'value="sft" data-key="training_strategy" checked' in html
    assert 'value="nosuch"' in html  # the model as given: the form's validation names the problem


def test_new_task_form_has_every_guide_key_with_advice(client, dataset):
    from tuneforge.console.fields import GUIDE_ADVICE

    html = client.get("/tasks/new").text
    for key, advice in GUIDE_ADVICE.items():
        assert f'id="f-{key}"' in html, key
        assert advice.split(".")[0].replace("'", "&#39;") in html, key
    assert dataset["path"] in html  # the uploaded data set is offered (and chosen) as train_data


def test_fine_tune_prefill_uses_gallery_recommendation(client, dataset):
    from tuneforge.gallery import recommended_config

    rec = recommended_config("builtin:toy", "dpo", "qlora4")
    html = client.get("/tasks/new?model=builtin:toy&strategy=dpo&method=qlora4").text
    assert f'value="{rec["learning_rate"]}"' in html
    assert 'id="f-load_in_4bit" data-key="load_in_4bit" data-kind="bool" aria-describedby="a-load_in_4bit" checked' in html
    assert 'value="dpo" data-key="training_strategy" checked' in html


def test_clone_prefills_the_task_config(client, task):
    html = client.get(f"/tasks/new?clone={task['id']}").text
    assert "page-test-copy" in html
    assert 'id="f-max_steps" data-key="max_steps" data-kind="integer"' in html and 'value="2"' in html


def test_task_and_dataset_pages(client, task, dataset):
    html = client.get(f"/tasks/{task['id']}").text
    assert "page-test" in html and 'id="chart-host"' in html and 'id="chart-loss"' in html
    assert "sft_train.jsonl" in client.get(f"/datasets/{dataset['id']}").text


@pytest.mark.parametrize("path", ["/tasks/999", "/tasks/abc", "/datasets/999", "/tasks/new?clone=999",
                                  "/compare?ids=1,999"])
def test_unknown_ids_give_an_error_page(client, task, path):
    res = client.get(path)
    assert res.status_code == 404
    assert "<main" in res.text and "Traceback" not in res.text


def test_downloads_stay_inside_the_run_directory(client, task, tmp_path):
    run_dir = Path(task["run_dir"])
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "adapter_config.json").write_text('{"r": 8}')
    res = client.get(f"/tasks/{task['id']}/files/adapter_config.json")
    assert res.status_code == 200 and res.json() == {"r": 8}
    assert "attachment" in res.headers["content-disposition"]
    assert "adapter_config.json" in client.get(f"/tasks/{task['id']}").text
    for bad in ("%2e%2e/tuneforge.db", "..%2F..%2Fetc%2Fpasswd", "%2Fetc%2Fpasswd", "missing.bin", "a%00b", "n" * 300):
        assert client.get(f"/tasks/{task['id']}/files/{bad}").status_code == 404, bad


def test_outputs_list_and_downloads_are_api_routes(client, task):
    """GET /api/tasks/ID/outputs: what the task page renders (name, kind, size with its unit, download route);
    the download route serves files strictly inside the run directory, JSON errors otherwise."""
    run_dir = Path(task["run_dir"])
    (run_dir / "checkpoint-2").mkdir(parents=True, exist_ok=True)
    (run_dir / "adapter_config.json").write_text('{"r": 8}')
    (run_dir / "notes one.txt").write_bytes(b"x" * 3000)
    view = client.get(f"/api/tasks/{task['id']}/outputs").json()
    assert view["run_dir"] == task["run_dir"] and view["has_model"] is True
    files = {f["name"]: f for f in view["files"]}
    assert files["notes one.txt"]["kind"] == "file" and files["notes one.txt"]["size"] == "2.9 KiB"
    assert files["adapter_config.json"]["size"] == "8 B"
    assert files["notes one.txt"]["url"] == f"/api/tasks/{task['id']}/files/notes%20one.txt"
    assert files["checkpoint-2"] == {**files["checkpoint-2"], "kind": "folder", "size": None, "url": None}
    assert view["files"][0]["name"] == "adapter_config.json"  # what a user comes for first
    res = client.get(files["adapter_config.json"]["url"])
    assert res.status_code == 200 and res.json() == {"r": 8} and "attachment" in res.headers["content-disposition"]
    for bad in ("%2e%2e/tuneforge.db", "..%2F..%2Fetc%2Fpasswd", "checkpoint-2", "missing.bin", "a%00b", "n" * 300):
        res = client.get(f"/api/tasks/{task['id']}/files/{bad}")
        assert res.status_code == 404 and "no file" in res.json()["detail"], bad
    assert client.get("/api/tasks/999/outputs").json() == {"detail": "task 999: no such task."}
    assert 'id="task-outputs"' in client.get(f"/tasks/{task['id']}").text  # the page starts from the same view


def test_static_files_are_vendored(client):
    for path in ("/static/vendor/uplot/uPlot.iife.min.js", "/static/vendor/uplot/uPlot.min.css",
                 "/static/js/task.js", "/static/console.css"):
        assert client.get(path).status_code == 200, path
    page = client.get("/tasks").text + client.get("/compare").text
    assert "http://" not in page.replace("http://www.w3.org", "") and "https://" not in page  # no CDN


def test_config_rows_mark_differences():
    rows = config_rows([{"config": {"learning_rate": 1e-4, "seq_length": 512, "output_dir": "a"}},
                        {"config": {"learning_rate": 2e-4, "seq_length": 512, "output_dir": "b", "lora_dim": 32}}])
    by_key = {r["key"]: r for r in rows}
    assert by_key["learning_rate"]["differs"] and not by_key["seq_length"]["differs"]
    assert not by_key["output_dir"]["differs"]  # differs by construction: not highlighted
    assert not by_key["lora_dim"]["differs"]  # 32 is the default the first task used without naming it
    assert by_key["lora_dim"]["cells"][0] == {"text": "32", "default": True}
    assert rows[0]["key"] == "learning_rate"  # differences first


def test_pages_and_static_files_need_the_token_when_one_is_set(tmp_path):
    from tuneforge.apps import create_app
    from tuneforge.service.settings import Settings

    with TestClient(create_app(Settings(home=tmp_path, token="s3cret"), start_worker=False), base_url="http://127.0.0.1") as c:
        assert c.get("/tasks").status_code == 401
        assert c.get("/static/console.css").status_code == 401
        assert c.get("/tasks/1/files/train.log").status_code == 401
        assert c.get("/tasks?token=s3cret").status_code == 200  # sets the cookie the browser then sends
        assert c.get("/static/console.css").status_code == 200
        assert "No tasks yet" in c.get("/tasks").text
