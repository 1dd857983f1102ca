"""Sweeps: a named group of ordinary tasks that search hyperparameters (a grid, or N random draws).

A sweep's space maps config keys to one dimension each: a list of values (``key=v1,v2``), a uniform range
(``range(a,b)``: whole numbers when both ends are, else floats) or a log-uniform range (``log(a,b)``). A grid
takes lists only (its size is the product of their lengths); ``random`` draws N distinct trials from any
dimension with ``random.Random(seed)``, so the same seed gives the same trials. Every trial's config is
validated as a task config before anything is queued; the sweep row and its trials are inserted together.
Pruning (early stopping between trials) is in pruning.py; the queue's per-sweep limit is ``SweepGate``.
"""
from __future__ import annotations

import calendar
import itertools
import math
import random
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import yaml

from ..config import FIELDS
from . import FINAL_STATUSES, QUEUED, RUNNING, STOPPED, SWEEP_ACTIVE, SWEEP_STOPPED
from .errors import BadRequest, NotFound
from ..rundir import lower_is_better

if TYPE_CHECKING:
    from .store import Store

MAX_TRIALS = 256  # one sweep queues at most this many tasks: a typo like 1,2,...,1000 x 5 keys is refused
EARLY_STOP = ("median", "asha")
MODES = ("min", "max")
SWEEP_FIELDS = {"config", "space", "name", "gpus", "random", "seed", "metric", "mode", "early_stop",
                "grace_steps", "min_trials", "max_concurrent"}
_RANGE = re.compile(r"^\s*(range|log)\s*\(\s*([^,()]+?)\s*,\s*([^,()]+?)\s*\)\s*$")
_SIG_DIGITS = 4  # random floats are rounded to 4 significant digits: readable names, same trial for same seed


class SweepHost(Protocol):
    """What a sweep's operations use of the service (``TaskService`` is one): its store, its checks of a task's
    config, the row a trial is queued as, a task's stop, and the change notice."""

    store: "Store"

    def checked_config(self, config: Any) -> tuple[dict[str, Any], Any]: ...

    def checked_gpus(self, gpus: Any) -> int: ...

    def check_datasets(self, config: dict[str, Any]) -> None: ...

    def queue_row(self, values: dict, cfg: Any, name: str, gpus: int, **columns: Any) -> tuple[int, Path]: ...

    def stop(self, task_id: int) -> dict[str, Any]: ...

    def notify(self) -> None: ...


@dataclass(frozen=True)
class Dimension:
    """One key of the space: ``kind`` is choice (``values``), range (uniform in [lo, hi]) or log (log-uniform)."""

    key: str
    kind: str
    values: tuple = ()
    lo: float = 0.0
    hi: float = 0.0
    spec: str = ""  # as the user wrote a range, for messages and the stored space

    def draw(self, rng: random.Random) -> Any:
        if self.kind == "choice":
            return rng.choice(self.values)
        if self.kind == "range" and isinstance(self.lo, int) and isinstance(self.hi, int):
            return rng.randint(self.lo, self.hi)  # range(8,64) of whole numbers: both ends included
        x = rng.uniform(self.lo, self.hi) if self.kind == "range" else math.exp(
            rng.uniform(math.log(self.lo), math.log(self.hi)))
        return float(f"{x:.{_SIG_DIGITS}g}")

    def text(self) -> str:
        if self.kind == "choice":
            return ",".join(_scalar_text(v) for v in self.values)
        return self.spec.strip() or f"{self.kind}({self.lo},{self.hi})"


def _scalar_text(value: Any) -> str:
    return value if isinstance(value, str) else yaml.safe_dump(value, default_flow_style=True).strip().removesuffix(
        "\n...").strip()


def _number(key: str, text: str, whole: str) -> int | float:
    try:
        value = yaml.safe_load(text)
        if isinstance(value, str):  # YAML 1.1 reads 1e-4 as a string; Python reads it as the number meant
            value = float(value)
    except (yaml.YAMLError, ValueError):
        value = None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise BadRequest(f"{key}={whole}: {text!r} is not a number.", key)
    return value


