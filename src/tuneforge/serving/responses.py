"""Generation events → HTTP answers: one JSON body, or server-sent events ending with ``data: [DONE]``.

A client that leaves is noticed both while it waits for a whole answer (polled) and while it reads a stream
(its disconnect message), and its generation is cancelled so its batch row and request slot are freed.
"""
from __future__ import annotations

import asyncio
import json
import time
from typing import AsyncIterator

import anyio
from fastapi import Request
from fastapi.responses import JSONResponse, StreamingResponse

from . import protocol
from .batcher import Event, Sink

STATUS_TYPES = {400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error",
                405: "invalid_request_error", 429: "rate_limit_error", 500: "server_error"}
DISCONNECT_POLL_S = 0.25


class ApiError(Exception):
    """A refusal answered as an OpenAI error object."""

    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None):
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code

    def response(self) -> JSONResponse:
        kind = STATUS_TYPES.get(self.status, "invalid_request_error")
        return JSONResponse(protocol.error_body(self.message, kind, self.param, self.code), status_code=self.status)


async def events(sink: Sink, choices: int) -> AsyncIterator[Event]:
    """A request's events until all its choices finished; a generation failure ends it with the error event."""
    finished = 0
    while finished < choices:
        event = await sink.queue.get()
        yield event
        if event.kind == "error":
            return
        finished += event.kind == "finish"


async def collect(sink: Sink, choices: int, request: Request) -> tuple[dict[int, str], dict[int, str], int]:
    """Texts and finish reasons of all choices; a client that leaves while waiting cancels its generation."""
    texts: dict[int, str] = {}
    reasons: dict[int, str] = {}
    tokens = 0
    loop = asyncio.get_running_loop()
    checked = loop.time()
    while len(reasons) < choices:
        try:
            # wait on the queue itself: cancelling a queue read on timeout loses nothing
            event = await asyncio.wait_for(sink.queue.get(), DISCONNECT_POLL_S)
        except asyncio.TimeoutError:
            event = None
        if loop.time() - checked >= DISCONNECT_POLL_S:  # whether or not tokens keep coming
            checked = loop.time()
            if await request.is_disconnected():
                sink.cancel()
                raise ApiError(400, "client disconnected")
        if event is None:
            continue
        if event.kind == "error":
            raise ApiError(500, event.text)
        if event.kind == "delta":
            texts[event.index] = texts.get(event.index, "") + event.text
        else:
            reasons[event.index] = event.finish_reason or "stop"
            tokens += event.completion_tokens
    return texts, reasons, tokens


class EventStream(StreamingResponse):
    """Server-sent events that also watch for the client leaving (even while no token is due), and
    cancel the generation and free the request's slot when it does."""

    def __init__(self, content, on_close):
        super().__init__(content, media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
        self._on_close = on_close

    async def __call__(self, scope, receive, send) -> None:
        try:
            async with anyio.create_task_group() as group:
                async def stream() -> None:
                    try:
                        await self.stream_response(send)
                    except OSError:
                        pass  # the client went away mid-write
                    group.cancel_scope.cancel()

                group.start_soon(stream)
                await self.listen_for_disconnect(receive)
                group.cancel_scope.cancel()
        finally:
            await self._on_close()


def sse(data: dict | str) -> str:
    return f"data: {data if isinstance(data, str) else json.dumps(data, ensure_ascii=False)}\n\n"


async def chat_sse(sink: Sink, body: protocol.ChatCompletionRequest, prompt_tokens: int) -> AsyncIterator[str]:
    rid, created, name = protocol.new_id("chatcmpl"), int(time.time()), body.model
    for i in range(body.n):
        yield sse(protocol.chat_chunk(rid, name, created, i, {"role": "assistant", "content": ""}))
    tokens = 0
    async for event in events(sink, body.n):
        if event.kind == "error":
            yield sse(protocol.error_body(event.text, "server_error"))
            break
        if event.kind == "delta":
            yield sse(protocol.chat_chunk(rid, name, created, event.index, {"content": event.text}))
        else:
            tokens += event.completion_tokens
            yield sse(protocol.chat_chunk(rid, name, created, event.index, {}, event.finish_reason))
    if body.include_usage:
        yield sse(protocol.usage_chunk(rid, name, created, "chat.completion.chunk",
                                       protocol.usage(prompt_tokens, tokens)))
    yield sse("[DONE]")


async def completion_sse(sink: Sink, body: protocol.CompletionRequest, choices: int,
                         prompt_tokens: int) -> AsyncIterator[str]:
    rid, created, name = protocol.new_id("cmpl"), int(time.time()), body.model
    tokens = 0
    async for event in events(sink, choices):
        if event.kind == "error":
            yield sse(protocol.error_body(event.text, "server_error"))
            break
        if event.kind == "delta":
            yield sse(protocol.completion_chunk(rid, name, created, event.index, event.text))
        else:
            tokens += event.completion_tokens
            yield sse(protocol.completion_chunk(rid, name, created, event.index, "", event.finish_reason))
    if body.include_usage:
        yield sse(protocol.usage_chunk(rid, name, created, "text_completion", protocol.usage(prompt_tokens, tokens)))
    yield sse("[DONE]")
