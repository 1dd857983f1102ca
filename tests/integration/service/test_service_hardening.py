"""The task service's refusals against a real `tuneforge console` (issue 23): NUL bytes and over-long names in
path keys, an empty model, remote code in token mode, foreign Host names, cross-site POSTs (as headers; the
browser version is tests/integration/console/test_cross_site_browser.py), body limits, bad flags, and a token
given in a link."""
from __future__ import annotations

import os
import subprocess
import sys

import httpx
import pytest

from .conftest import ServiceProcess

LONG = "x" * 300


@pytest.fixture(scope="module")
def svc(start_service):
    return start_service()


def _start_with_token(tmp_path_factory, *extra: str) -> ServiceProcess:
    svc = ServiceProcess(tmp_path_factory.mktemp("token-svc") / "home", "--token", "tok3n", *extra)
    svc.headers = {"Authorization": "Bearer tok3n"}
    return svc.start()


@pytest.fixture(scope="module")
def token_svc(tmp_path_factory):
    svc = _start_with_token(tmp_path_factory)
    yield svc
    svc.stop()


@pytest.mark.parametrize("route", ["/api/tasks/validate", "/api/tasks"])
@pytest.mark.parametrize("key,value,field", [
    ("train_data", "data\x00.jsonl", "train_data"), ("train_data", f"/tmp/{LONG}/a.jsonl", "train_data"),
    ("train_data", ["ok.jsonl", {"path": "b\x00"}], "train_data"), ("validation_data", LONG + ".jsonl", "validation_data"),
    ("model", "/models/\x00x", "model"), ("adapter_name_or_path", f"/{LONG}", "adapter_name_or_path"),
    ("deepspeed", f"/{LONG}.json", "deepspeed"), ("data_cache_dir", "c\x00", "data_cache_dir"),
    ("system_prompt", "be nice\x00", "system_prompt"), ("model", "", "model"), ("model", "   ", "model"),
])
def test_bad_text_in_a_key_is_a_400_naming_it(svc, toy_data, toy_config, route, key, value, field):
    r = httpx.post(svc.url + route, json={"config": {**toy_config(toy_data["good"]), key: value}}, timeout=60)
    assert r.status_code == 400 and r.json()["key"] == field, r.text


def test_bad_import_paths_and_task_names_are_a_400(svc, toy_data, toy_config):
    for path in ("/tmp/\x00run", f"/tmp/{LONG}"):
        r = httpx.post(svc.url + "/api/tasks/import", json={"path": path}, timeout=30)
        assert r.status_code == 400 and r.json()["key"] == "path", r.text
    r = httpx.post(svc.url + "/api/tasks", json={"config": toy_config(toy_data["good"]), "name": "a\x00b"}, timeout=30)
    assert r.status_code == 400 and r.json()["key"] == "name", r.text


def test_trust_remote_code_needs_allow_remote_code_in_token_mode(token_svc, tmp_path_factory, toy_data, toy_config):
    config = toy_config(toy_data["good"], trust_remote_code=True)
    r = httpx.post(token_svc.url + "/api/tasks/validate", json={"config": config}, headers=token_svc.headers, timeout=30)
    assert r.status_code == 400 and r.json()["key"] == "trust_remote_code" and "--allow-remote-code" in r.json()["detail"]
    allowed = _start_with_token(tmp_path_factory, "--allow-remote-code", "--allow-dir", toy_data["dir"])
    try:
        r = httpx.post(allowed.url + "/api/tasks/validate", json={"config": config}, headers=allowed.headers, timeout=60)
        assert r.status_code == 200, r.text
    finally:
        allowed.stop()


def test_a_token_in_a_link_becomes_a_cookie_and_leaves_the_address_bar(token_svc):
    r = httpx.get(token_svc.url + "/tasks", params={"token": "tok3n", "status": "running"}, timeout=30)
    assert r.status_code == 303 and r.headers["location"] == "/tasks?status=running"
    assert r.cookies.get("tuneforge_token") == "tok3n"
    page = httpx.get(token_svc.url + r.headers["location"], cookies={"tuneforge_token": "tok3n"}, timeout=30)
    assert page.status_code == 200 and "tok3n" not in str(page.url)


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8750", "127.0.0.1.nip.io", "10.0.0.1"])
def test_a_foreign_host_is_refused_dns_rebinding(svc, host):
    for method, path in (("GET", "/api/tasks"), ("GET", "/tasks"), ("POST", "/api/tasks")):
        r = httpx.request(method, svc.url + path, headers={"host": host}, json={}, timeout=30)
        assert r.status_code == 403 and r.json()["key"] == "Host", r.text
    assert httpx.get(svc.url + "/api/tasks", headers={"host": "localhost"}, timeout=30).status_code == 200


def test_cross_site_state_changes_are_refused(svc, toy_data, toy_config):
    body = {"config": toy_config(toy_data["good"])}
    before = httpx.get(svc.url + "/api/tasks", timeout=30).json()
    for headers in ({"origin": "http://evil.example"}, {"origin": "null"}, {"sec-fetch-site": "cross-site"},
                    {"sec-fetch-site": "same-site", "origin": "http://127.0.0.1:1"},
                    {"referer": "http://evil.example/x"}, {"origin": svc.url.replace("127.0.0.1", "localhost")}):
        for path in ("/api/tasks", "/api/tasks/1/stop", "/api/tasks/1/clone", "/datasets/examples"):
            r = httpx.post(svc.url + path, json=body, headers=headers, timeout=30)
            assert r.status_code == 403 and r.json()["key"] == "Origin", (headers, path, r.text)
        r = httpx.delete(svc.url + "/api/tasks/1", headers=headers, timeout=30)
        assert r.status_code == 403
    assert httpx.get(svc.url + "/api/tasks", timeout=30).json() == before
    own = {"origin": svc.url, "sec-fetch-site": "same-origin"}
    assert httpx.post(svc.url + "/api/tasks/validate", json=body, headers=own, timeout=60).status_code == 200


def test_a_json_body_over_the_limit_is_413(svc):
    huge = b'{"config": {"system_prompt": "' + b"a" * (9 * 2**20) + b'"}}'
    r = httpx.post(svc.url + "/api/tasks/validate", content=huge, headers={"content-type": "application/json"},
                   timeout=60)
    assert r.status_code == 413 and "8 MiB" in r.json()["detail"], r.text
    assert httpx.get(svc.url + "/api/info", timeout=10).status_code == 200


@pytest.mark.parametrize("flags,named", [(["--port", "70000"], "--port"), (["--upload-limit-mb", "-1"], "--upload-limit-mb"),
                                         (["--max-body-mb", "0"], "--max-body-mb"), (["--upload-limit-mb", "nan"], "--upload-limit-mb")])
def test_bad_console_flags_exit_2_with_one_line(tmp_path, flags, named):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-m", "tuneforge.cli", "console", "--home", str(tmp_path / "h"), *flags],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 2, done.stderr
    assert named in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
