"""``tuneforge tasks sweep``: queue a hyperparameter sweep on a running service, and with --wait follow it to
its winner. ``key=v1,v2`` (a list), ``key=range(a,b)`` or ``key=log(a,b)`` are searched; ``key=value`` with one
value is a fixed override, as for ``tuneforge tasks submit``."""
from __future__ import annotations

import argparse
import re
import time
from pathlib import Path
from typing import Any

from ..errors import TuneforgeError
from . import QUEUED, RUNNING
from .client import ServiceClient
from .sweeps import split_values

RANGED = re.compile(r"^\s*(range|log)\s*\(")
ACTIVE = (QUEUED, RUNNING)


def split_args(items: list[str]) -> tuple[dict[str, str], list[str]]:
    """(searched keys -> their text, fixed key=value overrides) of the command line's key=... arguments."""
    space: dict[str, str] = {}
    fixed: list[str] = []
    for item in items:
        if "=" not in item:
            raise TuneforgeError(f"{item!r}: expected key=v1,v2, key=range(a,b), key=log(a,b) or key=value.")
        key, value = item.split("=", 1)
        if RANGED.match(value) or len(split_values(value)) > 1:  # a comma outside brackets: a list to search
            if key.strip() in space:
                raise TuneforgeError(f"{key.strip()}: given twice.")
            space[key.strip()] = value
        else:
            fixed.append(item)
    if not space:
        raise TuneforgeError("no key to search: give at least one key=v1,v2, key=range(a,b) or key=log(a,b).")
    return space, fixed


def _fmt(value: Any, unit: str = "") -> str:
    if value is None:
        return "-"
    return f"{value:.4g}{unit}" if isinstance(value, float) else f"{value}{unit}"


def print_table(sweep: dict) -> None:
    keys = list(sweep["space"])
    print(f"sweep {sweep['id']} {sweep['status']}: {sweep['name']} ({sweep['trial_count']} trials, "
          f"{sweep['pruned']} pruned)")
    head = "  ".join(f"{k:>13}" for k in keys)
    print(f"{'TASK':>5}  {'STATUS':<11}  {head}  {sweep['metric']:>12}  {'PEAK HOST':>10}  {'TIME':>7}  NOTE")
    winner = (sweep.get("winner") or {}).get("id")
    for t in sweep["trials"]:
        params = "  ".join(f"{_fmt(t['params'].get(k)):>13}" for k in keys)
        note = "winner" if t["id"] == winner else (t.get("error") or "")
        print(f"{t['id']:>5}  {t['status']:<11}  {params}  {_fmt(t['best_metric']):>12}  "
              f"{_fmt(t['peak_host_gib'], ' GiB'):>10}  {_fmt(t['time_s'], ' s'):>7}  {note}")


def wait(client, sweep_id: int) -> int:
    """Print each trial's status changes until no trial is queued or running; 0 when there is a winner."""
    seen: dict[int, str] = {}
    while True:
        sweep = client.get(f"/api/sweeps/{sweep_id}")
        for t in sweep["trials"]:
            if seen.get(t["id"]) != t["status"]:
                seen[t["id"]] = t["status"]
                why = f" ({t['error']})" if t.get("error") else ""
                print(f"task {t['id']}: {t['status']}{why}", flush=True)
        if not any(t["status"] in ACTIVE for t in sweep["trials"]):
            print_table(sweep)
            if sweep.get("winner"):
                w = sweep["winner"]
                print(f"winner: task {w['id']} ({' '.join(f'{k}={v}' for k, v in w['params'].items())}), "
                      f"{sweep['metric']} {_fmt(w['best_metric'])}")
                return 0
            print(f"no trial reported {sweep['metric']} (does the config evaluate? set validation_data or "
                  "validation_split and eval_steps)")
            return 1
        time.sleep(1.0)


def _client(args: argparse.Namespace) -> ServiceClient:
    return ServiceClient(args.server, args.token)


