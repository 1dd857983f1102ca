"""Early stopping between the trials of a sweep, decided in the worker's pass from the trials' metrics.jsonl.

Both rules compare a trial's *best value so far* at an evaluated step with what the other trials of its sweep
had reached by the same step (a trial "reached" step s when it has evaluated at s or later):

* median (the median stopping rule of Google Vizier): at each evaluation at step s >= grace_steps, a trial is
  stopped when its best so far is worse than the median of the others' best so far at s.
* asha (asynchronous successive halving, in its stopping form): rungs at grace_steps * 3**k (grace_steps >= 1);
  when a trial passes a rung it continues only if its best so far is within the best third of the trials that
  reached that rung.

A rule decides only when at least ``min_trials`` other trials (the sweep's setting, default ``MIN_OTHERS``)
reached the step, so the first trials of a sweep are not judged against one lucky or unlucky run, and a trial is
never judged at its final evaluation (it has finished). A decision stops the trial through the normal stop path
with the reason recorded in ``tasks.stop_reason`` (kept across restarts: the database is the record). A trial
resumed by hand after it was pruned is never pruned again: the user overrode the decision. Failed trials count
with the evaluations they made and never stop the sweep.
"""
from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from . import RUNNING
from ..rundir import METRICS_FILE, JsonlTail

if TYPE_CHECKING:
    from .store import Store

MIN_OTHERS = 2
ASHA_ETA = 3


@dataclass
class History:
    """A trial's evaluations of one metric: (step, value) in file order, folded from its metrics.jsonl."""

    metric: str
    points: list[tuple[int, float]] = field(default_factory=list)

    def add(self, row: dict) -> None:
        value, step = row.get(self.metric), row.get("step")
        if isinstance(value, (int, float)) and isinstance(step, (int, float)) and not isinstance(value, bool):
            self.points.append((int(step), float(value)))

    @property
    def last_step(self) -> int | None:
        return max((s for s, _ in self.points), default=None)

    def best_at(self, step: int, better: Callable[[float, float], bool]) -> float | None:
        """Best value over evaluations at steps <= ``step``, if the trial evaluated at ``step`` or later."""
        if self.last_step is None or self.last_step < step:
            return None
        best = None
        for s, v in self.points:
            if s <= step and (best is None or better(v, best)):
                best = v
        return best


def _better(mode: str) -> Callable[[float, float], bool]:
    return (lambda a, b: a < b) if mode == "min" else (lambda a, b: a > b)


def _sign(mode: str) -> str:
    return ">" if mode == "min" else "<"


def median_decision(trial: History, others: list[History], mode: str, grace_steps: int,
                    min_others: int = MIN_OTHERS) -> str | None:
    """The reason to stop ``trial`` at its latest evaluation by the median rule, or None to let it run."""
    step = trial.last_step
    if step is None or step < max(grace_steps, 1):
        return None
    better = _better(mode)
    mine = trial.best_at(step, better)
    theirs = [v for v in (o.best_at(step, better) for o in others) if v is not None]
    if mine is None or len(theirs) < min_others:
        return None
    median = statistics.median(theirs)
    if better(median, mine):
        return f"pruned at step {step}, {trial.metric} {mine:.4g} {_sign(mode)} median {median:.4g}"
    return None


def asha_rungs(grace_steps: int, up_to: int) -> list[int]:
    first = max(grace_steps, 1)
    rungs, r = [], first
    while r <= up_to:
        rungs.append(r)
        r *= ASHA_ETA
    return rungs


def asha_decision(trial: History, others: list[History], mode: str, grace_steps: int,
                  min_others: int = MIN_OTHERS) -> str | None:
    """The reason to stop ``trial`` at the highest rung it passed (ASHA, reduction factor 3), or None."""
    step = trial.last_step
    if step is None:
        return None
    better = _better(mode)
    for k, rung in reversed(list(enumerate(asha_rungs(grace_steps, step)))):
        mine = trial.best_at(rung, better)
        theirs = [v for v in (o.best_at(rung, better) for o in others) if v is not None]
        if mine is None or len(theirs) < min_others:
            continue
        ranked = sorted([mine, *theirs], reverse=(mode == "max"))
        keep = max(1, len(ranked) // ASHA_ETA)
        cutoff = ranked[keep - 1]  # the worst value still in the top third
        if better(cutoff, mine):
            return (f"pruned at step {step}, {trial.metric} {mine:.4g} {_sign(mode)} ASHA rung {k} "
                    f"(step {rung}) cutoff {cutoff:.4g}")
        return None
    return None


RULES: dict[str, Callable[..., str | None]] = {
    "median": median_decision, "asha": asha_decision}


class Pruner:
    """Follows the metrics of every trial of the sweeps that prune; ``check()`` runs once per worker pass (the
    service owns one and hands ``check`` to its worker as the sweep pass). It keeps its own state between passes
    and stops a trial through ``request_stop`` (the worker's normal stop path), then calls ``notify``."""

    def __init__(self, store: "Store", request_stop: Callable[[dict], None], notify: Callable[[], None]):
        self.store, self.request_stop, self.notify = store, request_stop, notify
        self._tails: dict[int, tuple[JsonlTail, History]] = {}

    def history(self, task: dict, metric: str) -> History:
        tail, history = self._tails.get(task["id"], (None, None))
        path = Path(task["run_dir"]) / METRICS_FILE
        if tail is None or history is None or history.metric != metric or tail.path != path:
            tail, history = JsonlTail(path), History(metric)
            self._tails[task["id"]] = (tail, history)
        rows = tail.poll()
        if tail.reset:  # a resumed run rewrote its metrics from its checkpoint
            history.points.clear()
        for row in rows:
            history.add(row)
        return history

    def check(self) -> None:
        store = self.store
        running = [t for t in store.list_tasks(RUNNING) if t.get("sweep_id") is not None]
        followed: set[int] = set()
        for sweep_id in sorted({t["sweep_id"] for t in running}):
            sweep = store.get_sweep(sweep_id)
            rule = RULES.get((sweep or {}).get("early_stop") or "")
            if rule is None:
                continue
            trials = store.sweep_tasks(sweep_id)
            min_others = (sweep.get("search") or {}).get("min_trials") or MIN_OTHERS
            histories = {t["id"]: self.history(t, sweep["metric"]) for t in trials}
            followed.update(histories)
            for task in trials:
                if task["status"] != RUNNING or task.get("stop_requested") or task.get("stop_reason"):
                    continue  # stopping already, or pruned once and resumed by hand
                total = (task.get("progress") or {}).get("total_steps")
                if total and (histories[task["id"]].last_step or 0) >= total:
                    continue  # its final evaluation: stopping it now would only mark a finished run as stopped
                others = [h for i, h in histories.items() if i != task["id"]]
                reason = rule(histories[task["id"]], others, sweep["mode"], sweep["grace_steps"], min_others)
                if reason:
                    self.prune(task, reason)
        for task_id in set(self._tails) - followed:  # sweeps that ended: read again from the files if resumed
            del self._tails[task_id]

    def prune(self, task: dict, reason: str) -> None:
        """Stop a trial as ``tuneforge tasks stop`` would, with the reason recorded first (one statement)."""
        if self.store.update_task(task["id"], where_status=[RUNNING], stop_requested=1, stop_reason=reason):
            self.request_stop(self.store.get_task(task["id"]))
            self.notify()
