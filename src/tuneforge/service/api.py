"""The HTTP API (FastAPI): every route under ``/api``, JSON in and out, errors as ``{"detail": "..."}`` with a
4xx code naming the key or field. ``create_api`` builds the app around one ``TaskService`` (stored at
``app.state.service``) with the request guard and the token check; ``tuneforge.apps.create_app`` adds the web
console's pages on top."""
from __future__ import annotations

import hmac
from contextlib import asynccontextmanager
from typing import Annotated, Any, Optional
from urllib.parse import urlencode

from fastapi import Body, FastAPI, File, Form, Path, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, StreamingResponse

from . import preimport, sweeps
from .core import TaskService
from ..httpguard import GuardSettings, RequestGuard, allowed_hosts
from .errors import BadRequest, ServiceError
from .events import parse_position, task_events
from .settings import Settings

# Task and data-set ids as SQLite stores them (signed 64-bit): a larger number is a 400 naming the parameter,
# not an overflow inside the database.
RowId = Annotated[int, Path(ge=0, le=2**63 - 1)]

TOKEN_COOKIE = "tuneforge_token"
TASK_FIELDS = {"config", "name", "gpus"}


def _error(status: int, detail: str, key: str | None = None, errors: list[dict] | None = None) -> JSONResponse:
    extra = {"key": key} if key else {}
    if errors:
        extra["errors"] = errors
    return JSONResponse({"detail": detail, **extra}, status_code=status)


# pydantic's error types in words (a page shows these next to the field; no library wording reaches a user)
VALIDATION_WORDS = {"int_parsing": "expected a whole number", "int_type": "expected a whole number",
                    "int_from_float": "expected a whole number", "float_parsing": "expected a number",
                    "float_type": "expected a number", "bool_parsing": "expected true or false",
                    "bool_type": "expected true or false", "string_type": "expected text", "missing": "missing",
                    "greater_than_equal": "must be >= {ge}", "less_than_equal": "must be <= {le}",
                    "greater_than": "must be > {gt}", "less_than": "must be < {lt}"}


def _validation_words(error: dict) -> str:
    template = VALIDATION_WORDS.get(error.get("type", ""))
    if template is None:
        return error.get("msg", "invalid value")
    words = template.format(**(error.get("ctx") or {}))
    given = error.get("input")
    return f"{words} (got {str(given)[:60]!r})" if isinstance(given, str) and error.get("type") != "missing" else words


def _supplied_token(request: Request) -> str | None:
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    return request.headers.get("x-tuneforge-token") or request.query_params.get("token") or \
        request.cookies.get(TOKEN_COOKIE)


def _install_token_check(app: FastAPI, token: str) -> None:
    expected = token.encode("utf-8")

    @app.middleware("http")
    async def check_token(request: Request, call_next):
        supplied = (_supplied_token(request) or "").encode("utf-8")
        if not hmac.compare_digest(supplied, expected):  # constant time: no guessing by response timing
            return _error(401, "missing or wrong token: send 'Authorization: Bearer TOKEN' (the token "
                               "'tuneforge console' printed), or open a page once with ?token=TOKEN.")
        if request.query_params.get("token") and request.method == "GET" and not request.url.path.startswith("/api/"):
            # a browser opened a link with the token: remember it in a cookie and take it out of the address
            # bar (and so out of the history, bookmarks and Referer headers)
            kept = [(k, v) for k, v in request.query_params.multi_items() if k != "token"]
            response = RedirectResponse(request.url.path + (f"?{urlencode(kept)}" if kept else ""), status_code=303)
        else:
            response = await call_next(request)
        if request.query_params.get("token"):
            response.set_cookie(TOKEN_COOKIE, token, httponly=True, samesite="strict")
        return response


UPLOAD_OVERHEAD = 1 << 20  # multipart framing and the name field around an upload's bytes


def _install_guard(app: FastAPI, settings: Settings) -> None:
    """Host, same-origin and body-size checks before any route (httpguard's docstring)."""
    upload_limit = int(settings.upload_limit_mb * 2**20) + UPLOAD_OVERHEAD
    body_limit = int(settings.max_body_mb * 2**20)

    def limit_for(path: str) -> int:
        return upload_limit if path.rstrip("/") == "/api/datasets" else body_limit

    app.add_middleware(RequestGuard, settings=GuardSettings(
        hosts=allowed_hosts(settings.host, settings.allowed_hosts), body_limit=limit_for,
        refuse=lambda status, message, key: _error(status, message, key)))


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ServiceError)
    async def service_error(request: Request, exc: ServiceError):
        return _error(exc.status, str(exc), exc.key, exc.errors)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError):
        first = exc.errors()[0] if exc.errors() else {}
        if first.get("type") == "json_invalid":
            why = (first.get("ctx") or {}).get("error", "")
            return _error(400, f"body: not valid JSON ({why}).", "body")
        where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path"))
        return _error(400, f"{where or 'request'}: {_validation_words(first)}.", where or None)


