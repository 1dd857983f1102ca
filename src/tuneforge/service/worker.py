"""The queue: a thread that starts queued tasks in order within the concurrency, GPU and memory limits
(placement.py), follows the running ones (progress, best metric, peak memory from their run directories),
finishes them with the right status, and enforces stop deadlines. ``recover()`` runs once at start: live tasks
are re-attached, dead ones become ``interrupted`` (or take the status their recorded exit code gives)."""
from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
from pathlib import Path
from dataclasses import dataclass
from typing import Callable

from . import FAILED, INTERRUPTED, QUEUED, RUNNING, STOPPED, SUCCEEDED
from .executors import Executor, Exit
from .runfiles import TaskSummary
from .placement import MemoryProbe, Placer, Wait, cpu_threads_per_task, task_estimate_gib
from .settings import Settings
from .store import Store, utc_now
from .taskconfig import missing_task_config
from .sweeps import SweepGate
from ..rundir import (EXIT_FILE, LOG_FILE, METRICS_FILE, RESOURCES_FILE, JsonlTail, init_run_dir, is_finished,
                      latest_saved, log_error_line, read_progress)

SCAN_EVERY_S = 10.0
SIGTERM_CODES = (-signal.SIGTERM, 128 + signal.SIGTERM)


class _Follower:
    """Folds a running task's new metrics and resources rows into its summary columns."""

    def __init__(self, task: dict):
        run_dir = self.run_dir = Path(task["run_dir"])
        self.metrics, self.resources = JsonlTail(run_dir / METRICS_FILE), JsonlTail(run_dir / RESOURCES_FILE)
        self.summary = TaskSummary(metric_name=task.get("best_metric_name") or "eval_loss")
        self.last: dict = {}

    def update(self) -> dict | None:
        for row in self.metrics.poll():
            self.summary.add_metric(row)
        for row in self.resources.poll():
            self.summary.add_resource(row)
        self.summary.add_live(read_progress(self.run_dir))
        columns = self.summary.columns()
        if columns == self.last:
            return None
        self.last = columns
        return columns


def final_status(task: dict, exit: Exit) -> tuple[str, str | None]:
    """(status, error summary) of a task that ended."""
    code = exit.code
    if task.get("stop_requested"):
        return STOPPED, None
    if code == 0:
        return SUCCEEDED, None
    if code is None and is_finished(Path(task["run_dir"])):
        return SUCCEEDED, None  # e.g. a run from a terminal that the service followed
    if code is None:
        return INTERRUPTED, ("the task's process ended without an exit code "
                             "(killed with the service, or the machine restarted); resume it")
    if code in SIGTERM_CODES:
        return INTERRUPTED, "terminated by SIGTERM from outside the service; resume it"
    why = log_error_line(Path(task["run_dir"]) / LOG_FILE)
    if code < 0:
        name = signal.Signals(-code).name if -code in signal.valid_signals() else str(-code)
        return FAILED, f"killed by {name}" + (f"; last log line: {why}" if why else "")
    return FAILED, why or f"exit code {code}"


@dataclass
class Capacity:
    """How many GPUs the service hands out and how many tasks run at once (``--max-concurrent``). The service
    owns it and shares it with its worker, so a change (a test's machine with two GPUs) reaches both."""

    gpus: int
    max_concurrent: int


@dataclass(frozen=True)
class WorkerHooks:
    """What the worker asks of the service that owns it, as plain callables: it never holds the service."""

    notify: Callable[[], None]  # a task changed: wake whoever waits (the event streams)
    check_datasets: Callable[[dict], None]  # raises when an uploaded data set changed on disk since its upload
    scan_runs: Callable[[], object]  # index run directories trained from a terminal
    sweep_pass: Callable[[], None]  # once a pass, after following the running tasks: prune sweeps' losing trials


