"""The judge's HTTP side: chat-completion requests to any OpenAI-compatible endpoint (httpx), retried with
backoff on 429/5xx and connection errors (bounded), at most N at a time, each request and its answer cached
on disk by content hash so a re-run sends nothing and a killed evaluation resumes where it stopped.

The API key is read from the environment variable the user names and kept in memory only: it is not part
of the cache key, the cache files, the results or any message.
"""
from __future__ import annotations

import hashlib
import json
import os
import random
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import httpx

from ..errors import TuneforgeError

CACHE_ENV = "TUNEFORGE_JUDGE_CACHE"
RETRY_STATUS = frozenset({408, 409, 425, 429}) | frozenset(range(500, 600))
FATAL_STATUS = {401: "the API key was refused", 403: "access was refused",
                404: "no such route or model (check the URL ends in /v1 and --judge-model)"}


class JudgeError(TuneforgeError):
    """The judge endpoint cannot be used at all (refused key, unknown model or route)."""


def default_cache_dir() -> Path:
    """$TUNEFORGE_JUDGE_CACHE, else ~/.cache/tuneforge/judge."""
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "tuneforge" / "judge").expanduser()


def chat_url(url: str) -> str:
    """``http://host:port/v1`` (or a full ``.../chat/completions`` URL) -> the chat-completions URL."""
    url = url.rstrip("/")
    return url if url.endswith("/chat/completions") else url + "/chat/completions"


@dataclass
class JudgeReply:
    """One request's outcome: the judge's text, or why there is none after the retries."""

    text: str | None
    cached: bool = False
    error: str | None = None
    attempts: int = 0


@dataclass
class JudgeCache:
    """One JSON file per request, named by the SHA-256 of the endpoint and the request body."""

    directory: Path

    def key(self, url: str, body: dict[str, Any]) -> str:
        blob = json.dumps({"url": url, "body": body}, sort_keys=True, ensure_ascii=False)
        return hashlib.sha256(blob.encode("utf-8")).hexdigest()

    def path(self, key: str) -> Path:
        return self.directory / key[:2] / f"{key}.json"

    def get(self, key: str) -> str | None:
        try:
            entry = json.loads(self.path(key).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None  # absent, or a file cut short by a kill: asked again
        text = entry.get("answer") if isinstance(entry, dict) else None
        return text if isinstance(text, str) else None

    def put(self, key: str, url: str, body: dict[str, Any], text: str) -> None:
        """Written under a temporary name and renamed: a kill never leaves half an entry under the key."""
        target = self.path(key)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".", suffix=".tmp", dir=target.parent)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump({"url": url, "request": body, "answer": text, "time": time.time()}, fh, ensure_ascii=False)
        os.replace(tmp, target)


@dataclass
class Counters:
    sent: int = 0
    cached: int = 0
    retries: int = 0
    failed: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, **counts: int) -> None:
        with self.lock:
            for name, n in counts.items():
                setattr(self, name, getattr(self, name) + n)

    def to_dict(self) -> dict[str, int]:
        return {"sent": self.sent, "cached": self.cached, "retries": self.retries, "failed": self.failed}


@dataclass
class JudgeClient:
    """Chat completions at ``url`` with ``model``, greedy (temperature 0) so a cached answer is the answer."""

    url: str
    model: str
    cache: JudgeCache
    api_key: str | None = field(default=None, repr=False)
    max_tokens: int = 1024
    attempts: int = 6  # the first try and five retries
    backoff: float = 1.0  # seconds before the first retry; doubles each time, capped at max_wait
    max_wait: float = 30.0
    timeout: float = 120.0
    counters: Counters = field(default_factory=Counters)
    stopped: threading.Event = field(default_factory=threading.Event, repr=False)  # set by a fatal answer

    def body(self, messages: list[dict[str, str]]) -> dict[str, Any]:
        return {"model": self.model, "messages": messages, "temperature": 0, "max_tokens": self.max_tokens}

    def _wait(self, attempt: int, response: httpx.Response | None) -> float:
        retry_after = response.headers.get("retry-after") if response is not None else None
        if retry_after is not None:
            try:
                return min(max(float(retry_after), 0.0), self.max_wait)
            except ValueError:
                pass  # an HTTP date: fall back to the backoff
        return min(self.backoff * 2 ** attempt * (0.5 + random.random() / 2), self.max_wait)

    def _send(self, http: httpx.Client, body: dict[str, Any]) -> JudgeReply:
        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        url, why = chat_url(self.url), ""
        for attempt in range(self.attempts):
            response = None
            try:
                response = http.post(url, json=body, headers=headers, timeout=self.timeout)
            except httpx.TransportError as exc:
                why = f"{type(exc).__name__}: {exc}"
            else:
                if response.status_code in FATAL_STATUS:
                    self.stopped.set()  # every other request would be refused the same way: send no more
                    raise JudgeError(f"--judge {self.url}: HTTP {response.status_code}, "
                                     f"{FATAL_STATUS[response.status_code]}"
                                     f" (--judge-model {self.model!r}): {response.text[:300]}")
                if response.status_code == 200:
                    return self._read(response, attempt + 1)
                why = f"HTTP {response.status_code}: {response.text[:300]}"
                if response.status_code not in RETRY_STATUS:
                    break  # e.g. 400 for this one request: retrying cannot help
            if attempt + 1 < self.attempts:
                self.counters.add(retries=1)
                time.sleep(self._wait(attempt, response))
        self.counters.add(failed=1)
        return JudgeReply(None, error=why, attempts=attempt + 1)

    def _read(self, response: httpx.Response, attempts: int) -> JudgeReply:
        try:
            text = response.json()["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError):
            self.counters.add(failed=1)
            return JudgeReply(None, error=f"not a chat completion: {response.text[:300]}", attempts=attempts)
        return JudgeReply(text if isinstance(text, str) else "", attempts=attempts)

    def ask(self, http: httpx.Client, messages: list[dict[str, str]]) -> JudgeReply:
        """The judge's answer to one request: from the cache, else sent (and cached when it succeeds)."""
        body = self.body(messages)
        return self._ask(http, self.cache.key(chat_url(self.url), body), body)

    def _ask(self, http: httpx.Client, key: str, body: dict[str, Any]) -> JudgeReply:
        hit = self.cache.get(key)
        if hit is not None:
            self.counters.add(cached=1)
            return JudgeReply(hit, cached=True)
        if self.stopped.is_set():
            return JudgeReply(None, error="not sent: the judge refused an earlier request")
        self.counters.add(sent=1)
        reply = self._send(http, body)
        if reply.text is not None:
            self.cache.put(key, chat_url(self.url), body, reply.text)
        return reply

    def ask_all(self, requests: Sequence[list[dict[str, str]]], concurrency: int) -> list[JudgeReply]:
        """Every request's reply, in order, at most ``concurrency`` in flight; identical requests (e.g. two
        sides that gave the same answer) are asked once; a fatal error stops the rest."""
        bodies = [self.body(messages) for messages in requests]
        keys = [self.cache.key(chat_url(self.url), body) for body in bodies]
        unique = dict(zip(keys, bodies))  # first occurrence of each request, in order
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        with httpx.Client(limits=limits) as http, ThreadPoolExecutor(max_workers=concurrency) as pool:
            futures = {key: pool.submit(self._ask, http, key, body) for key, body in unique.items()}
            try:
                return [futures[key].result() for key in keys]
            except BaseException:
                for f in futures.values():
                    f.cancel()
                raise