def split_values(text: str) -> list[str]:
    """``a,b,[c,d]`` -> ['a', 'b', '[c,d]']: commas inside brackets or braces belong to the value."""
    parts, depth, current = [], 0, ""
    for ch in text:
        depth += ch in "[{("
        depth -= ch in "]})"
        if ch == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += ch
    return [*parts, current]


def parse_dimension(key: Any, spec: Any) -> Dimension:
    """A space entry as the CLI or the API gives it: a list of values, or text ``v1,v2`` / ``range(a,b)`` /
    ``log(a,b)``. BadRequest names the key and the value."""
    if not isinstance(key, str) or key not in FIELDS:
        raise BadRequest(f"{key}: not a config key (a sweep searches config keys, e.g. learning_rate=1e-4,2e-4).",
                         str(key))
    if key in ("output_dir", "overwrite_output_dir", "resume_from_checkpoint"):
        raise BadRequest(f"{key}: the service sets it for every trial; it cannot be swept.", key)
    if isinstance(spec, (list, tuple)):
        values = list(spec)
    elif isinstance(spec, str) and _RANGE.match(spec):
        kind, a, b = _RANGE.match(spec).groups()
        lo, hi = _number(key, a, spec), _number(key, b, spec)
        if not lo < hi:
            raise BadRequest(f"{key}={spec}: the first bound must be below the second.", key)
        if kind == "log" and lo <= 0:
            raise BadRequest(f"{key}={spec}: a log range needs bounds above 0.", key)
        return Dimension(key, kind, lo=lo, hi=hi, spec=spec)
    elif isinstance(spec, str):
        if re.match(r"^\s*(range|log)\s*\(", spec):
            raise BadRequest(f"{key}={spec}: expected range(a,b) or log(a,b) with two numbers.", key)
        values = [yaml.safe_load(v) if v.strip() else "" for v in split_values(spec)]
    else:
        values = [spec]
    if not values or any(v is None or v == "" for v in values):
        raise BadRequest(f"{key}={_scalar_text(spec)}: an empty value in the list.", key)
    return Dimension(key, "choice", values=tuple(values))


def parse_space(space: Any) -> list[Dimension]:
    if not isinstance(space, dict) or not space:
        raise BadRequest("space: expected a mapping of config keys to values to try, e.g. "
                         '{"learning_rate": [1e-4, 2e-4]} or {"learning_rate": "log(1e-5,1e-3)"}.', "space")
    return [parse_dimension(k, v) for k, v in space.items()]


def expand(dimensions: list[Dimension], n_random: int | None = None, seed: int = 0) -> list[dict[str, Any]]:
    """The trials' parameters: the grid (lists only) or ``n_random`` distinct draws with ``seed``."""
    if n_random is None:
        ranged = [d for d in dimensions if d.kind != "choice"]
        if ranged:
            raise BadRequest(f"{ranged[0].key}={ranged[0].text()}: a range needs --random N (a grid takes lists: "
                             f"{ranged[0].key}=v1,v2).", ranged[0].key)
        size = math.prod(len(d.values) for d in dimensions)
        if size > MAX_TRIALS:
            raise BadRequest(f"space: the grid has {size} trials; at most {MAX_TRIALS} (use --random N).", "space")
        return [dict(zip((d.key for d in dimensions), combo)) for combo in
                itertools.product(*(d.values for d in dimensions))]
    if isinstance(n_random, bool) or not isinstance(n_random, int) or not 1 <= n_random <= MAX_TRIALS:
        raise BadRequest(f"random={n_random!r}: expected a whole number of trials from 1 to {MAX_TRIALS}.", "random")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise BadRequest(f"seed={seed!r}: expected a whole number.", "seed")
    if all(d.kind == "choice" for d in dimensions):
        size = math.prod(len(set(map(repr, d.values))) for d in dimensions)
        if size < n_random:
            raise BadRequest(f"random={n_random}: the space has only {size} distinct trials.", "random")
    rng, trials, seen = random.Random(seed), [], set()
    for _ in range(100 * n_random):  # distinct draws; a continuous range practically never repeats
        params = {d.key: d.draw(rng) for d in dimensions}
        if repr(params) not in seen:
            seen.add(repr(params))
            trials.append(params)
            if len(trials) == n_random:
                return trials
    raise BadRequest(f"random={n_random}: found only {len(trials)} distinct trials in the space.", "random")


