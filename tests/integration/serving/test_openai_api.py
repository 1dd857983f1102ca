"""The OpenAI-compatible server, driven by the official ``openai`` client: two adapters on one toy base."""
from __future__ import annotations

import asyncio
import json
import time

import httpx
import openai
import pytest

from tuneforge.cli import main

QUESTION = "How should I store goji berries?"


def _chat(client, model: str, content: str = QUESTION, **kw):
    return client.chat.completions.create(model=model, messages=[{"role": "user", "content": content}], **kw)


def _greedy(client, model: str, content: str = QUESTION, max_tokens: int = 12) -> str:
    return _chat(client, model, content, temperature=0, max_tokens=max_tokens).choices[0].message.content


def _generate(capsys, run, prompt: str, max_tokens: int) -> str:
    capsys.readouterr()
    assert main(["generate", str(run), "--prompt", prompt, "--max-new-tokens", str(max_tokens), "--temperature", "0"]) == 0
    return capsys.readouterr().out.rstrip("\n")


def _stream_text(client, model: str, **kw) -> tuple[str, list]:
    chunks = list(_chat(client, model, stream=True, **kw))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    return text, chunks


def test_models_list_names_both_runs(client):
    listed = {m.id: m for m in client.models.list().data}
    assert set(listed) == {"cook", "chef"}
    assert client.models.retrieve("chef").id == "chef"


@pytest.mark.parametrize("name", ["cook", "chef"])
def test_greedy_chat_equals_tuneforge_generate(client, capsys, served_runs, name):
    served = _greedy(client, name, max_tokens=12)
    assert served.strip()  # the toy answers with something, so the comparison below means something
    assert served.strip() == _generate(capsys, served_runs[name], QUESTION, 12)


def test_two_adapters_answer_differently_and_name_their_model(client):
    cook, chef = (_chat(client, m, temperature=0, max_tokens=12) for m in ("cook", "chef"))
    assert cook.model == "cook" and chef.model == "chef"
    assert cook.choices[0].message.content != chef.choices[0].message.content


@pytest.mark.parametrize("name", ["cook", "chef"])
def test_streaming_gives_the_non_streaming_text_with_the_adapter(client, name):
    text, chunks = _stream_text(client, name, temperature=0, max_tokens=12)
    assert text == _greedy(client, name, max_tokens=12)
    assert {c.model for c in chunks} == {name}
    assert chunks[-1].choices[0].finish_reason in ("stop", "length")


def test_stream_ends_with_done_and_reports_usage(server):
    body = {"model": "chef", "messages": [{"role": "user", "content": QUESTION}], "max_tokens": 5, "temperature": 0,
            "stream": True, "stream_options": {"include_usage": True}}
    with httpx.Client(timeout=60) as http:
        response = http.post(server.base_url + "/v1/chat/completions", json=body)
    events = [line[len("data: "):] for line in response.text.split("\n\n") if line.startswith("data: ")]
    assert response.headers["content-type"].startswith("text/event-stream")
    assert events[-1] == "[DONE]"
    usage = json.loads(events[-2])["usage"]
    assert usage["completion_tokens"] <= 5 and usage["prompt_tokens"] > 0


def test_max_tokens_gives_finish_reason_length(client):
    response = _chat(client, "cook", temperature=0, max_tokens=3)
    assert response.choices[0].finish_reason == "length"
    assert response.usage.completion_tokens == 3
    assert response.usage.total_tokens == response.usage.prompt_tokens + 3


