"""The OpenAI-compatible HTTP API: ``/v1/chat/completions``, ``/v1/completions``, ``/v1/models``, ``/health``.

Every refusal is an OpenAI error object (``{"error": {"message", "type", "param", "code"}}``, plus
``detail``) with a 4xx status: 400 for a bad body or value, 401 for a missing or wrong key, 404 for an
unknown model or route, 429 when ``--max-concurrent`` requests are already in progress.
"""
from __future__ import annotations

import asyncio
import hmac
import json
import logging
from contextlib import asynccontextmanager
from dataclasses import dataclass

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..data.formats import Message
from ..httpguard import GuardSettings, RequestGuard, allowed_hosts
from ..data.templates import TemplateMismatch
from ..models import inference
from . import protocol
from .batcher import Batcher, Job, Sink
from .loading import ServedModel
from .responses import ApiError, EventStream, chat_sse, collect, completion_sse

log = logging.getLogger("tuneforge.serving")
MAX_PROMPTS = 64  # prompts in one /v1/completions request


@dataclass
class ServerSettings:
    api_key: str | None = None
    max_concurrent: int = 64  # requests in progress (generating or waiting); more are answered 429
    max_batch_size: int = 8  # sequences decoded together per model in memory
    default_max_tokens: int = 512  # when a chat request gives no max_tokens (capped by the context)
    max_body_mb: float = 4.0  # a larger request body is refused with 413 before it is read
    host: str = "127.0.0.1"  # the listening address: the Host names answered follow from it
    allowed_hosts: tuple[str, ...] = ()  # more Host names to answer (a reverse proxy's)


class ServerState:
    """The served models, their batchers and the count of requests in progress."""

    def __init__(self, models: list[ServedModel], settings: ServerSettings):
        self.models = {m.name: m for m in models}
        self.settings = settings
        self.batchers: dict[int, Batcher] = {}
        for m in models:
            if id(m.backbone) not in self.batchers:
                self.batchers[id(m.backbone)] = Batcher(m.backbone, settings.max_batch_size)
        self.in_progress = 0

    def model(self, name: str) -> ServedModel:
        found = self.models.get(name)
        if found is None:
            raise ApiError(404, f"The model '{name}' does not exist; this server serves: {', '.join(self.models)}.",
                           "model", "model_not_found")
        return found

    def batcher(self, model: ServedModel) -> Batcher:
        return self.batchers[id(model.backbone)]

    def acquire(self) -> None:
        """Count a request in; refuse it when ``max_concurrent`` are already in progress."""
        if self.in_progress >= self.settings.max_concurrent:
            raise ApiError(429, f"The server is busy: {self.in_progress} requests in progress "
                                f"(--max-concurrent {self.settings.max_concurrent}). Retry shortly.")
        self.in_progress += 1

    def release(self) -> None:
        self.in_progress -= 1

    def health(self) -> dict:
        loads = [b.load for b in self.batchers.values()]
        return {"status": "ok", "requests_in_progress": self.in_progress,
                "sequences_running": sum(x["running"] for x in loads),
                "sequences_waiting": sum(x["waiting"] for x in loads),
                "sequences_cancelled": sum(x["cancelled"] for x in loads)}


# -- request → jobs --------------------------------------------------------------------------------------


def _max_tokens(model: ServedModel, prompt_len: int, requested: int | None, default: int, field: str) -> int:
    """The answer's token budget; a prompt (plus requested answer) beyond the context is refused, naming it."""
    limit = model.context_limit
    if prompt_len >= limit:
        raise ApiError(400, f"This model's maximum context length is {limit} tokens; the prompt has {prompt_len} "
                            "tokens, leaving none for the completion.", field, "context_length_exceeded")
    if requested is not None and prompt_len + requested > limit:
        raise ApiError(400, f"This model's maximum context length is {limit} tokens; you requested "
                            f"{prompt_len + requested} tokens ({prompt_len} in the prompt, {requested} for the "
                            "completion). Reduce the prompt or max_tokens.", "max_tokens", "context_length_exceeded")
    return requested if requested is not None else min(default, limit - prompt_len)