def params_text(params: dict[str, Any]) -> str:
    return " ".join(f"{k}={_scalar_text(v)}" for k, v in params.items())


# -- the sweep's settings -------------------------------------------------------------------------------------


def _checked_mode(metric: str, mode: Any) -> str:
    """The sweep's mode: the metric's direction (the task's best metric and checkpoint are chosen that way)."""
    direction = "min" if lower_is_better(metric) else "max"
    mode = mode or direction
    if mode not in MODES:
        raise BadRequest(f"mode={mode!r}: expected min or max.", "mode")
    if mode != direction:
        raise BadRequest(f"mode={mode}: {metric} is {'lower' if direction == 'min' else 'higher'}-is-better, so "
                         f"the mode is {direction}.", "mode")
    return mode


def _checked_settings(body: dict[str, Any]) -> dict[str, Any]:
    """metric, early_stop, grace_steps, min_trials, max_concurrent, name of a sweep request, checked (BadRequest
    names the field). No metric: the trials' own metric_for_best_model (plan() fills it in)."""
    metric = body.get("metric")
    if metric is not None and (not isinstance(metric, str) or not re.fullmatch(r"eval_[\w/]+", metric)):
        raise BadRequest(f"metric={metric!r}: expected an evaluation metric such as eval_loss.", "metric")
    mode = body.get("mode")
    if mode is not None and mode not in MODES:
        raise BadRequest(f"mode={mode!r}: expected min or max.", "mode")
    early_stop = body.get("early_stop") or None
    if early_stop not in (None, *EARLY_STOP):
        raise BadRequest(f"early_stop={early_stop!r}: expected median or asha.", "early_stop")
    grace = body.get("grace_steps", 0)
    if isinstance(grace, bool) or not isinstance(grace, int) or grace < 0:
        raise BadRequest(f"grace_steps={grace!r}: expected a whole number of steps >= 0.", "grace_steps")
    min_trials = body.get("min_trials", 2)
    if isinstance(min_trials, bool) or not isinstance(min_trials, int) or min_trials < 1:
        raise BadRequest(f"min_trials={min_trials!r}: expected a whole number of trials >= 1.", "min_trials")
    limit = body.get("max_concurrent")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise BadRequest(f"max_concurrent={limit!r}: expected a whole number >= 1.", "max_concurrent")
    name = body.get("name")
    if name is not None and (not isinstance(name, str) or "\x00" in name):
        raise BadRequest("name: expected a string without NUL bytes.", "name")
    return {"metric": metric, "mode": mode, "early_stop": early_stop, "grace_steps": grace, "min_trials": min_trials,
            "max_concurrent": limit, "name": (name or "").strip()[:200]}


def _checked_body(payload: Any) -> dict[str, Any]:
    if not isinstance(payload, dict):
        raise BadRequest('body: expected a JSON object {"config": {...}, "space": {"key": [v1, v2]}, ...}.', "body")
    unknown = sorted(set(payload) - SWEEP_FIELDS)
    if unknown:
        raise BadRequest(f"{unknown[0]}: unknown field (a sweep takes {', '.join(sorted(SWEEP_FIELDS))}).", unknown[0])
    if not isinstance(payload.get("config"), dict):
        raise BadRequest('config: missing or not a mapping (body: {"config": {...the YAML keys...}}).', "config")
    return payload


