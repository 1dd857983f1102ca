"""`tuneforge serve` under hostile or unlucky requests (issue 23): degenerate sampling numbers among good
requests, a failure in one request's sampling, huge bodies, empty prompt lists, foreign Host names and
cross-site POSTs. Everything goes through the real HTTP server."""
from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from .conftest import ThreadServer

CHAT = "/v1/chat/completions"


@pytest.fixture(scope="module")
def small_server(served_runs):
    """One toy run served with the default body limit (4 MiB)."""
    from tuneforge.serving.app import ServerSettings, create_app
    from tuneforge.serving.loading import TrustSettings, load_models, parse_specs

    models = load_models(parse_specs([str(served_runs["cook"])], None), trust=TrustSettings(), max_model_len=2048,
                         log=lambda _line: None)
    app = create_app(models, ServerSettings(max_batch_size=8, max_concurrent=32, default_max_tokens=8))
    with ThreadServer(app) as running:
        yield running


def _chat_body(**sampling) -> dict:
    return {"model": "cook", "messages": [{"role": "user", "content": "Goji berries?"}], "max_tokens": 6, **sampling}


def test_underflowing_temperature_and_top_p_answer_among_good_requests(small_server):
    bad = [dict(temperature=1e-300), dict(temperature=1e-45), dict(top_p=1e-300), dict(top_p=1e-45),
           dict(temperature=1e-300, top_p=1e-300)]
    good = [dict(temperature=0.8, seed=i) for i in range(5)]
    with ThreadPoolExecutor(10) as pool:  # submitted together: they share decoding steps
        answers = list(pool.map(lambda s: httpx.post(small_server.base_url + CHAT, json=_chat_body(**s), timeout=60),
                                bad + good))
    for sampling, r in zip(bad + good, answers):
        assert r.status_code == 200, (sampling, r.text)
        assert r.json()["choices"][0]["finish_reason"] in ("stop", "length")
    # a temperature that underflows decodes greedily (documented: below 1e-5), so it equals temperature 0
    greedy = httpx.post(small_server.base_url + CHAT, json=_chat_body(temperature=0), timeout=60).json()
    assert answers[0].json()["choices"][0]["message"]["content"] == greedy["choices"][0]["message"]["content"]


def test_a_failure_in_one_requests_sampling_fails_that_request_alone(small_server, monkeypatch):
    from tuneforge.serving import batcher, sampling

    real = sampling.next_token

    def broken_for_seed_13(logits, params, generator):
        if params.seed == 13:
            raise sampling.SamplingFailed("logits are not finite (injected)")
        return real(logits, params, generator)

    monkeypatch.setattr(batcher, "next_token", broken_for_seed_13)
    seeds = [1, 2, 13, 4, 5, 6]
    with ThreadPoolExecutor(len(seeds)) as pool:
        answers = list(pool.map(lambda s: httpx.post(small_server.base_url + CHAT,
                                                     json=_chat_body(temperature=1.0, seed=s, n=2), timeout=60), seeds))
    for seed, r in zip(seeds, answers):
        if seed == 13:
            assert r.status_code == 500 and "injected" in r.json()["error"]["message"], r.text
        else:
            assert r.status_code == 200 and len(r.json()["choices"]) == 2, r.text
    assert httpx.get(small_server.base_url + "/health", timeout=5).json()["sequences_running"] == 0


def test_empty_prompt_list_is_a_400_naming_prompt(small_server):
    r = httpx.post(small_server.base_url + "/v1/completions", json={"model": "cook", "prompt": []}, timeout=30)
    assert r.status_code == 400 and r.json()["error"]["param"] == "prompt", r.text


def test_a_body_over_the_limit_is_413_and_health_stays_fast(small_server):
    url = small_server.base_url
    huge = json.dumps(_chat_body()).replace("Goji berries?", "枸杞 " * 1_000_000).encode()  # ~6 MB > 4 MiB
    r = httpx.post(url + CHAT, content=huge, headers={"content-type": "application/json"}, timeout=30)
    assert r.status_code == 413 and "4 MiB" in r.json()["error"]["message"], r.text

    def chunks():  # no Content-Length: the server counts while the body streams and stops at the limit
        for start in range(0, len(huge), 65536):
            yield huge[start:start + 65536]

    r = httpx.post(url + CHAT, content=chunks(), headers={"content-type": "application/json"}, timeout=30)
    assert r.status_code == 413, r.text

    # a maximal accepted body (just under 4 MiB of one message: seconds of templating and tokenizing on 2
    # cores) is prepared off the event loop, so /health keeps answering meanwhile
    maximal = json.dumps(_chat_body()).replace("Goji berries?", "枸杞 " * 570_000)
    assert 0.95 * 4 * 2**20 < len(maximal.encode()) < 4 * 2**20
    latencies: list[float] = []
    done = threading.Event()

    def poll_health():
        while not done.is_set():
            start = time.perf_counter()
            assert httpx.get(url + "/health", timeout=10).status_code == 200
            latencies.append(time.perf_counter() - start)
            time.sleep(0.05)

    poller = threading.Thread(target=poll_health)
    poller.start()
    try:
        r = httpx.post(url + CHAT, content=maximal, headers={"content-type": "application/json"}, timeout=120)
    finally:
        done.set()
        poller.join()
    assert r.status_code == 400 and "context length" in r.json()["error"]["message"], r.text  # refused, cleanly
    assert len(latencies) >= 5 and max(latencies) < 1.0, latencies


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8000", "127.0.0.2", ""])
def test_a_foreign_host_header_is_refused(small_server, host):
    r = httpx.get(small_server.base_url + "/v1/models", headers={"host": host}, timeout=10)
    assert r.status_code in (400, 403), r.text  # 400: h11 refuses an empty Host itself
    if r.status_code == 403:
        assert r.json()["error"]["param"] == "Host"


def test_cross_site_posts_are_refused_and_programs_are_not(small_server):
    url, body = small_server.base_url, _chat_body(temperature=0)
    for headers in ({"origin": "http://evil.example"}, {"origin": "null"}, {"sec-fetch-site": "cross-site"},
                    {"sec-fetch-site": "same-site", "origin": "http://localhost:3000"},
                    {"referer": "http://evil.example/page"}):
        r = httpx.post(url + CHAT, json=body, headers=headers, timeout=30)
        assert r.status_code == 403 and r.json()["error"]["param"] in ("Origin",), (headers, r.text)
    assert httpx.post(url + CHAT, json=body, headers={"origin": url, "sec-fetch-site": "same-origin"},
                      timeout=30).status_code == 200
    assert httpx.post(url + CHAT, json=body, timeout=30).status_code == 200  # a program sends no Origin
