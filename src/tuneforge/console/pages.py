"""Page routes of the console. Each page renders from ``app.state.service`` (the task service object, see
docs/service.md) and its script then follows the JSON API live."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from markupsafe import Markup

from ..config import BUILTIN_MODEL, PER_RUN_KEYS
from ..training.trackers.manager import read_trackers_file
from . import fields
from .vocabulary import (DEFAULT_METHOD, METHOD_KEYS, method_choices, metric_text, metric_unit, page_vocabulary,
                         resolved_config)
from .evaluations import list_evaluations, read_evaluation
from .strategy_charts import charts_for

TEMPLATE_DIR = Path(__file__).parent / "templates"
# The repository's example data (present in a source checkout, not in an installed wheel).
EXAMPLE_DATA_DIR = Path(__file__).resolve().parents[3] / "examples" / "data"
EXAMPLE_FILES = ("sft_train.jsonl", "sft_val.jsonl", "dpo_train.jsonl", "dpo_val.jsonl")
STATIC_DIR = Path(__file__).parent / "static"
NAV = (("/models", "Models", "models"), ("/datasets", "Data sets", "datasets"), ("/tasks/new", "New task", "new"),
       ("/tasks", "Tasks", "tasks"), ("/sweeps", "Sweeps", "sweeps"), ("/compare", "Compare", "compare"))

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=str(TEMPLATE_DIR))


class PageError(Exception):
    """A page that cannot be shown (unknown task, no service): rendered as an error page with this status."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def static_url(path: str) -> str:
    """``/static/path?v=mtime``: browsers cache the file until it changes."""
    try:
        version = int((STATIC_DIR / path).stat().st_mtime)
    except OSError:
        version = 0
    return f"/static/{path}?v={version}"


