"""``tuneforge tasks ...``: a client of a running service, with the messages and exit codes of ``tuneforge train``
(``tuneforge console``, which starts the service, is ``apps/cli.py``)."""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from . import (DEPLOY_FAILED, DEPLOY_READY, DEPLOY_STARTING, DEPLOY_STOPPED, FINAL_STATUSES, QUEUED, RUNNING,
               SUCCEEDED)
from .client import ServiceClient
from .sweep_cli import add_sweep

PATH_KEYS = ("train_data", "validation_data", "model", "adapter_name_or_path", "deepspeed")


# -- tuneforge tasks -------------------------------------------------------------------------------------------


def _client(args: argparse.Namespace) -> ServiceClient:
    return ServiceClient(args.server, args.token)


def local_config(path: str | None, overrides: list[str]) -> dict[str, Any]:
    """The config file plus key=value overrides, with relative paths made absolute the way ``tuneforge train``
    reads them (data paths relative to the config file), so the service reads the same files."""
    from ..config import load_raw, parse_override

    raw = load_raw(path) if path else {}
    for item in overrides:
        key, value = parse_override(item)
        raw[key] = value
    base = Path(path).resolve().parent if path else Path.cwd()
    for key in PATH_KEYS:
        value = raw.get(key)
        if not isinstance(value, str) or not value or Path(value).is_absolute():
            continue
        if Path(value).exists():
            raw[key] = str(Path(value).resolve())
        elif (base / value).exists():
            raw[key] = str((base / value).resolve())
    return raw


def _exit_code(task: dict) -> int:
    """The task's outcome as ``tuneforge train`` would exit: 0 succeeded, its exit code when it failed, else 1."""
    if task["status"] == SUCCEEDED:
        return 0
    code = task.get("exit_code")
    return code if isinstance(code, int) and code > 0 else 1


def _wait(client: ServiceClient, task_id: int) -> int:
    last = None
    while True:
        task = client.get(f"/api/tasks/{task_id}")
        if task["status"] != last:
            last = task["status"]
            print(f"task {task_id}: {last}" + (f" ({task['error']})" if task.get("error") else ""), flush=True)
        if last in FINAL_STATUSES:
            return _exit_code(task)
        time.sleep(1.0)


def _cmd_submit(args: argparse.Namespace) -> int:
    if args.config and "=" in args.config and not Path(args.config).exists():
        args.overrides, args.config = [args.config, *args.overrides], None
    body: dict[str, Any] = {"config": local_config(args.config, list(args.overrides))}
    if args.name:
        body["name"] = args.name
    if args.gpus is not None:
        body["gpus"] = args.gpus
    client = _client(args)
    task = client.post("/api/tasks", body)
    print(f"task {task['id']} {task['status']}: {task['name']}\n  run dir: {task['run_dir']}", flush=True)
    return _wait(client, task["id"]) if args.wait else 0


def _fmt(value: Any, unit: str = "", digits: int = 3) -> str:
    if value is None:
        return "-"
    return f"{value:.{digits}g}{unit}" if isinstance(value, float) else f"{value}{unit}"


def _progress(task: dict) -> str:
    p = task.get("progress") or {}
    return f"{p.get('step', 0)}/{p['total_steps']}" if p.get("total_steps") else "-"


def _cmd_list(args: argparse.Namespace) -> int:
    tasks = _client(args).get("/api/tasks", status=args.status)
    if args.json:
        print(json.dumps(tasks, indent=2, ensure_ascii=False))
        return 0
    print(f"{'ID':>4}  {'STATUS':<11}  {'STEPS':>9}  {'BEST':>8}  {'HOST':>9}  {'GPU':>9}  NAME")
    for t in tasks:
        print(f"{t['id']:>4}  {t['status']:<11}  {_progress(t):>9}  {_fmt(t['best_metric'], '', 4):>8}  "
              f"{_fmt(t['peak_host_gib'], ' GiB'):>9}  {_fmt(t['peak_gpu_gib'], ' GiB'):>9}  {t['name']}")
    return 0


def _cmd_show(args: argparse.Namespace) -> int:
    task = _client(args).get(f"/api/tasks/{args.id}")
    if args.json:
        print(json.dumps(task, indent=2, ensure_ascii=False))
        return 0
    for key in ("id", "name", "status", "created_at", "started_at", "finished_at", "run_dir", "executor", "gpus",
                "exit_code", "error"):
        print(f"{key:>14}: {_fmt(task.get(key))}")
    if task["status"] == QUEUED and task.get("wait_reason"):  # the memory-aware queue's reason (placement.py)
        print(f"{'waiting':>14}: {task['wait_reason'].removeprefix('waiting: ')}")
    print(f"{'progress':>14}: {_progress(task)} steps")
    print(f"{'best':>14}: {task.get('best_metric_name')} {_fmt(task.get('best_metric'), '', 5)}")
    print(f"{'peak memory':>14}: host {_fmt(task.get('peak_host_gib'), ' GiB')}, GPU "
          f"{_fmt(task.get('peak_gpu_gib'), ' GiB')}")
    return 0