def _task_body(payload: Any) -> dict:
    if not isinstance(payload, dict):
        raise BadRequest('body: expected a JSON object {"config": {...}, "name": "...", "gpus": N}.', "body")
    unknown = sorted(set(payload) - TASK_FIELDS)
    if unknown:
        raise BadRequest(f"{unknown[0]}: unknown field (a task takes config, name, gpus; config keys go inside "
                         "\"config\").", unknown[0])
    if "config" not in payload:
        raise BadRequest('config: missing (body: {"config": {...the YAML keys...}}).', "config")
    return payload


def _task_routes(app: FastAPI, service: TaskService) -> None:
    @app.get("/api/info")
    def info() -> dict:
        return service.info()

    @app.get("/api/tasks")
    def list_tasks(status: Optional[str] = None) -> list:
        return service.list_tasks(status)

    @app.post("/api/tasks", status_code=201)
    def submit(payload: Any = Body(...)) -> dict:
        body = _task_body(payload)
        return service.submit(body["config"], body.get("name"), body.get("gpus"))

    @app.post("/api/tasks/validate")
    def validate(payload: Any = Body(...)) -> dict:
        body = _task_body(payload)
        return service.validate(body["config"], body.get("gpus"))

    @app.post("/api/tasks/import", status_code=201)
    def import_run(payload: Any = Body(...)) -> dict:
        if not isinstance(payload, dict) or not isinstance(payload.get("path"), str):
            raise BadRequest('path: expected {"path": "RUN_DIR"}.', "path")
        return service.import_run(payload["path"], payload.get("name"))

    @app.get("/api/tasks/{task_id}")
    def get_task(task_id: RowId) -> dict:
        return service.get_task(task_id)

    @app.get("/api/tasks/{task_id}/metrics")
    def metrics(task_id: RowId, after: int = 0) -> list:
        return service.metrics(task_id, after)

    @app.get("/api/tasks/{task_id}/generations")
    def generations(task_id: RowId, last: int = 1) -> list:
        return service.generations(task_id, last)

    @app.get("/api/tasks/{task_id}/resources")
    def resources(task_id: RowId, after: int = 0) -> list:
        return service.resources(task_id, after)

    @app.get("/api/tasks/{task_id}/log")
    def log(task_id: RowId, offset: int = 0, limit: int = 65536) -> dict:
        return service.log(task_id, offset, limit)

    @app.get("/api/tasks/{task_id}/events")
    def events(task_id: RowId, request: Request, position: Optional[str] = None):
        try:
            start = parse_position(request.headers.get("last-event-id") or position)
        except ValueError as exc:
            raise BadRequest(str(exc), "Last-Event-ID") from None
        service.get_task(task_id)  # 404 now, not inside the stream
        stream = task_events(service, task_id, start, request.is_disconnected)
        return StreamingResponse(stream, media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})



def _output_routes(app: FastAPI, service: TaskService) -> None:
    """The run directory's files: the list the task page shows, and one file's download."""
    @app.get("/api/tasks/{task_id}/outputs")
    def outputs(task_id: RowId) -> dict:
        return service.outputs(task_id)

    @app.get("/api/tasks/{task_id}/files/{path:path}")
    def download(task_id: RowId, path: str) -> FileResponse:
        target = service.output_file(task_id, path)
        return FileResponse(target, filename=target.name)


def _task_control_routes(app: FastAPI, service: TaskService) -> None:
    @app.post("/api/tasks/{task_id}/stop")
    def stop(task_id: RowId) -> dict:
        return service.stop(task_id)

    @app.post("/api/tasks/{task_id}/resume")
    def resume(task_id: RowId) -> dict:
        return service.resume(task_id)

    @app.post("/api/tasks/{task_id}/clone", status_code=201)
    def clone(task_id: RowId, payload: Any = Body(None)) -> dict:
        name = payload.get("name") if isinstance(payload, dict) else None
        return service.clone(task_id, name)

    @app.delete("/api/tasks/{task_id}")
    def delete(task_id: RowId, files: bool = False) -> dict:
        return service.delete(task_id, files)