def _check_request(state: ServerState, body: protocol._Common) -> ServedModel:
    model = state.model(body.model)
    try:
        body.check_supported()
    except protocol.UnsupportedOption as exc:
        raise ApiError(400, str(exc), exc.param, "unsupported_parameter") from None
    if body.n > state.settings.max_batch_size:
        raise ApiError(400, f"n={body.n}: at most {state.settings.max_batch_size} choices per request "
                            "(--max-batch-size).", "n")
    return model


def chat_job(state: ServerState, body: protocol.ChatCompletionRequest, sink: Sink) -> Job:
    model = _check_request(state, body)
    messages = [Message("system" if m.role == "developer" else m.role, m.text()) for m in body.messages]
    try:
        ids = inference.prompt_ids(model.tokenizer, model.source, messages)
    except TemplateMismatch as exc:
        raise ApiError(400, f"messages: {exc}", "messages") from None
    max_tokens = _max_tokens(model, len(ids), body.requested_max_tokens(), state.settings.default_max_tokens,
                             "messages")
    return Job(model, ids, body.sampling(max_tokens), sink)


def completion_jobs(state: ServerState, body: protocol.CompletionRequest, sink: Sink) -> list[Job]:
    model = _check_request(state, body)
    vocab = len(model.tokenizer)
    prompts = body.prompts()
    if not prompts:
        raise ApiError(400, "prompt: empty list; give a string, a list of strings or token ids.", "prompt")
    if len(prompts) > MAX_PROMPTS:
        raise ApiError(400, f"{len(prompts)} prompts in one request; at most {MAX_PROMPTS}.", "prompt")
    jobs = []
    for i, prompt in enumerate(prompts):
        if isinstance(prompt, str):
            ids = list(model.tokenizer(prompt, add_special_tokens=True)["input_ids"])
        else:
            ids = list(prompt)
            if any(not 0 <= t < vocab for t in ids):
                raise ApiError(400, f"prompt {i}: token ids must lie in [0, {vocab}).", "prompt")
        if not ids:
            raise ApiError(400, f"prompt {i} is empty.", "prompt")
        # the legacy completions API generates 16 tokens when max_tokens is not given
        max_tokens = _max_tokens(model, len(ids), body.max_tokens, 16, "prompt")
        jobs.append(Job(model, ids, body.sampling(max_tokens), sink, first_index=i * body.n))
    return jobs


# -- the application ----------------------------------------------------------------------------------------


def _api_key_check(state: ServerState):
    """A dependency: ``Authorization: Bearer KEY`` must match, compared in constant time."""
    async def check(request: Request) -> None:
        key = state.settings.api_key
        if key is None:
            return
        given = request.headers.get("authorization", "")
        scheme, _, token = given.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), key.encode()):
            raise ApiError(401, "Missing or incorrect API key: send 'Authorization: Bearer <key>'.",
                           None, "invalid_api_key")
    return check


def _validation_message(exc: RequestValidationError) -> tuple[str, str | None]:
    first = (exc.errors() or [{}])[0]
    if first.get("type") == "json_invalid":
        return f"The request body is not valid JSON ({first.get('ctx', {}).get('error', 'parse error')}).", None
    loc = [str(x) for x in first.get("loc", ()) if x != "body"]
    # the union members a value was tried against show up in loc; keep the field path only
    param = ".".join(x for x in loc if not x.startswith(("str", "list[", "int", "function-")) and x != "TextPart")
    value = first.get("input")
    if isinstance(value, (bytes, bytearray)):  # a body sent without 'Content-Type: application/json'
        return "The request body must be a JSON object (send 'Content-Type: application/json').", None
    shown = "" if isinstance(value, dict) or value is None else f" (got {json.dumps(value, default=str)[:80]})"
    return f"{param or 'body'}: {first.get('msg', 'invalid value')}{shown}.", param or None


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def api_error(_request, exc: ApiError):
        return exc.response()

    @app.exception_handler(RequestValidationError)
    async def bad_body(_request, exc: RequestValidationError):
        message, param = _validation_message(exc)
        return ApiError(400, message, param).response()

    @app.exception_handler(Exception)
    async def unexpected(_request, exc: Exception):
        log.exception("request failed")
        return ApiError(500, f"internal error: {exc.__class__.__name__}").response()

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request, exc: StarletteHTTPException):
        return ApiError(exc.status_code, str(exc.detail)).response()