def _cmd_logs(args: argparse.Namespace) -> int:
    client, offset = _client(args), 0
    while True:
        chunk = client.get(f"/api/tasks/{args.id}/log", offset=offset, limit=1 << 20)
        if chunk["text"]:
            sys.stdout.write(chunk["text"])
            sys.stdout.flush()
            offset = chunk["next_offset"]
            continue
        if not args.follow:
            return 0
        task = client.get(f"/api/tasks/{args.id}")
        if task["status"] in FINAL_STATUSES and client.get(f"/api/tasks/{args.id}/log", offset=offset)["text"] == "":
            return _exit_code(task)
        time.sleep(1.0)


def _cmd_control(args: argparse.Namespace) -> int:
    task = _client(args).post(f"/api/tasks/{args.id}/{args.action}")
    extra = " (stop requested: SIGTERM sent, SIGKILL after the grace period)" if task.get("stop_requested") and \
        task["status"] == RUNNING else ""
    print(f"task {task['id']}: {task['status']}{extra}")
    return 0


def _cmd_import(args: argparse.Namespace) -> int:
    task = _client(args).post("/api/tasks/import", {"path": str(Path(args.run_dir).resolve()), "name": args.name})
    print(f"task {task['id']} {task['status']}: {task['name']} ({task['run_dir']})")
    return 0


def _cmd_deploy(args: argparse.Namespace) -> int:
    client = _client(args)
    dep = client.post(f"/api/tasks/{args.id}/deploy")
    print(f"task {args.id}: deploying as model {dep['model']} at {dep['url']} (log: {dep['log']})", flush=True)
    deadline = time.monotonic() + args.timeout
    while dep["status"] == DEPLOY_STARTING and not args.no_wait and time.monotonic() < deadline:
        time.sleep(1.0)
        dep = client.get(f"/api/tasks/{args.id}/deployment")
    print(f"task {args.id}: deployment {dep['status']}" + (f" ({dep['error']})" if dep.get("error") else ""))
    if dep["status"] == DEPLOY_READY:
        print(f"  chat: POST {dep['url']}/v1/chat/completions  (model {dep['model']!r})")
    if dep["status"] in (DEPLOY_FAILED, DEPLOY_STOPPED):
        return 1
    return 0 if dep["status"] == DEPLOY_READY or args.no_wait else 1


def _cmd_undeploy(args: argparse.Namespace) -> int:
    dep = _client(args).request("DELETE", f"/api/tasks/{args.id}/deployment")
    print(f"task {args.id}: deployment {dep['status']}")
    return 0


def _add_tasks(sub) -> None:
    p = sub.add_parser("tasks", help="submit, list, follow and control tasks of a running 'tuneforge console'",
                       description="Talk to a running task service (tuneforge console).")
    tasks = p.add_subparsers(dest="tasks_command", required=True, metavar="ACTION")

    def action(name: str, help_text: str, func) -> argparse.ArgumentParser:
        a = tasks.add_parser(name, help=help_text, description=help_text)
        a.add_argument("--server", help="service URL (default $TUNEFORGE_SERVER or http://127.0.0.1:8750)")
        a.add_argument("--token", help="the service's token (default $TUNEFORGE_TOKEN)")
        a.set_defaults(func=func)
        return a

    a = action("submit", "queue a training task from a config file and key=value overrides", _cmd_submit)
    a.add_argument("config", nargs="?", help="YAML or JSON config (as for tuneforge train)")
    a.add_argument("overrides", nargs="*", metavar="key=value", help="override config keys")
    a.add_argument("--name", help="task name (default: strategy, method and model)")
    a.add_argument("--gpus", type=int, help="GPUs the task needs (default 1 on a GPU machine, else 0)")
    a.add_argument("--wait", action="store_true", help="wait until the task ends; exit with its exit code")
    a = action("list", "list tasks, newest first", _cmd_list)
    a.add_argument("--status", help="only tasks with this status")
    a.add_argument("--json", action="store_true", help="print JSON")
    a = action("show", "show one task", _cmd_show)
    a.add_argument("id", type=int)
    a.add_argument("--json", action="store_true", help="print JSON")
    a = action("logs", "print a task's train.log", _cmd_logs)
    a.add_argument("id", type=int)
    a.add_argument("--follow", "-f", action="store_true", help="keep printing until the task ends")
    for name, text in (("stop", "stop a task (SIGTERM, then SIGKILL after the grace period)"),
                       ("resume", "resume an interrupted, stopped or failed task from its last checkpoint")):
        a = action(name, text, _cmd_control)
        a.add_argument("id", type=int)
        a.set_defaults(action=name)
    a = action("deploy", "serve a finished task's model (tuneforge serve on a free loopback port)", _cmd_deploy)
    a.add_argument("id", type=int)
    a.add_argument("--no-wait", action="store_true", help="return at once instead of waiting until it is ready")
    a.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for it to be ready (default 300)")
    a = action("undeploy", "stop a task's deployment (SIGTERM, then SIGKILL after 10 s)", _cmd_undeploy)
    a.add_argument("id", type=int)
    a = action("import", "index a run directory trained from a terminal, so it is listed with its charts", _cmd_import)
    a.add_argument("run_dir")
    a.add_argument("--name", help="task name (default: the directory's name)")
    add_sweep(action, local_config)  # sweep_cli.py: tuneforge tasks sweep / sweep-show


def add_parser(subparsers) -> None:
    _add_tasks(subparsers)
