"""A scripted OpenAI-compatible judge on 127.0.0.1 (FastAPI + uvicorn in a thread) for the judge tests.

Its verdicts follow a fixed table read from the answers it is shown, so every score is known in advance:
``#score=N`` -> ``Rating: [[N]]`` (Chinese prompts: ``评分：[[N]]``); pairwise, the higher score wins and
equal scores tie (``[[C]]``); an answer without a marker scores ``1 + len(answer) % 10``. ``#bias`` in a pair
makes the judge always prefer the first answer; ``#garbage`` makes it answer without a verdict;
``#flaky429`` / ``#flaky500`` make a request fail with 429 once / 500 twice before it succeeds; ``#down``
fails with 503 while ``script.down`` is set; ``#bad400`` fails with 400; ``#slow`` hangs (bounded) while
``script.slow`` is set; ``#pause`` takes 0.3 s (the most requests in flight at once are counted).
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import re
import socket
import threading
import time
from dataclasses import dataclass, field

import pytest
from fastapi import Request  # module level: the route's annotation is resolved from here

_SINGLE = re.compile(r"\[(?:Assistant's answer|助手的回答)\]\n(.*?)\n\n(?:First explain|先用几句话)", re.S)
_PAIR = re.compile(r"\[(?:Answer A|回答 A)\]\n(.*?)\n\n\[(?:Answer B|回答 B)\]\n(.*?)\n\n(?:First explain|先简要)", re.S)
_SCORE = re.compile(r"#score=(\d+)")


def stub_score(answer: str) -> int:
    found = _SCORE.search(answer)
    return int(found.group(1)) if found else 1 + len(answer) % 10


def stub_preference(a: str, b: str) -> str:
    if "#bias" in a + b:
        return "A"
    sa, sb = stub_score(a), stub_score(b)
    return "A" if sa > sb else "B" if sb > sa else "C"


@dataclass
class Script:
    calls: list = field(default_factory=list)  # (body, authorization header) per HTTP request received
    down: bool = True
    slow: bool = True
    require_key: str | None = None
    slow_seen: threading.Event = field(default_factory=threading.Event)
    failures: dict = field(default_factory=dict)  # body hash -> statuses still to answer before success
    in_flight: int = 0
    most_in_flight: int = 0

    def reset(self) -> None:
        self.calls.clear()
        self.failures.clear()
        self.down = self.slow = True
        self.require_key = None
        self.slow_seen.clear()
        self.in_flight = self.most_in_flight = 0

    def bodies(self) -> list[dict]:
        return [body for body, _ in self.calls]

    def _planned_failures(self, key: str, text: str) -> list[int]:
        if key not in self.failures:
            self.failures[key] = [429] * ("#flaky429" in text) + [500, 500] * ("#flaky500" in text)
        return self.failures[key]

    def respond(self, body: dict) -> tuple[int, str]:
        text = body["messages"][-1]["content"]
        key = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
        pending = self._planned_failures(key, text)
        if pending:
            return pending.pop(0), "scripted failure"
        if "#bad400" in text:
            return 400, "this request is malformed"
        if "#down" in text and self.down:
            return 503, "down"
        if "#garbage" in text:
            return 200, "I cannot decide between these."
        zh = "参考答案" in text
        pair = _PAIR.search(text)
        if pair:
            verdict = stub_preference(pair.group(1), pair.group(2))
            return 200, ("比较两者。" if zh else "Compared both.") + f"\n[[{verdict}]]"
        single = _SINGLE.search(text)
        if single is None:
            return 200, "no answer found in the prompt"
        score = stub_score(single.group(1))
        return 200, (f"理由略。\n评分：[[{score}]]" if zh else f"Reasons.\nRating: [[{score}]]")


def make_app(script: Script):
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse

    app = FastAPI()

    @app.post("/v1/chat/completions")
    async def chat(request: Request):
        body = await request.json()
        auth = request.headers.get("authorization")
        script.calls.append((body, auth))
        if script.require_key and auth != f"Bearer {script.require_key}":
            return JSONResponse({"error": {"message": "bad key"}}, status_code=401)
        if "#slow" in body["messages"][-1]["content"] and script.slow:
            script.slow_seen.set()
            for _ in range(300):  # at most 30 s, and over as soon as the test lets it go
                if not script.slow:
                    break
                await asyncio.sleep(0.1)
        if "#pause" in body["messages"][-1]["content"]:  # long enough for the client's other requests to arrive
            script.in_flight += 1
            script.most_in_flight = max(script.most_in_flight, script.in_flight)
            await asyncio.sleep(0.3)
            script.in_flight -= 1
        status, text = script.respond(body)
        if status != 200:
            return JSONResponse({"error": {"message": text}}, status_code=status, headers={"Retry-After": "0"})
        return {"id": "stub", "object": "chat.completion", "created": int(time.time()), "model": body["model"],
                "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}]}

    return app


class ThreadServer:
    """uvicorn in a thread on a free loopback port; stopped with a bounded wait."""

    def __init__(self, app):
        import uvicorn

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=2))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self) -> "ThreadServer":
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the judge stub did not start within 30 s")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)
        self.sock.close()


@pytest.fixture(scope="module")
def judge_stub():
    """(base URL ending in /v1, the script); the script is reset before each test that takes ``stub``."""
    script = Script()
    with ThreadServer(make_app(script)) as server:
        yield f"http://127.0.0.1:{server.port}/v1", script


@pytest.fixture
def stub(judge_stub):
    url, script = judge_stub
    script.reset()
    yield url, script
    script.slow = False  # releases a request still hanging
