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


def _stop(proc: subprocess.Popen) -> int:
    proc.send_signal(signal.SIGINT)
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
