"""Fault injection for tests: kill the process or fail a write at a named point of a run.

``TUNEFORGE_FAULT=<point>[@<step>]:<action>`` with action ``kill`` (SIGKILL this process, as a power cut would) or
``enospc`` (raise the error a full disk raises). Points: ``after_best_snapshot`` (a step's end, after a
new best-model snapshot was recorded), ``before_checkpoint_manifest`` (a checkpoint's files are written, its
manifest is not), ``before_outputs`` (training done, nothing of the final output written); ``@<step>``
fires only at that optimizer step (e.g. ``after_best_snapshot@8:kill``). Unset, a point costs one
dictionary lookup.
"""
from __future__ import annotations

import errno
import os
import signal

ENV = "TUNEFORGE_FAULT"


def point(name: str, step: int | None = None) -> None:
    spec = os.environ.get(ENV)
    if not spec:
        return
    where, _, action = spec.partition(":")
    where, _, at = where.partition("@")
    if where != name or (at and str(step) != at):
        return
    if action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    if action == "enospc":
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), f"<fault injected at {name}>")
