"""Deploying a finished task: `tuneforge serve` started by the service, a chat request through the service,
the deployment stopped and its process gone; the refusals (unknown task, nothing trained, not deployed)."""
from __future__ import annotations

import re
import time

import httpx
import psutil
import pytest


@pytest.fixture(scope="module")
def service(start_service):
    return start_service()


@pytest.fixture(scope="module")
def trained(service, toy_data, toy_config):
    task = service.submit(toy_config(toy_data["good"]), name="toy chat")
    assert service.wait(task["id"])["status"] == "succeeded"
    return task


def _wait_ready(service, task_id: int, timeout: float = 180) -> dict:
    deadline = time.time() + timeout
    while time.time() < deadline:
        dep = service.get(f"/api/tasks/{task_id}/deployment")
        if dep["status"] != "starting":
            return dep
        time.sleep(0.3)
    raise AssertionError(f"deployment of task {task_id} still starting after {timeout}s")


def test_deploy_chat_undeploy(service, trained):
    task_id = trained["id"]
    dep = service.post(f"/api/tasks/{task_id}/deploy")
    assert dep["status"] in ("starting", "ready") and dep["model"] == "toy-chat"
    assert service.post(f"/api/tasks/{task_id}/deploy")["pid"] == dep["pid"]  # deploying again: the same server
    dep = _wait_ready(service, task_id)
    assert dep["status"] == "ready", dep
    page = httpx.get(f"{service.url}/tasks/{task_id}", timeout=30).text
    assert 'id="deploy-button"' in page and f'href="/tasks/{task_id}/chat"' in page
    chat_page = httpx.get(f"{service.url}/tasks/{task_id}/chat", timeout=30)
    assert chat_page.status_code == 200 and "toy-chat" in chat_page.text and 'id="chat-stop"' in chat_page.text

    answer = service.post(f"/api/tasks/{task_id}/deployment/chat",
                          {"messages": [{"role": "user", "content": "What is 2 plus 2?"}], "max_tokens": 8,
                           "temperature": 0})
    assert answer["model"] == "toy-chat"
    assert answer["choices"][0]["message"]["role"] == "assistant"
    assert answer["usage"]["completion_tokens"] >= 1

    refused = httpx.post(f"{service.url}/api/tasks/{task_id}/deployment/chat", timeout=30,
                         json={"messages": [{"role": "user", "content": "hi"}], "max_tokens": -1})
    assert refused.status_code == 400 and "deployment refused" in refused.json()["detail"]

    r = httpx.delete(f"{service.url}/api/tasks/{task_id}/deployment", timeout=60)
    assert r.status_code == 200 and r.json()["status"] == "stopped"
    assert not psutil.pid_exists(dep["pid"]) or psutil.Process(dep["pid"]).status() == psutil.STATUS_ZOMBIE
    gone = httpx.post(f"{service.url}/api/tasks/{task_id}/deployment/chat", timeout=30,
                      json={"messages": [{"role": "user", "content": "hi"}]})
    assert gone.status_code == 409 and "stopped" in gone.json()["detail"]
    assert (service.home / "runs" / f"task-{task_id}" / "serve.log").is_file()


def test_refusals(service, toy_data, toy_config):
    for method, path in (("POST", "/api/tasks/9999/deploy"), ("GET", "/api/tasks/9999/deployment"),
                         ("DELETE", "/api/tasks/9999/deployment")):
        r = httpx.request(method, service.url + path, timeout=30)
        assert r.status_code == 404 and "no such task" in r.json()["detail"], (path, r.text)

    failed = service.submit(toy_config(toy_data["bad"]))
    assert service.wait(failed["id"])["status"] == "failed"
    r = httpx.post(f"{service.url}/api/tasks/{failed['id']}/deploy", timeout=30)
    assert r.status_code == 409 and "holds no trained model" in r.json()["detail"]
    page = httpx.get(f"{service.url}/tasks/{failed['id']}", timeout=30).text
    assert re.search(r'id="deploy-button"[^>]*\shidden', page)  # present for a later status change, not shown
    r = httpx.post(f"{service.url}/api/tasks/{failed['id']}/deployment/chat", timeout=30,
                   json={"messages": [{"role": "user", "content": "hi"}]})
    assert r.status_code == 409 and "not deployed" in r.json()["detail"]
    r = httpx.post(f"{service.url}/api/tasks/{failed['id']}/deployment/chat", timeout=30, json={"prompt": "x"})
    assert r.status_code == 400 and "messages" in r.json()["detail"]