class Worker:
    """The queue's thread. It is handed what it works with (``TaskService`` builds it): the store, the executor,
    the settings, the capacity it shares with the service, and the hooks above."""

    def __init__(self, store: Store, executor: Executor, settings: Settings, capacity: Capacity,
                 hooks: WorkerHooks):
        self.store, self.executor, self.settings = store, executor, settings
        self.capacity, self.hooks = capacity, hooks
        self._followers: dict[int, _Follower] = {}
        self._stop_deadlines: dict[int, float] = {}
        self._lock = threading.Lock()
        self._halt = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tuneforge-worker", daemon=True)
        self._last_scan = 0.0
        self.probe = MemoryProbe()  # free device memory; tests put fake GPUs here
        self._estimates: dict[int, float | None] = {}  # task id -> the planner's estimate (GiB), while queued/running

    # -- lifecycle ------------------------------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._halt.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def recover(self) -> None:
        """At service start: every task marked running is either still alive (re-attached) or finished."""
        for task in self.store.list_tasks(RUNNING):
            exit = self.executor.poll(task) if task["executor"] == self.executor.name else Exit(None)
            if exit is not None:
                self._finish(task, exit)
            elif task.get("stop_requested"):
                self.request_stop(task)

    def _run(self) -> None:
        while not self._halt.is_set():
            try:
                self.tick()
            except Exception as exc:  # one bad pass (a file vanished, a locked DB) must not end the queue
                print(f"tuneforge worker: {exc.__class__.__name__}: {exc}", flush=True)
            self._halt.wait(self.settings.poll_interval)

    # -- one pass -------------------------------------------------------------------------------------------

    def tick(self) -> None:
        for task in self.store.list_tasks(RUNNING):
            exit = self.executor.poll(task)
            if exit is None:
                self._follow(task)
            else:
                self._finish(task, exit)
        self.hooks.sweep_pass()  # pruning.py: stop the losing trials of sweeps that prune
        self._start_queued()
        if self.settings.scan_runs and time.monotonic() - self._last_scan > SCAN_EVERY_S:
            self._last_scan = time.monotonic()
            self.hooks.scan_runs()

    def _follow(self, task: dict) -> None:
        follower = self._followers.setdefault(task["id"], _Follower(task))
        columns = follower.update()
        if columns is not None:
            self.store.update_task(task["id"], **columns)
            self.hooks.notify()
        with self._lock:
            deadline = self._stop_deadlines.get(task["id"])
        if deadline is not None and time.monotonic() > deadline:
            self.executor.stop(task, force=True)  # the grace period is over: SIGKILL the group

    def _finish(self, task: dict, exit: Exit) -> None:
        follower = self._followers.pop(task["id"], None) or _Follower(task)
        follower.update()
        status, error = final_status(task, exit)
        if status != SUCCEEDED:  # the step a resume continues from, which the page shows after a stop
            saved = latest_saved(Path(task["run_dir"]))
            follower.summary.checkpoint_step = int(saved.name.rsplit("-", 1)[1]) if saved else 0
            # a stop saves a checkpoint at the step it stopped on; progress.json may be a moment older
            follower.summary.step = max(follower.summary.step or 0, follower.summary.checkpoint_step)
        self.store.update_task(task["id"], where_status=[RUNNING], status=status, error=error,
                               exit_code=exit.code, finished_at=utc_now(), gpu_ids=None,
                               **follower.summary.columns())
        with self._lock:
            self._stop_deadlines.pop(task["id"], None)
        self.hooks.notify()

    def request_stop(self, task: dict) -> None:
        with self._lock:
            self._stop_deadlines.setdefault(task["id"], time.monotonic() + self.settings.stop_grace)
        self.executor.stop(task)

    # -- starting tasks -------------------------------------------------------------------------------------

    def _start_queued(self) -> None:
        """Start queued tasks in order within --max-concurrent, a sweep's limit and the devices' free memory
        (placement.py); a task that waits has the reason recorded (``wait_reason``), cleared when it starts."""
        running = self.store.list_tasks(RUNNING)
        queued = self.store.queued_in_order()
        live = {t["id"] for t in running + queued}
        self._estimates = {i: e for i, e in self._estimates.items() if i in live}
        slots = self.capacity.max_concurrent - len(running)
        placer = None  # Ray: the cluster places its jobs
        if self.executor.name == "local":
            placer = Placer(self.capacity.gpus, self.probe, self._estimate)
            for task in running:
                placer.add_running(task)
        gate = SweepGate(self.store, running)  # a sweep's --max-concurrent
        reasons: dict[int, str] = {}
        for task in queued:
            if slots <= 0:
                reasons[task["id"]] = f"waiting: {len(running)} task(s) running, the most at once (--max-concurrent)"
                break
            if not gate.admit(task):
                reasons[task["id"]] = "waiting: its sweep has its most trials running (--max-concurrent of the sweep)"
                continue  # the tasks behind it may start
            gpu_ids = placer.place(task) if placer else []
            if isinstance(gpu_ids, Wait):
                reasons[task["id"]] = gpu_ids.reason
                break  # first in, first out: the head of the queue waits for its memory or GPUs
            if self._claim(task, gpu_ids):
                slots -= 1
                running.append(task)
        changed = [t["id"] for t in queued if t.get("wait_reason") != reasons.get(t["id"])]
        for task_id in changed:  # a reason only while it holds: recorded or cleared when it changes
            self.store.update_task(task_id, where_status=[QUEUED], wait_reason=reasons.get(task_id))
        if changed:
            self.hooks.notify()

    def _estimate(self, task: dict) -> float | None:
        if task["id"] not in self._estimates:  # computed once per task: it reads the model's shape
            self._estimates[task["id"]] = task_estimate_gib(task)
        return self._estimates[task["id"]]

    def _claim(self, task: dict, gpu_ids: list[int]) -> bool:
        now = utc_now()
        claimed = self.store.update_task(
            task["id"], where_status=[QUEUED], status=RUNNING, started_at=now,
            first_started_at=task.get("first_started_at") or now, gpu_ids=gpu_ids, pid=None, job_id=None,
            proc_started=None, attempt=task["attempt"] + 1, wait_reason=None)
        if claimed:  # else someone else took or stopped it
            self._launch(self.store.get_task(task["id"]), gpu_ids)
        return claimed

    def _task_env(self, task: dict, gpu_ids: list[int]) -> dict[str, str]:
        env = dict(os.environ)
        env.update(PYTHONUNBUFFERED="1", TUNEFORGE_TASK_ID=str(task["id"]), TOKENIZERS_PARALLELISM="false")
        if self.executor.name == "local" and (gpu_ids or self.capacity.gpus):
            env["CUDA_VISIBLE_DEVICES"] = ",".join(str(i) for i in gpu_ids)  # "" = no GPU for a CPU task
        threads = cpu_threads_per_task(os.cpu_count() or 1, self.capacity.max_concurrent)
        if self.executor.name == "local" and not gpu_ids and threads and "OMP_NUM_THREADS" not in os.environ:
            env["OMP_NUM_THREADS"] = str(threads)  # CPU tasks side by side share the cores (placement.py)
        return env

    def _launch(self, task: dict, gpu_ids: list[int]) -> None:
        run_dir = Path(task["run_dir"])
        try:
            self.hooks.check_datasets(task["config"] or {})  # a data set changed by hand since its upload
            init_run_dir(run_dir)
            missing = missing_task_config(run_dir)  # written once when the task was queued or resumed (taskconfig.py)
            if missing:
                raise FileNotFoundError(missing)
            (run_dir / EXIT_FILE).unlink(missing_ok=True)
            with open(run_dir / LOG_FILE, "a", encoding="utf-8") as log:
                log.write(f"=== tuneforge task {task['id']} attempt {task['attempt']} started {utc_now()} ===\n")
            handle = self.executor.start(task, self._task_env(task, gpu_ids), self.settings.sample_interval)
        except Exception as exc:  # cannot write the run directory, Ray refused the job ...
            self.store.update_task(task["id"], status=FAILED, finished_at=utc_now(),
                                   error=f"could not start: {exc}", gpu_ids=None)
            with contextlib.suppress(OSError):
                with open(run_dir / LOG_FILE, "a", encoding="utf-8") as log:
                    log.write(f"tuneforge task {task['id']}: could not start: {exc}\n")
            self.hooks.notify()
            return
        self.store.update_task(task["id"], **handle)
        self._followers[task["id"]] = _Follower(task)
        started = self.store.get_task(task["id"])
        if started and started.get("stop_requested"):  # stopped while it was being launched
            self.request_stop(started)
        self.hooks.notify()
