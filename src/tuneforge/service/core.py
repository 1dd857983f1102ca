"""The service object: every operation of the task service, called by the HTTP API, the console's pages and
the tests alike. Results are plain JSON-able dicts; user errors raise ``ServiceError`` carrying the HTTP status
and a message naming the key or field."""
from __future__ import annotations

import re
import shutil
import threading
import uuid
from pathlib import Path
from typing import Any, BinaryIO

import yaml

from ..config import FIELDS, OUTPUT_KEYS, PER_RUN_KEYS, from_dict, value_errors
from ..errors import ConfigError, DataError, TuneforgeError
from ..machine_check import check_machine
from ..preflight import data_paths
from ..pathtext import path_text_problem
from . import FINAL_STATUSES, INTERRUPTED, QUEUED, RESUMABLE, RUNNING, STATUSES, STOPPED, SUCCEEDED
from . import dataadapter, downloads, uploads
from .deploy import Deployments, has_model
from .evaluations import Evaluations
from .exports import Exports
from .errors import BadRequest, Conflict, NotFound
from .estimate import memory_estimate
from .executors import Executor, make_executor
from .paths import PathPolicy, PathRefused
from .pruning import Pruner
from .runfiles import summarize_run
from .sampler import gpu_count
from .settings import Settings
from .store import Store, utc_now
from .taskconfig import write_task_config
from .worker import Capacity, Worker, WorkerHooks
from ..rundir import CONFIG_FILE as FINISHED_MARKER  # written last by a run: its presence means finished
from ..rundir import (GENERATIONS_FILE, LOG_FILE, METRICS_FILE, RESOURCES_FILE, init_run_dir, lock_holder, read_jsonl,
                      read_log)

PREVIEW_KEYS = ("model", "training_strategy", "seq_length", "apply_chat_template", "system_prompt")


def config_error_key(message: str) -> str | None:
    """The config key a ConfigError message is about (messages start with ``key=value`` or name the key)."""
    match = re.match(r"(?:unknown config key ')?([A-Za-z_][\w.]*)", message)
    if match and (match.group(1) in FIELDS or message.startswith("unknown config key")):
        return match.group(1)
    found = [k for k in FIELDS if re.search(rf"\b{re.escape(k)}\b", message)]
    return found[0] if found else None


def _data_paths(config: dict[str, Any]) -> list[str]:
    """Every data file a task config names (preflight's reading of train_data, plus validation_data)."""
    return [p for p in [*data_paths(config.get("train_data")), config.get("validation_data")]
            if isinstance(p, str) and p]


def _attempt_seconds(row: dict) -> float:
    """Seconds the task's last attempt ran (started_at to finished_at; 0 when either is missing)."""
    from datetime import datetime

    try:
        started, finished = (datetime.fromisoformat(str(row[k]).replace("Z", "+00:00"))
                             for k in ("started_at", "finished_at"))
    except (KeyError, TypeError, ValueError):
        return 0.0
    return max(0.0, (finished - started).total_seconds())


def _start_time(pid: int | None) -> float | None:
    import psutil

    try:
        return psutil.Process(pid).create_time() if pid else None
    except psutil.Error:
        return None