def _deployment_routes(app: FastAPI, service: TaskService) -> None:
    @app.post("/api/tasks/{task_id}/deploy")
    def deploy(task_id: RowId) -> dict:
        return service.deployments.deploy(task_id)

    @app.post("/api/tasks/{task_id}/export", status_code=202)
    def export(task_id: RowId, payload: Any = Body(None)) -> dict:
        dtype = payload.get("dtype", "f16") if isinstance(payload, dict) else "f16"
        return service.export(task_id, dtype)

    @app.get("/api/tasks/{task_id}/export")
    def export_status(task_id: RowId) -> dict:
        return service.export_status(task_id)

    @app.post("/api/tasks/{task_id}/evaluations", status_code=202)
    def evaluate(task_id: RowId, payload: Any = Body(...)) -> dict:
        return service.evaluate(task_id, payload)

    @app.get("/api/tasks/{task_id}/evaluations")
    def evaluation_status(task_id: RowId) -> dict:
        return service.evaluation_status(task_id)

    @app.get("/api/tasks/{task_id}/deployment")
    def deployment(task_id: RowId) -> dict:
        return service.deployments.get(task_id)

    @app.delete("/api/tasks/{task_id}/deployment")
    def undeploy(task_id: RowId) -> dict:
        return service.deployments.undeploy(task_id)

    @app.post("/api/tasks/{task_id}/deployment/chat")
    def chat(task_id: RowId, payload: Any = Body(...)):
        if isinstance(payload, dict) and payload.get("stream") is True:  # token by token, as server-sent events
            return StreamingResponse(service.deployments.chat_stream(task_id, payload), media_type="text/event-stream",
                                     headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        return service.deployments.chat(task_id, payload)


def _sweep_routes(app: FastAPI, service: TaskService) -> None:
    """Sweeps (service/sweeps.py): a group of trial tasks from a grid or random draws, with early stopping."""
    @app.post("/api/sweeps", status_code=201)
    def create_sweep(payload: Any = Body(...)) -> dict:
        return sweeps.create(service, payload)

    @app.post("/api/sweeps/validate")
    def validate_sweep(payload: Any = Body(...)) -> dict:
        planned = sweeps.plan(service, payload)
        return {"ok": True, "trial_count": len(planned["trials"]), "trials": [t["params"] for t in planned["trials"]]}

    @app.get("/api/sweeps")
    def list_sweeps() -> list:
        return sweeps.list_all(service)

    @app.get("/api/sweeps/{sweep_id}")
    def get_sweep(sweep_id: RowId) -> dict:
        return sweeps.get(service, sweep_id)

    @app.post("/api/sweeps/{sweep_id}/stop")
    def stop_sweep(sweep_id: RowId) -> dict:
        return sweeps.stop(service, sweep_id)


def _dataset_routes(app: FastAPI, service: TaskService) -> None:
    @app.get("/api/datasets")
    def list_datasets() -> list:
        return service.list_datasets()

    @app.post("/api/datasets", status_code=201)
    def upload(file: UploadFile = File(...), name: Optional[str] = Form(None)) -> dict:
        return service.add_dataset(file.filename or "data.jsonl", file.file, name)  # streamed, counted, hashed

    @app.get("/api/datasets/{dataset_id}")
    def get_dataset(dataset_id: RowId) -> dict:
        return service.get_dataset(dataset_id)

    @app.get("/api/datasets/{dataset_id}/preview")
    def preview(dataset_id: RowId, n: int = 5, model: Optional[str] = None, training_strategy: Optional[str] = None,
                seq_length: Optional[int] = None, apply_chat_template: Optional[bool] = None,
                system_prompt: Optional[str] = None) -> dict:
        return service.dataset_preview(dataset_id, n, model=model, training_strategy=training_strategy,
                                       seq_length=seq_length, apply_chat_template=apply_chat_template,
                                       system_prompt=system_prompt)

    @app.get("/api/datasets/{dataset_id}/stats")
    def stats(dataset_id: RowId, model: Optional[str] = None, training_strategy: Optional[str] = None,
              seq_length: Optional[int] = None, apply_chat_template: Optional[bool] = None,
              system_prompt: Optional[str] = None) -> dict:
        return service.dataset_stats(dataset_id, model=model, training_strategy=training_strategy,
                                     seq_length=seq_length, apply_chat_template=apply_chat_template,
                                     system_prompt=system_prompt)

    @app.get("/api/models")
    def models() -> list:
        return service.models()


def create_api(settings: Settings | None = None, service: TaskService | None = None, *,
               start_worker: bool = True) -> FastAPI:
    """The service's FastAPI app (the API alone; ``tuneforge.apps.create_app`` is the console's app).
    The worker starts with the app (lifespan) and stops with it; running tasks
    are left running (they are re-attached at the next start)."""
    service = service or TaskService(settings or Settings())

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        preimport.ensure()  # before the first request: concurrent first imports of transformers race
        if start_worker:
            service.start()
        try:
            yield
        finally:
            service.close()

    app = FastAPI(title="tuneforge task service", lifespan=lifespan,
                  description="Training tasks (queue, monitoring, control), datasets and models.")
    app.state.service = service
    if service.settings.token:
        _install_token_check(app, service.settings.token)
    _install_guard(app, service.settings)  # outermost: a foreign Host or site is refused before the token check
    _install_error_handlers(app)
    _task_routes(app, service)
    _output_routes(app, service)
    _task_control_routes(app, service)
    _deployment_routes(app, service)
    _sweep_routes(app, service)
    _dataset_routes(app, service)
    return app