def create_app(models: list[ServedModel], settings: ServerSettings | None = None) -> FastAPI:
    """The FastAPI application; its batchers start and stop with it (lifespan)."""
    state = ServerState(models, settings or ServerSettings())

    @asynccontextmanager
    async def lifespan(_app):
        for batcher in state.batchers.values():
            batcher.start()
        try:
            yield
        finally:
            for batcher in state.batchers.values():
                batcher.close()

    app = FastAPI(title="tuneforge serve", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.serving = state
    _install_error_handlers(app)
    limit = int(state.settings.max_body_mb * 2**20)
    app.add_middleware(RequestGuard, settings=GuardSettings(
        hosts=allowed_hosts(state.settings.host, state.settings.allowed_hosts), body_limit=lambda _path: limit,
        refuse=lambda status, message, param: ApiError(status, message, param).response()))
    auth = [Depends(_api_key_check(state))]
    _add_model_routes(app, state, auth)
    _add_generation_routes(app, state, auth)
    return app


def _model_entry(model: ServedModel) -> dict:
    return {"id": model.name, "object": "model", "created": model.created, "owned_by": "tuneforge",
            "root": model.path, "parent": model.backbone.key if model.source.adapter else None,
            "max_model_len": model.context_limit, "kind": model.kind}


def _add_model_routes(app: FastAPI, state: ServerState, auth) -> None:
    @app.get("/health")
    async def health() -> dict:
        return state.health()

    @app.get("/v1/models", dependencies=auth)
    async def list_models() -> dict:
        return {"object": "list", "data": [_model_entry(m) for m in state.models.values()]}

    @app.get("/v1/models/{name:path}", dependencies=auth)
    async def get_model(name: str) -> dict:
        return _model_entry(state.model(name))


def _add_generation_routes(app: FastAPI, state: ServerState, auth) -> None:
    @app.post("/v1/chat/completions", dependencies=auth)
    async def chat(body: protocol.ChatCompletionRequest, request: Request):
        sink = Sink(asyncio.get_running_loop())
        # templating and tokenizing a long conversation takes a while: not on the loop that serves /health
        job = await run_in_threadpool(chat_job, state, body, sink)
        return await _run(state, [job], sink, request, body, chat=True)

    @app.post("/v1/completions", dependencies=auth)
    async def completions(body: protocol.CompletionRequest, request: Request):
        sink = Sink(asyncio.get_running_loop())
        jobs = await run_in_threadpool(completion_jobs, state, body, sink)
        return await _run(state, jobs, sink, request, body, chat=False)


async def _run(state: ServerState, jobs: list[Job], sink: Sink, request: Request, body, chat: bool):
    """Submit the jobs, then answer with one JSON body or a stream; the slot is held until the answer ends."""
    state.acquire()
    released = False

    async def release() -> None:
        nonlocal released
        if not released:
            released = True
            sink.cancel()
            state.release()

    try:
        for job in jobs:
            state.batcher(job.model).submit(job)
        prompt_tokens = sum(len(j.prompt_ids) for j in jobs)
        choices = len(jobs) * body.n
        if body.stream:
            content = (chat_sse(sink, body, prompt_tokens) if chat
                       else completion_sse(sink, body, choices, prompt_tokens))
            return EventStream(content, release)
        texts, reasons, tokens = await collect(sink, choices, request)
    except BaseException:
        await release()
        raise
    await release()
    build = protocol.chat_response if chat else protocol.completion_response
    rid = protocol.new_id("chatcmpl" if chat else "cmpl")
    return build(rid, body.model, texts, reasons, protocol.usage(prompt_tokens, tokens))