class TaskService:
    """Tasks, datasets and models of one ``TUNEFORGE_HOME``; ``start()`` recovers tasks and starts the worker."""

    def __init__(self, settings: Settings, executor: Executor | None = None):
        settings.make_dirs()
        self.settings = settings
        self.store = Store(settings.db_path)
        self.policy = PathPolicy(settings)
        self.executor = executor or make_executor(settings.executor, settings.ray_address)
        gpus = gpu_count()
        self.capacity = Capacity(gpus=gpus, max_concurrent=settings.max_concurrent or max(1, gpus))
        self.changed = threading.Condition()  # notified whenever a task changes (event streams wait on it)
        # The service builds its worker and hands it what it works with; the worker never reaches back here.
        # The pruner stops a trial through the worker's stop path, so it reaches the worker when it prunes.
        self.pruner = Pruner(self.store, lambda task: self.worker.request_stop(task), self.notify)
        self.worker = Worker(self.store, self.executor, settings, self.capacity, WorkerHooks(
            notify=self.notify, check_datasets=self.check_datasets, scan_runs=self.scan_runs,
            sweep_pass=self.pruner.check))
        self.deployments = Deployments(self.store)
        self.exports = Exports()
        self.evaluations = Evaluations()

    def start(self) -> "TaskService":
        self.worker.recover()
        self.deployments.recover()
        self.worker.start()
        return self

    def close(self) -> None:
        self.worker.stop()
        self.deployments.close()
        self.executor.close()
        self.store.close()

    def notify(self) -> None:
        with self.changed:
            self.changed.notify_all()

    @property
    def gpus(self) -> int:
        """The GPUs this service hands out (the worker reads the same ``capacity``)."""
        return self.capacity.gpus

    @gpus.setter
    def gpus(self, value: int) -> None:
        self.capacity.gpus = value

    @property
    def max_concurrent(self) -> int:
        """How many tasks run at once (``--max-concurrent``; the worker reads the same ``capacity``)."""
        return self.capacity.max_concurrent

    @max_concurrent.setter
    def max_concurrent(self, value: int) -> None:
        self.capacity.max_concurrent = value

    # -- views ---------------------------------------------------------------------------------------------

    @staticmethod
    def task_view(row: dict) -> dict[str, Any]:
        keys = ("id", "name", "status", "created_at", "started_at", "finished_at", "run_dir", "config", "progress",
                "best_metric", "best_metric_name", "peak_gpu_gib", "peak_host_gib", "error", "exit_code", "gpus",
                "executor", "source", "sweep_id", "trial_params", "stop_reason", "attempt", "first_started_at",
                "earlier_attempts_s", "wait_reason")
        view = {k: row.get(k) for k in keys}
        view["config"] = view["config"] or {}
        view["stop_requested"] = bool(row.get("stop_requested"))
        if view["status"] == STOPPED and not view["error"] and view["stop_reason"]:
            view["error"] = view["stop_reason"]  # why the service stopped it (a sweep's pruning decision)
        return view

    def _task_row(self, task_id: int) -> dict:
        return self.store.require_task(task_id)

    def info(self) -> dict[str, Any]:
        from .. import __version__

        return {"home": str(self.settings.home), "executor": self.executor.name, "max_concurrent": self.max_concurrent,
                "gpus": self.gpus, "token_required": bool(self.settings.token), "version": __version__,
                "allow_dirs": [str(d) for d in self.settings.allow_dirs]}

    # -- tasks: submission --------------------------------------------------------------------------------

    def checked_config(self, config: Any) -> tuple[dict[str, Any], Any]:
        """(the submitted keys, resolved and coerced; the validated TrainConfig) or BadRequest naming the key."""
        if not isinstance(config, dict):
            raise BadRequest("config: expected a mapping of config keys to values.", "config")
        raw = {k: v for k, v in config.items() if k not in OUTPUT_KEYS}
        if self.settings.token and not self.settings.allow_remote_code and raw.get("trust_remote_code") not in (
                None, False, "false", "False", 0):
            raise BadRequest("trust_remote_code: refused; this service is reachable from other machines and would run "
                             "the model's code from the hub. Start the console with --allow-remote-code to permit it.",
                             "trust_remote_code")
        per_key = value_errors(raw)  # every key wrong on its own at once, each at its field
        if per_key:
            raise BadRequest(per_key[0][1], per_key[0][0], [{"key": k, "detail": m} for k, m in per_key])
        try:
            raw = self.policy.resolve(raw)
        except PathRefused as exc:
            raise BadRequest(str(exc), exc.key) from None
        try:
            cfg = from_dict({**raw, "output_dir": str(self.settings.runs_dir / "new-task")})
            if self.executor.name == "local":  # a Ray cluster's machines are not this one
                check_machine(cfg, "cuda" if self.gpus > 0 else "cpu")
        except TuneforgeError as exc:  # ConfigError, and the sharding checks' errors: the CLI's own messages
            raise BadRequest(str(exc), config_error_key(str(exc))) from None
        return {k: getattr(cfg, k) for k in raw}, cfg

    def checked_gpus(self, gpus: Any) -> int:
        if gpus is None:
            return 1 if self.gpus > 0 else 0
        if isinstance(gpus, bool) or not isinstance(gpus, int) or gpus < 0:
            raise BadRequest(f"gpus={gpus!r}: expected a whole number >= 0.", "gpus")
        if self.executor.name == "local" and gpus > self.gpus:
            raise BadRequest(f"gpus={gpus}: this machine has {self.gpus} GPU(s).", "gpus")
        return gpus

    def validate(self, config: Any, gpus: Any = None) -> dict[str, Any]:
        _, cfg = self.checked_config(config)
        resolved = cfg.to_dict()
        resolved["output_dir"] = "(the task's run directory)"
        return {"ok": True, "config": resolved, "estimate": memory_estimate(cfg, self.checked_gpus(gpus))}

    def submit(self, config: Any, name: str | None = None, gpus: Any = None) -> dict[str, Any]:
        values, cfg = self.checked_config(config)
        gpus = self.checked_gpus(gpus)
        if name is not None and (not isinstance(name, str) or "\x00" in name):
            raise BadRequest("name: expected a string without NUL bytes.", "name")
        self.check_datasets(values)
        name = (name or "").strip()[:200] or f"{cfg.training_strategy}-{cfg.method} {Path(cfg.model).name}"
        with self.store.transaction():  # the row appears with its run directory set, or not at all
            task_id, run_dir = self.queue_row(values, cfg, name, gpus)
        init_run_dir(run_dir)  # marked as a tuneforge run before the service writes its own files there
        write_task_config(run_dir, cfg)  # the one hand-over: the file the task trains from (service/taskconfig.py)
        self.notify()
        return self.get_task(task_id)

    def queue_row(self, values: dict, cfg: Any, name: str, gpus: int, **columns: Any) -> tuple[int, Path]:
        """Insert one checked task as queued, with its run directory (call inside ``store.transaction()``)."""
        task_id = self.store.insert_task(name=name, status=QUEUED, config=values, gpus=gpus,
                                         run_dir=f"pending-{uuid.uuid4().hex}", executor=self.executor.name,
                                         best_metric_name=cfg.metric_for_best_model, source="service", **columns)
        run_dir = self.settings.runs_dir / f"task-{task_id}"
        if run_dir.exists() or self.store.task_by_run_dir(str(run_dir)):
            run_dir = run_dir.with_name(f"task-{task_id}-{uuid.uuid4().hex[:6]}")
        self.store.update_task(task_id, run_dir=str(run_dir), config={**values, "output_dir": str(run_dir)})
        return task_id, run_dir

    # -- tasks: reading ---------------------------------------------------------------------------------

    def list_tasks(self, status: str | None = None) -> list[dict[str, Any]]:
        if status is not None and status not in STATUSES:
            raise BadRequest(f"status={status!r}: expected one of {', '.join(STATUSES)}.", "status")
        return [self.task_view(r) for r in self.store.list_tasks(status)]

    def get_task(self, task_id: int) -> dict[str, Any]:
        return self.task_view(self._task_row(task_id))

    def _rows(self, task_id: int, name: str, after: int) -> list[dict]:
        if after < 0:
            raise BadRequest(f"after={after}: must be >= 0.", "after")
        return read_jsonl(Path(self._task_row(task_id)["run_dir"]) / name, after)

    def metrics(self, task_id: int, after: int = 0) -> list[dict]:
        return self._rows(task_id, METRICS_FILE, after)

    def generations(self, task_id: int, last: int = 1) -> list[dict]:
        """The latest ``last`` evaluations' generated answers beside their references (generations.jsonl,
        written with eval_generation_steps), newest last."""
        if not 1 <= last <= 100:
            raise BadRequest(f"last={last}: expected 1 to 100 evaluations.", "last")
        rows = read_jsonl(Path(self._task_row(task_id)["run_dir"]) / GENERATIONS_FILE)
        return rows[-last:]

    def resources(self, task_id: int, after: int = 0) -> list[dict]:
        return self._rows(task_id, RESOURCES_FILE, after)

    def log(self, task_id: int, offset: int = 0, limit: int = 65536) -> dict[str, Any]:
        if offset < 0 or limit < 1:
            raise BadRequest(f"offset={offset}, limit={limit}: offset must be >= 0 and limit >= 1.", "offset")
        row = self._task_row(task_id)
        limit = min(limit, 1 << 20)
        if row["executor"] == self.executor.name:
            return self.executor.read_log(row, offset, limit)
        return read_log(Path(row["run_dir"]) / LOG_FILE, offset, limit)

    # -- tasks: control ---------------------------------------------------------------------------------

    def stop(self, task_id: int) -> dict[str, Any]:
        row = self._task_row(task_id)
        if self.store.update_task(row["id"], where_status=[QUEUED], status=STOPPED, finished_at=utc_now()):
            self.notify()
            return self.get_task(row["id"])
        if not self.store.update_task(row["id"], where_status=[RUNNING], stop_requested=1):
            raise Conflict(f"task {row['id']} is {row['status']}: only queued or running tasks can be stopped.")
        self.worker.request_stop(self._task_row(row["id"]))
        self.notify()
        return self.get_task(row["id"])

    def resume(self, task_id: int) -> dict[str, Any]:
        row = self._task_row(task_id)
        if row["status"] not in RESUMABLE:
            raise Conflict(f"task {row['id']} is {row['status']}: only {', '.join(RESUMABLE)} tasks can be resumed.")
        config = {k: v for k, v in (row["config"] or {}).items() if k in FIELDS}
        if not config.get("train_data"):
            raise Conflict(f"task {row['id']}: its run directory records no config to resume from.")
        config.update(output_dir=row["run_dir"], resume_from_checkpoint="auto")
        try:
            cfg = from_dict(config)  # data deleted since? say so now, not in a failed task
        except ConfigError as exc:
            raise BadRequest(str(exc), config_error_key(str(exc))) from None
        try:  # resume_from_checkpoint=auto: the file the next attempt reads (the directory again if deleted by hand)
            write_task_config(init_run_dir(row["run_dir"]), cfg)
        except (TuneforgeError, OSError) as exc:
            raise Conflict(f"task {row['id']}: cannot write its config to its run directory: {exc}") from None
        if not self.store.update_task(row["id"], where_status=RESUMABLE, status=QUEUED, config=config,
                                      stop_requested=0, finished_at=None, exit_code=None, error=None,
                                      earlier_attempts_s=(row.get("earlier_attempts_s") or 0.0)
                                                         + _attempt_seconds(row)):
            raise Conflict(f"task {row['id']} changed status meanwhile; try again.")
        self.notify()
        return self.get_task(row["id"])

    def export(self, task_id: int, dtype: Any = "f16") -> dict[str, Any]:
        """Start ``tuneforge export`` of a succeeded task as GGUF into its run directory (service/exports.py)."""
        task = self.get_task(task_id)
        return self.exports.start(task, dtype, has_model(Path(task["run_dir"])))

    def export_status(self, task_id: int) -> dict[str, Any]:
        return self.exports.status(self.get_task(task_id))

    def evaluate(self, task_id: int, body: Any) -> dict[str, Any]:
        """Start ``tuneforge eval`` of a succeeded task on an uploaded data set (``dataset``: its id) or a file the
        path policy allows (``data``), with ``compare_base``; results land in the run directory's ``eval/``."""
        if not isinstance(body, dict):
            raise BadRequest('body: expected {"dataset": ID} or {"data": "FILE"}, and optionally "compare_base".',
                             "body")
        task = self.get_task(task_id)
        if body.get("dataset") is not None:
            if isinstance(body["dataset"], bool) or not isinstance(body["dataset"], int):
                raise BadRequest("dataset: expected a data set id (a whole number).", "dataset")
            path = self.get_dataset(body["dataset"])["path"]
        elif isinstance(body.get("data"), str) and body["data"]:
            try:
                path = self.policy.resolve({"validation_data": body["data"]})["validation_data"]
            except PathRefused as exc:
                raise BadRequest(str(exc).replace("validation_data", "data"), "data") from None
        else:
            raise BadRequest('dataset: give "dataset" (an uploaded data set\'s id) or "data" (a file).', "dataset")
        compare = body.get("compare_base", False)
        if not isinstance(compare, bool):
            raise BadRequest("compare_base: expected true or false.", "compare_base")
        return self.evaluations.start(task, path, compare, has_model(Path(task["run_dir"])))

    def evaluation_status(self, task_id: int) -> dict[str, Any]:
        return self.evaluations.status(self.get_task(task_id))

    def clone(self, task_id: int, name: str | None = None) -> dict[str, Any]:
        row = self._task_row(task_id)
        config = {k: v for k, v in (row["config"] or {}).items()
                  if k in FIELDS and k not in PER_RUN_KEYS}
        return self.submit(config, name or f"{row['name']} (copy)", row["gpus"])

    def delete(self, task_id: int, files: bool = False) -> dict[str, Any]:
        row = self._task_row(task_id)
        if row["status"] not in FINAL_STATUSES:
            raise Conflict(f"task {row['id']} is {row['status']}: stop it before deleting it.")
        run_dir = Path(row["run_dir"])
        if files and self.settings.runs_dir not in run_dir.resolve().parents:
            raise Conflict(f"task {row['id']}: its run directory {run_dir} is not under {self.settings.runs_dir}; "
                           "the service never deletes files it did not create. Delete without files=true.")
        self.deployments.forget(row["id"])  # its server would serve files about to go, under no task
        self.store.delete_task(row["id"])
        if not files:  # the directory stays: do not list it again as a run trained from a terminal
            self.store.ignore_run(str(run_dir))
        if files and run_dir.is_dir():
            shutil.rmtree(run_dir)
        self.notify()
        return {"deleted": row["id"], "files_removed": bool(files)}

    # -- outputs and sweeps (what the console's pages call) -----------------------------------------------

    def deployable(self, task: dict[str, Any]) -> bool:
        """Whether the task's run directory holds a trained model (an adapter or a full model) to deploy,
        export or evaluate."""
        return bool(task.get("run_dir")) and has_model(Path(task["run_dir"]))

    def outputs(self, task_id: int) -> dict[str, Any]:
        """What the task's run directory offers for download (service/downloads.py)."""
        task = self.get_task(task_id)
        return downloads.outputs_view(task, self.deployable(task))

    def output_file(self, task_id: int, relative: str) -> Path:
        """One file of the task's run directory to download; NotFound outside it or for a folder."""
        return downloads.output_file(self.get_task(task_id), relative)

    def list_sweeps(self) -> list[dict[str, Any]]:
        from . import sweeps

        return sweeps.list_all(self)

    def get_sweep(self, sweep_id: int) -> dict[str, Any]:
        from . import sweeps

        return sweeps.get(self, sweep_id)

    # -- runs trained outside the service -----------------------------------------------------------------

    def import_run(self, path: str | Path, name: str | None = None) -> dict[str, Any]:
        problem = path_text_problem(str(path))
        if problem:
            raise BadRequest(f"path: {problem}.", "path")
        if name is not None and (not isinstance(name, str) or "\x00" in name):
            raise BadRequest("name: expected a string without NUL bytes.", "name")
        run_dir = Path(path).expanduser().resolve()
        if self.policy.restricted and not any(r == run_dir or r in run_dir.parents for r in self.policy.model_roots()):
            raise BadRequest(f"path={str(path)!r}: outside the directories this service may read.", "path")
        if not run_dir.is_dir() or not any((run_dir / f).exists() for f in (METRICS_FILE, FINISHED_MARKER)):
            raise BadRequest(f"path={str(path)!r}: not a run directory (no {METRICS_FILE} or {FINISHED_MARKER}).",
                             "path")
        existing = self.store.task_by_run_dir(str(run_dir))
        if existing:
            return self.task_view(existing)
        config = self._recorded_config(run_dir)
        finished = (run_dir / FINISHED_MARKER).is_file()
        summary = summarize_run(run_dir, config.get("metric_for_best_model", "eval_loss"))
        holder = None if finished else lock_holder(run_dir)  # a terminal run still training holds the lock
        live = {"status": RUNNING, "pid": holder, "proc_started": _start_time(holder)} if holder and holder > 0 \
            else {"status": SUCCEEDED if finished else INTERRUPTED, "finished_at": utc_now()}
        task_id = self.store.insert_task(
            name=name or run_dir.name, config=config, run_dir=str(run_dir), executor="local", source="import",
            **live, **summary.columns())
        self.notify()
        return self.get_task(task_id)

    @staticmethod
    def _recorded_config(run_dir: Path) -> dict[str, Any]:
        try:
            data = yaml.safe_load((run_dir / FINISHED_MARKER).read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError):
            return {}
        return {k: v for k, v in data.items() if k in FIELDS} if isinstance(data, dict) else {}

    def scan_runs(self) -> int:
        """Index run directories that appeared under ``runs/`` (trained from a terminal); returns how many."""
        found = 0
        for child in sorted(self.settings.runs_dir.iterdir()) if self.settings.runs_dir.is_dir() else []:
            if child.is_dir() and not child.name.startswith("task-") and \
                    self.store.task_by_run_dir(str(child.resolve())) is None and \
                    not self.store.is_ignored(str(child.resolve())) and \
                    any((child / f).exists() for f in (METRICS_FILE, FINISHED_MARKER)):
                self.import_run(child)
                found += 1
        return found

    # -- datasets ---------------------------------------------------------------------------------------

    def dataset_view(self, row: dict) -> dict[str, Any]:
        fmt = row.get("format")
        return {**row, "filename": Path(row["path"]).name,
                "training_strategy": "dpo" if fmt == "preference" else "sft"}

    def list_datasets(self) -> list[dict[str, Any]]:
        return [self.dataset_view(r) for r in self.store.list_datasets()]

    def get_dataset(self, dataset_id: int) -> dict[str, Any]:
        row = self.store.get_dataset(int(dataset_id))
        if row is None:
            raise NotFound(f"dataset {dataset_id}: no such dataset.")
        return self.dataset_view(row)

    def add_dataset(self, filename: str, data: bytes | BinaryIO, name: str | None = None) -> dict[str, Any]:
        """Receive, check and publish an uploaded data file as one step: the file under its final name and its
        row appear together, or neither does (docs: service/uploads.py)."""
        stem, suffix = uploads.upload_name(filename)
        if name is not None and (not isinstance(name, str) or "\x00" in name):
            raise BadRequest("name: expected a string without NUL bytes.", "name")
        limit = int(self.settings.upload_limit_mb * 1024 * 1024)
        tmp, size, sha256 = uploads.receive(data, self.settings.datasets_dir / uploads.INCOMING, suffix, limit)
        try:
            _, fmt, rows = self._checked_rows(tmp, f"{stem}{suffix}")
            final = uploads.publish(tmp, self.settings.datasets_dir, stem, suffix,
                                    taken=lambda p: self.store.dataset_by_path(p) is not None)
            try:
                dataset_id = self.store.insert_dataset(name=(name or final.name)[:200], path=str(final),
                                                       size_bytes=size, rows=rows, format=fmt, sha256=sha256)
            except BaseException:
                final.unlink(missing_ok=True)  # published by this call a moment ago, never handed out
                raise
        finally:
            tmp.unlink(missing_ok=True)
        return self.get_dataset(dataset_id)

    @staticmethod
    def _checked_rows(path: Path, shown: str) -> tuple[str, str | None, int]:
        """(strategy, row format, row count) of a received file; BadRequest naming ``file`` for a bad row."""
        try:
            strategy, fmt = dataadapter.detect_strategy(str(path))
            return strategy, fmt, dataadapter.validate_rows(str(path), strategy)
        except (DataError, TuneforgeError) as exc:
            message = str(exc).replace(str(path), shown)
            raise BadRequest(message if message.startswith(shown) else f"{shown}: {message}", "file") from None
        except RecursionError:
            raise BadRequest(f"{shown}: invalid JSON (nested too deeply).", "file") from None

    def check_datasets(self, config: dict[str, Any]) -> None:
        """Refuse to train on an uploaded data set whose file changed since it was accepted (size or digest)."""
        for path in _data_paths(config):
            row = self.store.dataset_by_path(path)
            if row is None or not row.get("sha256"):
                continue
            try:
                size, sha256 = uploads.file_digest(Path(path))
            except OSError as exc:
                raise Conflict(f"train_data: data set {row['id']} ({Path(path).name}) cannot be read ({exc.strerror}); "
                               "upload it again.", "train_data") from None
            if (size, sha256) != (row["size_bytes"], row["sha256"]):
                raise Conflict(f"train_data: data set {row['id']} ({Path(path).name}) changed on disk since it was "
                               f"uploaded ({row['size_bytes']} bytes, sha256 {row['sha256'][:12]}..., now {size} "
                               f"bytes, sha256 {sha256[:12]}...); upload the new version as a new data set.",
                               "train_data")

    def _dataset_config(self, dataset_id: int, keys: dict[str, Any]):
        dataset = self.get_dataset(dataset_id)
        bad = [k for k in keys if k not in PREVIEW_KEYS]
        if bad:
            raise BadRequest(f"{bad[0]}: not a preview/stats key (use {', '.join(PREVIEW_KEYS)}).", bad[0])
        raw = {"training_strategy": dataset["training_strategy"], **{k: v for k, v in keys.items() if v is not None}}
        _, cfg = self.checked_config({**raw, "train_data": dataset["path"]})
        return cfg

    def dataset_preview(self, dataset_id: int, n: int = 5, **keys: Any) -> dict[str, Any]:
        if not 1 <= n <= 100:
            raise BadRequest(f"n={n}: expected 1 to 100 rows.", "n")
        cfg = self._dataset_config(dataset_id, keys)
        try:
            return dataadapter.preview(cfg, n)
        except TuneforgeError as exc:  # a bad row names the file; a model that cannot load names the key
            raise BadRequest(str(exc), config_error_key(str(exc)) or "file") from None

    def dataset_stats(self, dataset_id: int, **keys: Any) -> dict[str, Any]:
        cfg = self._dataset_config(dataset_id, keys)
        try:
            return dataadapter.stats(cfg)
        except TuneforgeError as exc:  # a bad row names the file; a model that cannot load names the key
            raise BadRequest(str(exc), config_error_key(str(exc)) or "file") from None

    # -- models ------------------------------------------------------------------------------------------

    def models(self) -> list[dict[str, Any]]:
        """The gallery's entries (its one data file, tuneforge/gallery/models.yaml, lists the built-in model first)."""
        from ..gallery import entries

        return [e.to_dict() for e in entries()]

    @staticmethod
    def vocabulary() -> dict[str, Any]:
        """The service's words for the console's pages (task statuses and what they allow, command states)."""
        from . import vocabulary

        return vocabulary()
