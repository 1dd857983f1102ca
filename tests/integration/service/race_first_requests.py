"""Run in a fresh interpreter by test_first_requests.py: a task service on a free port whose first requests
(stats, preview, validate) arrive at the same moment. Prints one JSON line: the status codes and estimate.
With ``--no-warmup`` the start-up import is disabled, to show what the test guards against."""
from __future__ import annotations

import json
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import uvicorn


def main() -> None:
    from tuneforge.service import preimport
    from tuneforge.apps import create_app
    from tuneforge.service.settings import Settings

    if "--no-warmup" in sys.argv:
        preimport.ensure = lambda: None
    home = Path(tempfile.mkdtemp()) / "home"
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    app = create_app(Settings(home=home, port=port, scan_runs=False))
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while not server.started and time.time() < deadline:
        time.sleep(0.05)
    rows = "".join(json.dumps({"instruction": f"q{i}", "output": f"a{i}"}) + "\n" for i in range(4))
    dataset = httpx.post(url + "/api/datasets", files={"file": ("d.jsonl", rows.encode())}, timeout=60).json()
    config = {"config": {"model": "builtin:toy", "train_data": dataset["path"]}}
    calls = {
        "stats": lambda: httpx.get(f"{url}/api/datasets/{dataset['id']}/stats", timeout=120),
        "preview": lambda: httpx.get(f"{url}/api/datasets/{dataset['id']}/preview", timeout=120),
        "validate": lambda: httpx.post(f"{url}/api/tasks/validate", json=config, timeout=120),
    }
    answers: dict[str, httpx.Response] = {}
    barrier = threading.Barrier(len(calls))

    def fire(name: str) -> None:
        barrier.wait()  # all three leave together: each is the first to need the tokenizer
        answers[name] = calls[name]()

    threads = [threading.Thread(target=fire, args=(n,)) for n in calls]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    server.should_exit = True
    thread.join(timeout=10)
    print(json.dumps({"status": {n: r.status_code for n, r in answers.items()},
                      "estimate": answers["validate"].json().get("estimate"),
                      "details": {n: r.text[:300] for n, r in answers.items() if r.status_code != 200}}))


if __name__ == "__main__":
    main()
