"""`tuneforge serve` as a command: API key, loopback rule, names, refusals before any model loads."""
from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

import openai
import pytest

from tuneforge.cli import main


def _start(args: list[str], env: dict | None = None) -> tuple[subprocess.Popen, str]:
    """`tuneforge serve ... --port 0` in a subprocess; returns it and its base URL once it listens."""
    proc = subprocess.Popen([sys.executable, "-m", "tuneforge.cli", "serve", *args, "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})})
    found: list[str] = []

    def read() -> None:
        for line in proc.stdout:  # type: ignore[union-attr]
            match = re.search(r"at (http://127\.0\.0\.1:\d+)/v1", line)
            if match:
                found.append(match.group(1))

    threading.Thread(target=read, daemon=True).start()
    deadline = time.monotonic() + 120
    while not found:
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise AssertionError(f"serve did not start (rc {proc.poll()}): {proc.stderr.read()[-2000:]}")  # type: ignore[union-attr]
        time.sleep(0.1)
    return proc, found[0]


def _stop(proc: subprocess.Popen, sig: int = signal.SIGTERM) -> int:
    proc.send_signal(sig)
    try:
        return proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)
        raise


def test_serve_command_with_an_api_key(served_runs):
    proc, url = _start([f"kitchen={served_runs['cook']}", "--api-key", "s3cret", "--max-batch-size", "4"])
    try:
        with openai.OpenAI(base_url=url + "/v1", api_key="wrong", max_retries=0, timeout=60) as bad:
            with pytest.raises(openai.AuthenticationError):
                bad.models.list()
            with pytest.raises(openai.AuthenticationError):
                bad.chat.completions.create(model="kitchen", messages=[{"role": "user", "content": "hi"}])
        with openai.OpenAI(base_url=url + "/v1", api_key="s3cret", max_retries=0, timeout=60) as good:
            assert [m.id for m in good.models.list().data] == ["kitchen"]
            answer = good.chat.completions.create(model="kitchen", messages=[{"role": "user", "content": "hi"}],
                                                  max_tokens=3, temperature=0)
            assert answer.model == "kitchen" and answer.choices[0].finish_reason in ("stop", "length")
    finally:
        rc = _stop(proc)
    assert rc == 0


def test_a_non_loopback_address_needs_a_key(served_runs, capsys, monkeypatch):
    monkeypatch.delenv("TUNEFORGE_API_KEY", raising=False)
    assert main(["serve", str(served_runs["cook"]), "--host", "0.0.0.0"]) == 2
    assert "--api-key" in capsys.readouterr().err


def test_a_port_in_use_is_refused_before_loading(served_runs, capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        assert main(["serve", str(served_runs["cook"]), "--port", str(port)]) == 2
    assert f"--port {port}: cannot listen there" in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["{cook}", "{cook}"], "used by both"),
    (["{cook}", "--name", "a", "--name", "b"], "once per RUN"),
    (["/no/such/run"], "no such directory"),
    (["{cook}", "--max-batch-size", "0"], "--max-batch-size=0"),
    (["bad name={cook}"], "model name"),
])
def test_bad_arguments_exit_2_with_one_line(served_runs, capsys, argv, message):
    argv = [a.replace("{cook}", str(served_runs["cook"])) for a in argv]
    assert main(["serve", *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_a_runs_saved_trust_remote_code_is_not_obeyed(tmp_path, capsys):
    """A run directory may come from anyone: its config cannot switch on model code; only the flag can."""
    from .conftest import make_lora_run

    run = make_lora_run(tmp_path / "foreign", seed=9, trust_remote_code=True)
    assert main(["serve", str(run), "--port", "0"]) == 2
    assert "--trust-remote-code" in capsys.readouterr().err


def test_a_task_of_the_task_service_is_found_by_id(served_runs, tmp_path, capsys):
    from tuneforge.service.store import Store
    from tuneforge.serving.cli import task_run

    store = Store(tmp_path / "tuneforge.db")
    done = store.insert_task(name="cook-task", status="succeeded", config={}, run_dir=str(served_runs["cook"]))
    running = store.insert_task(name="busy", status="running", config={}, run_dir=str(tmp_path / "busy"))
    store.close()
    assert task_run(done, str(tmp_path)) == f"cook-task={served_runs['cook']}"
    assert main(["serve", "--task", str(running), "--home", str(tmp_path)]) == 2
    assert "the task is running" in capsys.readouterr().err
    assert main(["serve", "--task", "99", "--home", str(tmp_path / "nowhere")]) == 2
    assert "no task database" in capsys.readouterr().err and not (tmp_path / "nowhere").exists()