def to_json(value: Any) -> Markup:
    """JSON safe to embed in a ``<script type="application/json">`` element."""
    text = json.dumps(value, ensure_ascii=False, default=str)
    return Markup(text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026"))


def utc_text(value: Any) -> str:
    """'2026-11-29T05:10:02Z' as '2026-11-29 05:10:02 UTC' ('–' when unset)."""
    if not value:
        return "–"
    return str(value).replace("T", " ").rstrip("Z") + " UTC"


templates.env.globals.update(static=static_url, nav=NAV)
templates.env.filters["utc"] = utc_text
templates.env.filters["metric"] = metric_text
templates.env.filters["metric_unit"] = metric_unit
templates.env.filters["resolved"] = resolved_config
templates.env.filters["tojson_safe"] = to_json


def render(request: Request, template: str, page: str, title: str, status_code: int = 200, **context: Any) -> Response:
    vocab = page_vocabulary(getattr(request.app.state, "service", None))  # base.html's tf-vocabulary block
    return templates.TemplateResponse(request, template, {"page": page, "title": title, "vocab": vocab, **context},
                                      status_code=status_code)


def service_of(request: Request):
    service = getattr(request.app.state, "service", None)
    if service is None:
        raise PageError(503, "The task service is not running in this process.")
    return service


def call(fn, *args: Any, **kwargs: Any) -> Any:
    """Call a service method; its user errors (``.status`` 4xx) become an error page, not a traceback."""
    try:
        return fn(*args, **kwargs)
    except Exception as exc:  # the service's ServiceError subclasses carry the HTTP status
        status = getattr(exc, "status", None)
        if isinstance(status, int) and 400 <= status < 500:
            raise PageError(status, str(exc)) from None
        raise


async def page_error_handler(request: Request, exc: PageError) -> Response:
    title = {404: "Not found", 503: "Service unavailable"}.get(exc.status, "Cannot show this page")
    return render(request, "error.html", "", title, status_code=exc.status, message=exc.message)


def gallery_models(service) -> list[dict]:
    """Gallery entries as dicts (the service's list, the gallery's data file; when that cannot be read, just the
    built-in model's name, so the form still offers it)."""
    try:
        models = list(service.models())
    except Exception:  # noqa: BLE001 - a broken gallery must not take the console down
        models = []
    return models or [{"id": BUILTIN_MODEL, "hub_id": BUILTIN_MODEL}]


def recommended(model: str, strategy: str, method: str) -> dict[str, Any]:
    """The gallery's recommended keys for the form, or just model and strategy for a model not in it."""
    try:
        from ..gallery import recommended_config

        return recommended_config(model, strategy, method)
    except Exception:  # noqa: BLE001 - unknown model/method: the form still opens with the user's choice
        values: dict[str, Any] = {"model": model, "training_strategy": strategy}
        values.update(METHOD_KEYS.get(method, {}))
        return values


def default_dataset(datasets: list[dict], strategy: str) -> str:
    """The largest uploaded data set made for ``strategy`` (a validation file is usually the smaller one)."""
    fitting = [d for d in datasets if d.get("training_strategy") in (None, strategy)] or datasets
    return max(fitting, key=lambda d: d.get("rows") or 0)["path"]


def validation_partner(datasets: list[dict], train_path: str | None) -> str | None:
    """The data set named like the training one with 'val'/'validation'/'dev'/'eval' for 'train' (x_train.jsonl ->
    x_val.jsonl), so the usual pair is chosen together; None when there is no such data set."""
    by_path = {d["path"]: d for d in datasets}
    train = by_path.get(train_path or "")
    if not train or "train" not in train["name"]:
        return None
    names = {d["name"]: d["path"] for d in datasets}
    for word in ("val", "validation", "dev", "eval"):
        candidate = names.get(train["name"].replace("train", word))
        if candidate:
            return candidate
    return None


def int_id(value: str, what: str = "task") -> int:
    try:
        number = int(value)
    except ValueError:
        raise PageError(404, f"{what} id {value!r}: not a number.") from None
    if not 0 <= number < 2**63:  # SQLite's ids are signed 64-bit: larger ones name nothing
        raise PageError(404, f"{what} {value}: no such {what}.")
    return number


# -- pages ----------------------------------------------------------------------------------------------------


@router.get("/")
def home() -> Response:
    return RedirectResponse("/tasks", status_code=307)


@router.get("/models")
def models_page(request: Request) -> Response:
    service = service_of(request)
    return render(request, "models.html", "models", "Models", models=gallery_models(service),
                  methods=method_choices())


@router.get("/datasets")
def datasets_page(request: Request) -> Response:
    service = service_of(request)
    return render(request, "datasets.html", "datasets", "Data sets", datasets=call(service.list_datasets),
                  examples=[p.name for p in example_files()])


def example_files() -> list[Path]:
    return [EXAMPLE_DATA_DIR / name for name in EXAMPLE_FILES if (EXAMPLE_DATA_DIR / name).is_file()]


@router.post("/datasets/examples")
def add_example_datasets(request: Request) -> Response:
    """Add the repository's example data sets (those not added yet), so a first task needs no file of one's own."""
    service = service_of(request)
    have = {d["name"] for d in call(service.list_datasets)}
    for path in example_files():
        if path.name not in have:
            call(service.add_dataset, path.name, path.read_bytes())
    return RedirectResponse("/datasets", status_code=303)


@router.get("/datasets/{dataset_id}")
def dataset_page(request: Request, dataset_id: str) -> Response:
    service = service_of(request)
    dataset = call(service.get_dataset, int_id(dataset_id, "data set"))
    return render(request, "dataset.html", "datasets", f"Data set {dataset.get('name', dataset_id)}",
                  dataset=dataset, models=gallery_models(service))


@router.get("/tasks")
def tasks_page(request: Request, status: str = "") -> Response:
    service = service_of(request)
    return render(request, "tasks.html", "tasks", "Tasks", tasks=call(service.list_tasks), status_filter=status)


def form_prefill(service, model: str, strategy: str, method: str, clone: str, dataset: str,
                 datasets: list[dict]) -> tuple[dict[str, Any], str]:
    """The new-task form's starting values and name: a cloned task's config, or the gallery's recommendation for
    the model, strategy and method; then the data (the chosen data set, else the strategy's largest one, with
    its validation partner)."""
    # Links carry these; a mistyped one opens the form with the usual choice instead of an unusable form.
    strategy = strategy if strategy in {st["value"] for st in fields.strategies()} else "sft"
    method = method if method in dict(method_choices()) else DEFAULT_METHOD
    name = ""
    if clone:
        source = call(service.get_task, int_id(clone))
        prefill = {k: v for k, v in (source.get("config") or {}).items()
                   if k in fields.FIELDS and k not in PER_RUN_KEYS}
        name = f"{source.get('name') or 'task'}-copy"
    else:
        prefill = recommended(model, strategy, method)
    if dataset:
        prefill["train_data"] = call(service.get_dataset, int_id(dataset, "data set"))["path"]
    elif "train_data" not in prefill and datasets:
        prefill["train_data"] = default_dataset(datasets, prefill.get("training_strategy", "sft"))
    if not clone and "validation_data" not in prefill:
        partner = validation_partner(datasets, prefill.get("train_data"))
        if partner:
            prefill["validation_data"] = partner
    return prefill, name


@router.get("/tasks/new")
def new_task_page(request: Request, model: str = BUILTIN_MODEL, strategy: str = "sft", method: str = DEFAULT_METHOD,
                  clone: str = "", dataset: str = "") -> Response:
    service = service_of(request)
    datasets = call(service.list_datasets)
    prefill, name = form_prefill(service, model, strategy, method, clone, dataset, datasets)
    return render(request, "new_task.html", "new", "New task", prefill=prefill, name=name, datasets=datasets,
                  models=gallery_models(service), guide=fields.guide_fields(), advanced=fields.advanced_groups(),
                  form_keys=fields.form_keys(), methods=method_choices(), strategies=fields.strategies(),
                  cloned_from=clone,
                  examples=[p.name for p in example_files()])


@router.get("/tasks/{task_id}")
def task_page(request: Request, task_id: str) -> Response:
    service = service_of(request)
    task = call(service.get_task, int_id(task_id))
    outputs = call(service.outputs, task["id"])  # the same view as GET /api/tasks/ID/outputs, which task.js follows
    return render(request, "task.html", "tasks", f"Task {task.get('name') or task['id']}", task=task,
                  outputs=outputs, deployable=outputs["has_model"],
                  trackers=read_trackers_file(task["run_dir"]) if task.get("run_dir") else {},
                  strategy_charts=charts_for(task.get("config") or {}))


@router.get("/tasks/{task_id}/evaluations")
def evaluations_page(request: Request, task_id: str, name: str = "") -> Response:
    """The task's `tuneforge eval` results: metrics, judge summary, and every row's answers side by side."""
    service = service_of(request)
    task = call(service.get_task, int_id(task_id))
    found = list_evaluations(task.get("run_dir"))
    chosen = name or (found[0]["name"] if found else "")
    shown = read_evaluation(task["run_dir"], chosen) if chosen and task.get("run_dir") else None
    if chosen and shown is None:
        raise PageError(404, f"task {task['id']} has no evaluation named {chosen!r}.")
    return render(request, "evaluations.html", "tasks", f"Evaluations of {task.get('name') or task['id']}",
                  task=task, evaluations=found, shown=shown, datasets=call(service.list_datasets))


@router.get("/tasks/{task_id}/chat")
def chat_page(request: Request, task_id: str) -> Response:
    """The chat playground of a task's deployment (the service's chat endpoint forwards to its server)."""
    service = service_of(request)
    task = call(service.get_task, int_id(task_id))
    deployment = call(service.deployments.get, task["id"], True)
    return render(request, "chat.html", "tasks", f"Chat with {task.get('name') or task['id']}", task=task,
                  deployment=deployment, deployable=service.deployable(task))


@router.get("/tasks/{task_id}/files/{path:path}")
def task_file(request: Request, task_id: str, path: str) -> Response:
    """Download one file of the task's run directory (the adapter, the config, the logs); the same file as
    ``GET /api/tasks/ID/files/PATH``, with an error page instead of JSON."""
    service = service_of(request)
    target = call(service.output_file, int_id(task_id), path)
    return FileResponse(target, filename=target.name)


@router.get("/sweeps")
def sweeps_page(request: Request) -> Response:
    service = service_of(request)
    return render(request, "sweeps.html", "sweeps", "Sweeps", sweeps=call(service.list_sweeps))


@router.get("/sweeps/{sweep_id}")
def sweep_page(request: Request, sweep_id: str) -> Response:
    """A sweep's trials, their curves and the winner (service/sweeps.py's view; sweep.js follows it live)."""
    service = service_of(request)
    sweep = call(service.get_sweep, int_id(sweep_id, "sweep"))
    return render(request, "sweep.html", "sweeps", f"Sweep {sweep['name']}", sweep=sweep)


@router.get("/compare")
def compare_page(request: Request, ids: list[str] = Query(default=[])) -> Response:
    service = service_of(request)
    wanted = [int_id(part) for raw in ids for part in raw.split(",") if part.strip()]
    chosen = [call(service.get_task, i) for i in dict.fromkeys(wanted)]
    return render(request, "compare.html", "compare", "Compare tasks", tasks=chosen,
                  all_tasks=call(service.list_tasks), rows=config_rows(chosen), machine_gpus=service.gpus)


def config_rows(tasks: list[dict]) -> list[dict]:
    """One row per config key set in any of the tasks: the values side by side (a key a task did not set shows
    its default, marked) and whether they differ."""
    defaults = fields.defaults()
    keys: list[str] = []
    for task in tasks:
        keys += [k for k in (task.get("config") or {}) if k not in keys]
    rows = []
    for key in keys:
        cells, effective = [], []
        for task in tasks:
            config = task.get("config") or {}
            value = config.get(key, defaults.get(key))
            text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
            effective.append(text)
            cells.append({"text": text, "default": key not in config})
        differs = key not in PER_RUN_KEYS and len(set(effective)) > 1
        rows.append({"key": key, "cells": cells, "differs": differs})
    rows.sort(key=lambda r: (not r["differs"], r["key"]))
    return rows