def plan(service: SweepHost, payload: Any) -> dict[str, Any]:
    """Expand and validate a sweep request without queuing anything: the trials' configs, or BadRequest naming
    the trial, key and value at fault."""
    body = _checked_body(payload)
    settings = _checked_settings(body)
    dimensions = parse_space(body.get("space"))
    params_list = expand(dimensions, body.get("random"), body.get("seed", 0))
    gpus = service.checked_gpus(body.get("gpus"))
    trials = []
    for i, params in enumerate(params_list, 1):
        metric = {"metric_for_best_model": settings["metric"]} if settings["metric"] else {}
        try:
            values, cfg = service.checked_config({**body["config"], **metric, **params})
            service.check_datasets(values)
        except BadRequest as exc:
            raise type(exc)(f"trial {i} ({params_text(params)}): {exc}", exc.key) from None
        trials.append({"params": {k: values[k] for k in params}, "values": values, "cfg": cfg})
    metrics = sorted({t["cfg"].metric_for_best_model for t in trials})
    if len(metrics) > 1:  # e.g. training_strategy swept: the trials would not be compared on one metric
        raise BadRequest(f"metric: the trials pick different metrics ({', '.join(metrics)}); set one.", "metric")
    settings["metric"] = metrics[0]
    settings["mode"] = _checked_mode(metrics[0], settings["mode"])
    return {"settings": settings, "dimensions": dimensions, "trials": trials, "gpus": gpus,
            "random": body.get("random"), "seed": body.get("seed", 0), "base": body["config"]}


# -- creating and showing sweeps --------------------------------------------------------------------------------


def create(service: SweepHost, payload: Any) -> dict[str, Any]:
    """Validate every trial, then insert the sweep and its trials as one transaction (all queued, or none)."""
    p = plan(service, payload)
    s = p["settings"]
    keys = ", ".join(d.key for d in p["dimensions"])
    name = s["name"] or keys  # the trial count is shown next to the name wherever it is printed
    space = {d.key: list(d.values) if d.kind == "choice" else d.text() for d in p["dimensions"]}
    base = {k: v for k, v in p["base"].items() if k not in ("output_dir", "overwrite_output_dir")}
    with service.store.transaction():
        sweep_id = service.store.insert_sweep(
            name=name, base_config=base, space=space, metric=s["metric"], mode=s["mode"],
            early_stop=s["early_stop"], grace_steps=s["grace_steps"], max_concurrent=s["max_concurrent"],
            # search: how trials were chosen and judged (min_trials: others that must reach a step to judge it)
            search={"random": p["random"], "seed": p["seed"] if p["random"] else None, "min_trials": s["min_trials"]},
            status=SWEEP_ACTIVE)
        run_dirs = [service.queue_row(t["values"], t["cfg"], f"{name} · {params_text(t['params'])}", p["gpus"],
                                      sweep_id=sweep_id, trial_params=t["params"])[1] for t in p["trials"]]
    from ..rundir import init_run_dir

    from .taskconfig import write_task_config

    for run_dir, trial in zip(run_dirs, p["trials"]):
        write_task_config(init_run_dir(run_dir), trial["cfg"])  # the file the trial trains from
    service.notify()
    return get(service, sweep_id)


def _seconds(start: str | None, end: str | None) -> float | None:
    if not start:
        return None
    t0 = calendar.timegm(time.strptime(start, "%Y-%m-%dT%H:%M:%SZ"))
    t1 = calendar.timegm(time.strptime(end, "%Y-%m-%dT%H:%M:%SZ")) if end else time.time()
    return max(0.0, float(round(t1 - t0)))


def _time_s(row: dict) -> float | None:
    """Seconds of training over every attempt (a trial resumed by hand adds its new attempt)."""
    this = _seconds(row.get("started_at"), row.get("finished_at"))
    earlier = row.get("earlier_attempts_s") or 0.0
    return None if this is None and not earlier else round((this or 0.0) + earlier, 1)


def trial_view(row: dict) -> dict[str, Any]:
    return {"id": row["id"], "name": row["name"], "status": row["status"], "params": row.get("trial_params") or {},
            "best_metric": row.get("best_metric"), "best_metric_name": row.get("best_metric_name"),
            "peak_gpu_gib": row.get("peak_gpu_gib"), "peak_host_gib": row.get("peak_host_gib"),
            "time_s": _time_s(row), "progress": row.get("progress"),
            "error": row.get("error") or (row.get("stop_reason") if row["status"] == STOPPED else None),
            "stop_reason": row.get("stop_reason")}


