"""Data set uploads against a real `tuneforge console` (issue 23): concurrent uploads of one name, uploads
over the limit (cut while they stream), hostile names and rows, and a file changed after it was accepted."""
from __future__ import annotations

import hashlib
import json
import select
import socket
import threading

import httpx
import pytest

ROWS = 40


def _rows(tag: str) -> bytes:
    return "".join(json.dumps({"instruction": f"{tag} question {i}", "output": f"{tag} answer {i}"}) + "\n"
                   for i in range(ROWS)).encode()


@pytest.fixture(scope="module")
def svc(start_service):
    return start_service("--upload-limit-mb", "1")


def _upload(svc, name: str, content, **kw) -> httpx.Response:
    return httpx.post(svc.url + "/api/datasets", files={"file": (name, content)}, timeout=60, **kw)


def test_concurrent_uploads_of_one_name_keep_each_file(svc):
    tags = [f"upload{i}" for i in range(8)]
    barrier = threading.Barrier(len(tags))
    answers: dict[str, httpx.Response] = {}

    def send(tag: str) -> None:
        barrier.wait()
        answers[tag] = _upload(svc, "train.jsonl", _rows(tag))

    threads = [threading.Thread(target=send, args=(t,)) for t in tags]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    paths = set()
    for tag, r in answers.items():
        assert r.status_code == 201, r.text
        dataset = r.json()
        assert dataset["rows"] == ROWS
        content = open(dataset["path"], "rb").read()
        assert content == _rows(tag), f"{tag}'s data set holds another upload's rows"
        assert dataset["sha256"] == hashlib.sha256(content).hexdigest() and dataset["size_bytes"] == len(content)
        paths.add(dataset["path"])
    assert len(paths) == len(tags)
    assert not list((svc.home / "datasets" / ".incoming").iterdir())


def test_an_upload_over_the_limit_is_cut_while_it_streams(svc):
    big = b'{"instruction": "q", "output": "' + b"a" * (3 * 2**20) + b'"}\n'
    r = _upload(svc, "big.jsonl", big)
    assert r.status_code == 413 and "MiB" in r.json()["detail"], r.text

    # a chunked body with no Content-Length that would never end on its own, sent over a raw socket so the
    # test sees when the server answers (an HTTP client would finish sending first)
    port = int(svc.url.rsplit(":", 1)[1])
    sent, answer = 0, b""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(b"POST /api/datasets HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n"
                     b"Content-Type: multipart/form-data; boundary=b\r\n\r\n")
        head = b'--b\r\nContent-Disposition: form-data; name="file"; filename="x.jsonl"\r\n\r\n'
        sock.sendall(b"%x\r\n%s\r\n" % (len(head), head))
        chunk = b"a" * 2**16
        while sent < 200 * 2**20:
            try:
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            except OSError:  # the server closed the connection after answering
                break
            sent += len(chunk)
            if select.select([sock], [], [], 0)[0]:
                break
        answer = sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert sent < 8 * 2**20, f"the server took {sent} bytes before refusing a 1 MiB-limited upload"
    assert not list((svc.home / "datasets" / ".incoming").iterdir())
    assert not any(p.name.startswith(("big", "x")) for p in (svc.home / "datasets").iterdir())


@pytest.mark.parametrize("name", ["a" * 300 + ".jsonl", "é" * 200 + ".jsonl"])
def test_over_long_upload_names_are_a_400_naming_file(svc, name):
    r = _upload(svc, name, _rows("n"))
    assert r.status_code == 400 and r.json()["key"] == "file", r.text
    assert not list((svc.home / "datasets" / ".incoming").iterdir())


def test_a_long_but_valid_name_is_published_under_a_shortened_stem(svc):
    r = _upload(svc, "x" * 200 + ".jsonl", _rows("long"))  # 206 bytes: a valid name, shortened when published
    assert r.status_code == 201, r.text
    assert r.json()["filename"] == "x" * 100 + ".jsonl"


def test_a_row_nested_100000_deep_is_a_400_and_leaves_no_temporary_file(svc):
    deep = ('{"instruction": "q", "output": "a", "meta": ' + "[" * 100_000 + "]" * 100_000 + "}\n").encode()
    r = _upload(svc, "deep.jsonl", deep)
    assert r.status_code == 400 and "nested too deeply" in r.json()["detail"], r.text
    assert "line 1" in r.json()["detail"]
    assert not list((svc.home / "datasets" / ".incoming").iterdir())
    r = httpx.post(svc.url + "/api/tasks/validate", content=b'{"config": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
                   headers={"content-type": "application/json"}, timeout=30)
    assert r.status_code == 400, r.text


def test_a_data_set_changed_after_upload_is_refused_by_its_task(svc, toy_config):
    dataset = _upload(svc, "changing.jsonl", _rows("original")).json()
    config = toy_config(dataset["filename"])
    assert httpx.post(svc.url + "/api/tasks/validate", json={"config": config}, timeout=60).status_code == 200
    with open(dataset["path"], "ab") as fh:  # changed by hand (or by another program) after it was accepted
        fh.write(json.dumps({"instruction": "sneaked in", "output": "x"}).encode() + b"\n")
    r = httpx.post(svc.url + "/api/tasks", json={"config": config}, timeout=60)
    assert r.status_code == 409 and r.json()["key"] == "train_data" and "changed on disk" in r.json()["detail"], r.text


def test_a_nul_byte_in_an_upload_name_never_reaches_a_file_name(svc):
    # httpx percent-encodes it in the multipart header, so the service sees "%00" and publishes a safe name;
    # a NUL that does arrive is refused by uploads.upload_name (tests/unit/service/test_uploads.py)
    r = _upload(svc, "bad\x00name.jsonl", _rows("nul"))
    assert r.status_code == 201 and r.json()["filename"] == "bad_00name.jsonl", r.text