def cmd_sweep(args: argparse.Namespace) -> int:
    items = list(args.params)
    if args.config and "=" in args.config and not Path(args.config).exists():
        items, args.config = [args.config, *items], None
    space, fixed = split_args(items)
    body: dict[str, Any] = {"config": args.local_config(args.config, fixed), "space": space,
                            "grace_steps": args.grace_steps}
    for key in ("metric", "mode", "early_stop", "min_trials", "max_concurrent", "name", "gpus", "random"):
        if getattr(args, key) is not None:
            body[key] = getattr(args, key)
    if args.random is not None:
        body["seed"] = args.seed
    client = _client(args)
    if args.dry_run:
        planned = client.post("/api/sweeps/validate", body)
        print(f"{planned['trial_count']} trials (nothing queued):")
        for i, params in enumerate(planned["trials"], 1):
            print(f"  {i:>3}. " + " ".join(f"{k}={v}" for k, v in params.items()))
        return 0
    sweep = client.post("/api/sweeps", body)
    print(f"sweep {sweep['id']} queued: {sweep['name']} ({sweep['trial_count']} trials: tasks "
          f"{', '.join(str(t['id']) for t in sweep['trials'])})", flush=True)
    if args.early_stop and client.get("/api/info").get("max_concurrent") == 1:
        # Not an error, but the reason a sweep whose weak trials come first is never pruned.
        print("note: this console runs one task at a time, so each trial is compared only with trials that "
              "finished before it; start it with --max-concurrent N to compare trials side by side at the same "
              "step (memory permitting)", flush=True)
    return wait(client, sweep["id"]) if args.wait else 0


def cmd_sweep_show(args: argparse.Namespace) -> int:
    print_table(_client(args).get(f"/api/sweeps/{args.id}"))
    return 0


def add_sweep(action, local_config) -> None:
    """Add ``sweep`` and ``sweep-show`` to ``tuneforge tasks`` (``action`` makes a subcommand with --server;
    ``local_config`` reads the config file and overrides as ``tasks submit`` does)."""
    a = action("sweep", "queue a hyperparameter sweep: one task per trial (grid, or --random N draws)", cmd_sweep)
    a.set_defaults(local_config=local_config)
    a.add_argument("config", nargs="?", help="YAML or JSON config (as for tuneforge train)")
    a.add_argument("params", nargs="*", metavar="key=v1,v2",
                   help="searched keys: key=v1,v2 (a list), key=range(a,b), key=log(a,b); key=value: a fixed override")
    a.add_argument("--random", type=int, metavar="N", help="N random draws instead of the grid (needed for ranges)")
    a.add_argument("--seed", type=int, default=0, help="seed of the random draws (default 0)")
    a.add_argument("--metric", help="what picks the winner and drives pruning (default: the config's "
                                    "metric_for_best_model, eval_loss unless set)")
    a.add_argument("--mode", choices=("min", "max"), help="min or max (default: the metric's direction)")
    a.add_argument("--early-stop", choices=("median", "asha"), help="stop losing trials at their evaluations")
    a.add_argument("--grace-steps", type=int, default=0, metavar="G", help="no pruning before this step (default 0)")
    a.add_argument("--min-trials", type=int, metavar="M",
                   help="judge a trial at a step only once M other trials reached it (default 2)")
    a.add_argument("--max-concurrent", type=int, metavar="K", help="at most K trials of this sweep run at once")
    a.add_argument("--name", help="sweep name (default: the searched keys)")
    a.add_argument("--gpus", type=int, help="GPUs each trial needs")
    a.add_argument("--dry-run", action="store_true", help="print the trials and queue nothing")
    a.add_argument("--wait", action="store_true", help="follow the sweep until every trial ended; print the winner")
    a = action("sweep-show", "show a sweep's trials and its winner", cmd_sweep_show)
    a.add_argument("id", type=int)