def winner(sweep: dict, trials: list[dict]) -> dict | None:
    """The trial with the best metric in the sweep's mode (any status: a stopped trial keeps its best checkpoint)."""
    scored = [t for t in trials if isinstance(t.get("best_metric"), (int, float))]
    if not scored:
        return None
    if sweep["mode"] == "min":  # a tie goes to the earlier trial
        return min(scored, key=lambda t: (t["best_metric"], t["id"]))
    return max(scored, key=lambda t: (t["best_metric"], -t["id"]))


def status_of(rows: list[dict]) -> str:
    if any(r["status"] == RUNNING for r in rows):
        return RUNNING
    if any(r["status"] == QUEUED for r in rows):
        return QUEUED
    return "finished" if rows else "empty"


def view(sweep: dict, rows: list[dict], with_trials: bool = True) -> dict[str, Any]:
    trials = [trial_view(r) for r in sorted(rows, key=lambda r: r["id"])]
    counts: dict[str, int] = {}
    for t in trials:
        counts[t["status"]] = counts.get(t["status"], 0) + 1
    best = winner(sweep, trials)
    out = {k: sweep[k] for k in ("id", "name", "created_at", "base_config", "space", "search", "metric", "mode",
                                 "early_stop", "grace_steps", "max_concurrent")}
    out.update(status=status_of(rows), counts=counts, trial_count=len(trials),
               pruned=sum(1 for t in trials if (t.get("stop_reason") or "").startswith("pruned")),
               winner={"id": best["id"], "params": best["params"], "best_metric": best["best_metric"],
                       "config": next(r["config"] for r in rows if r["id"] == best["id"])} if best else None)
    if with_trials:
        out["trials"] = trials
    return out


def get(service: SweepHost, sweep_id: int) -> dict[str, Any]:
    sweep = service.store.get_sweep(int(sweep_id))
    if sweep is None:
        raise NotFound(f"sweep {sweep_id}: no such sweep.")
    return view(sweep, service.store.sweep_tasks(sweep["id"]))


def list_all(service: SweepHost) -> list[dict[str, Any]]:
    return [view(s, service.store.sweep_tasks(s["id"]), with_trials=False) for s in service.store.list_sweeps()]


def stop(service: SweepHost, sweep_id: int) -> dict[str, Any]:
    """Stop every queued or running trial of a sweep (the normal stop of each task)."""
    get(service, sweep_id)
    service.store.update_sweep(int(sweep_id), status=SWEEP_STOPPED)  # the stored status: active, or stopped by request
    for row in service.store.sweep_tasks(int(sweep_id)):
        if row["status"] not in FINAL_STATUSES:
            try:
                service.stop(row["id"])
            except Exception:  # noqa: BLE001 - it ended meanwhile: nothing left to stop
                pass
    return get(service, sweep_id)


class SweepGate:
    """The queue's per-sweep limit: ``admit(task)`` says whether a queued trial may start now, counting the
    trials already running and those admitted in this pass."""

    def __init__(self, store: "Store", running: list[dict]):
        self.store = store
        self.limits: dict[int, int | None] = {}
        self.active: dict[int, int] = {}
        for task in running:
            if task.get("sweep_id") is not None:
                self.active[task["sweep_id"]] = self.active.get(task["sweep_id"], 0) + 1

    def admit(self, task: dict) -> bool:
        sweep_id = task.get("sweep_id")
        if sweep_id is None:
            return True
        if sweep_id not in self.limits:
            sweep = self.store.get_sweep(sweep_id)
            self.limits[sweep_id] = sweep.get("max_concurrent") if sweep else None
        limit = self.limits[sweep_id]
        if limit is not None and self.active.get(sweep_id, 0) >= limit:
            return False
        self.active[sweep_id] = self.active.get(sweep_id, 0) + 1
        return True