def test_stop_string_cuts_the_answer(client):
    full = _greedy(client, "cook", max_tokens=16)
    stop = full[len(full) // 2:len(full) // 2 + 2]
    assert stop.strip(), full
    response = _chat(client, "cook", temperature=0, max_tokens=16, stop=[stop])
    assert response.choices[0].message.content == full[:full.index(stop)]
    assert response.choices[0].finish_reason == "stop"
    streamed, _ = _stream_text(client, "cook", temperature=0, max_tokens=16, stop=stop)
    assert streamed == full[:full.index(stop)]


def test_n_and_seed_repeat(client):
    first, again = (_chat(client, "chef", temperature=1.0, max_tokens=8, n=2, seed=5) for _ in range(2))
    texts = [c.message.content for c in first.choices]
    assert [c.index for c in first.choices] == [0, 1]
    assert texts == [c.message.content for c in again.choices]
    assert texts[0] != texts[1]
    if all(c.finish_reason == "length" for c in first.choices):
        assert first.usage.completion_tokens == 16  # summed over the choices, as OpenAI counts
    assert 0 < first.usage.completion_tokens <= 16


def test_text_completions(client):
    response = client.completions.create(model="cook", prompt=["Once upon", "a time"], max_tokens=4, temperature=0)
    assert [c.index for c in response.choices] == [0, 1]
    assert all(c.finish_reason in ("stop", "length") for c in response.choices)
    assert response.model == "cook"


def test_unknown_model_is_404(client):
    with pytest.raises(openai.NotFoundError) as err:
        _chat(client, "no-such-run")
    assert "no-such-run" in err.value.message and "cook" in err.value.message


@pytest.mark.parametrize("body, field", [
    ("{not json", None),
    (json.dumps({"model": "cook", "messages": []}), "messages"),
    (json.dumps({"model": "cook", "messages": [{"role": "user", "content": "hi"}], "temperature": 5}), "temperature"),
    (json.dumps({"model": "cook", "messages": [{"role": "user", "content": "hi"}], "n": 0}), "n"),
    (json.dumps({"model": "cook", "messages": [{"role": "user", "content": "hi"}], "tools": [{"type": "function"}]}),
     "tools"),
])
def test_malformed_bodies_are_400_error_objects(server, body, field):
    with httpx.Client(timeout=30) as http:
        response = http.post(server.base_url + "/v1/chat/completions", content=body,
                             headers={"content-type": "application/json"})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and error["message"]
    assert error["param"] == field
    assert response.json()["detail"] == error["message"]


def test_prompt_longer_than_the_context_names_the_limit(client):
    with pytest.raises(openai.BadRequestError) as err:
        _chat(client, "cook", "apples " * 2100)
    assert "2048" in err.value.message and err.value.code == "context_length_exceeded"


def test_eight_concurrent_streams_complete_with_their_own_adapter(server, client):
    solo = {m: _greedy(client, m, f"crate {m}?", max_tokens=10) for m in ("cook", "chef")}

    async def one(async_client, model: str) -> tuple[str, str, str | None]:
        stream = await async_client.chat.completions.create(
            model=model, messages=[{"role": "user", "content": f"crate {model}?"}], temperature=0, max_tokens=10,
            stream=True)
        text, reason = "", None
        async for chunk in stream:
            text += chunk.choices[0].delta.content or ""
            reason = chunk.choices[0].finish_reason or reason
        return model, text, reason

    async def all_of_them():
        async with openai.AsyncOpenAI(base_url=server.base_url + "/v1", api_key="x", max_retries=0,
                                      timeout=120) as async_client:
            return await asyncio.gather(*(one(async_client, ("cook", "chef")[i % 2]) for i in range(8)))

    results = asyncio.run(all_of_them())
    assert len(results) == 8 and all(reason in ("stop", "length") for _, _, reason in results)
    # rows of both adapters shared batches; each row still got its own adapter
    assert all(text == solo[model] for model, text, _ in results)


def _health(server) -> dict:
    return httpx.get(server.base_url + "/health", timeout=10).json()


def _wait_idle(server, seconds: float = 20) -> dict:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        state = _health(server)
        if state["requests_in_progress"] == 0 and state["sequences_running"] == 0:
            return state
        time.sleep(0.1)
    raise AssertionError(f"server still busy after {seconds} s: {state}")


def test_a_request_joining_a_running_batch_gets_its_solo_answer(server, client):
    alone = _greedy(client, "chef", "late arrival", max_tokens=10)
    body = {"model": "cook", "messages": [{"role": "user", "content": "long one"}], "max_tokens": 400,
            "temperature": 0, "stream": True}
    with httpx.Client(timeout=60) as http, http.stream("POST", server.base_url + "/v1/chat/completions",
                                                        json=body) as long_stream:
        lines = long_stream.iter_lines()
        next(line for line in lines if '"content": "' in line and '"content": ""' not in line)  # decoding
        joined = _greedy(client, "chef", "late arrival", max_tokens=10)
    assert joined == alone
    _wait_idle(server)


def test_a_disconnecting_client_frees_its_slot(server, client):
    settings = server.app.state.serving.settings
    settings.max_concurrent = 1
    try:
        cancelled_before = _health(server)["sequences_cancelled"]
        # greedy, so the answer is the same every run; 2000 tokens take seconds, the disconnect is seen in ms
        body = {"model": "cook", "messages": [{"role": "user", "content": "tell me everything"}], "max_tokens": 2000,
                "temperature": 0, "stream": True}
        with httpx.Client(timeout=60) as http:
            with http.stream("POST", server.base_url + "/v1/chat/completions", json=body) as stream:
                lines = stream.iter_lines()
                for _ in range(3):
                    next(lines)
                with pytest.raises(openai.RateLimitError):  # the one slot is taken
                    _chat(client, "chef", max_tokens=2)
            # leaving the `with` closed the connection mid-stream
        state = _wait_idle(server)
        assert state["sequences_waiting"] == 0
        assert state["sequences_cancelled"] == cancelled_before + 1  # dropped by the batcher, not run to the end
        assert _chat(client, "chef", max_tokens=2, temperature=0).choices[0].finish_reason in ("stop", "length")
    finally:
        settings.max_concurrent = 32


def test_a_slow_first_token_still_gives_the_whole_answer(client, monkeypatch):
    """The wait for events wakes up often to check for a departed client; waking up must lose nothing."""
    from tuneforge.serving import responses

    expected = _greedy(client, "chef", max_tokens=12)
    monkeypatch.setattr(responses, "DISCONNECT_POLL_S", 0.0005)  # every wait times out at least once
    response = _chat(client, "chef", temperature=0, max_tokens=12)
    assert response.choices[0].message.content == expected and response.usage.completion_tokens == 12


def test_a_client_leaving_a_plain_request_cancels_it(server):
    cancelled_before = _health(server)["sequences_cancelled"]
    body = {"model": "cook", "messages": [{"role": "user", "content": "tell me everything"}], "max_tokens": 2000,
            "temperature": 0}
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(server.base_url + "/v1/chat/completions", json=body, timeout=httpx.Timeout(30, read=1.0))
    state = _wait_idle(server)
    assert state["sequences_cancelled"] == cancelled_before + 1


def test_without_cache_merging_requests_still_all_complete(server, client, monkeypatch):
    """Models whose cache cannot be merged (sliding-window layers) admit new requests only into an empty batch."""
    from tuneforge.serving import batcher

    solo = _greedy(client, "cook", "one at a time", max_tokens=6)
    monkeypatch.setattr(batcher, "_mergeable", lambda cache: False)

    async def all_of_them():
        async with openai.AsyncOpenAI(base_url=server.base_url + "/v1", api_key="x", max_retries=0,
                                      timeout=120) as async_client:
            return await asyncio.gather(*(async_client.chat.completions.create(
                model="cook", messages=[{"role": "user", "content": "one at a time"}], max_tokens=6, temperature=0)
                for _ in range(4)))

    assert [r.choices[0].message.content for r in asyncio.run(all_of_them())] == [solo] * 4


def test_a_failing_forward_pass_fails_its_request_not_the_server(server, client, monkeypatch):
    batcher = next(iter(server.app.state.serving.batchers.values()))

    def broken(*_args, **_kwargs):
        raise RuntimeError("out of memory (simulated)")

    monkeypatch.setattr(batcher, "_forward", broken)
    with pytest.raises(openai.InternalServerError) as err:
        _chat(client, "cook", max_tokens=4)
    assert "out of memory (simulated)" in err.value.message
    with httpx.Client(timeout=30) as http:
        body = {"model": "cook", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4, "stream": True}
        events = [line for line in http.post(server.base_url + "/v1/chat/completions", json=body).text.split("\n\n")
                  if line.startswith("data: ")]
    assert "simulated" in events[-2] and events[-1] == "data: [DONE]"
    monkeypatch.undo()
    assert _chat(client, "cook", max_tokens=2, temperature=0).choices[0].finish_reason in ("stop", "length")
