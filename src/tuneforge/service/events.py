"""Server-sent events for one task: its status and summary, new metrics and resources rows, new log text.

Each event's id is the position ``M-R-L`` (metric rows, resource rows, log bytes seen so far), so a client
that reconnects with ``Last-Event-ID`` continues exactly where it stopped, missing nothing and repeating
nothing. A resumed run rewrites metrics.jsonl without the rows after its checkpoint: the stream then sends
``reset`` and the metric rows again from the first.
"""
from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, AsyncIterator, Callable

from . import FINAL_STATUSES
from ..rundir import METRICS_FILE, RESOURCES_FILE, JsonlTail

if TYPE_CHECKING:
    from .core import TaskService

POSITION = re.compile(r"^(\d+)-(\d+)-(\d+)$")


def parse_position(text: str | None) -> tuple[int, int, int] | None:
    """``M-R-L`` → (M, R, L); None for no position; ValueError for a malformed one."""
    if not text:
        return None
    match = POSITION.match(text.strip())
    if not match:
        raise ValueError(f"position {text!r}: expected M-R-L (three whole numbers, as in the events' ids).")
    return int(match.group(1)), int(match.group(2)), int(match.group(3))


def _event(name: str, data: object, position: str) -> str:
    return f"id: {position}\nevent: {name}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


async def task_events(service: "TaskService", task_id: int, start: tuple[int, int, int] | None,
                      disconnected: Callable[[], "asyncio.Future[bool]"], poll: float = 0.5) -> AsyncIterator[str]:
    task = service.get_task(task_id)  # NotFound before the stream starts
    run_dir = Path(task["run_dir"])
    m, r, log_offset = start or (0, 0, 0)
    metrics, resources = JsonlTail(run_dir / METRICS_FILE), JsonlTail(run_dir / RESOURCES_FILE)
    metrics.skip_to(m)
    resources.skip_to(r)
    last_task = None
    yield "retry: 2000\n\n"
    while not await disconnected():
        try:
            task = service.get_task(task_id)
        except Exception:  # deleted meanwhile
            yield _event("end", {"id": task_id, "deleted": True}, _pos(metrics, resources, log_offset))
            return
        if task != last_task:  # first, so a client knows the task before its rows arrive
            last_task = task
            yield _event("task", task, _pos(metrics, resources, log_offset))
        rows = metrics.poll()
        if metrics.reset:
            yield _event("reset", {"metrics": 0}, _pos(metrics, resources, log_offset))
        for i, row in enumerate(rows):
            yield _event("metric", row, f"{metrics.rows - len(rows) + i + 1}-{resources.rows}-{log_offset}")
        new_resources = resources.poll()
        for i, row in enumerate(new_resources):
            yield _event("resource", row, f"{metrics.rows}-{resources.rows - len(new_resources) + i + 1}-{log_offset}")
        chunk = service.log(task_id, log_offset, 65536)
        if chunk["text"]:
            log_offset = chunk["next_offset"]
            yield _event("log", {"offset": chunk["offset"], "text": chunk["text"]},
                         _pos(metrics, resources, log_offset))
        if task["status"] in FINAL_STATUSES and not rows and not new_resources and not chunk["text"]:
            yield _event("end", {"id": task_id, "status": task["status"]}, _pos(metrics, resources, log_offset))
            return
        await asyncio.sleep(poll)


def _pos(metrics: JsonlTail, resources: JsonlTail, log_offset: int) -> str:
    return f"{metrics.rows}-{resources.rows}-{log_offset}"
