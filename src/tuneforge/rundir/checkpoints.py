"""The checkpoint folders of a run directory, found by name (``checkpoint-N``), and which of them were completed.

What is inside a checkpoint, how it is written and verified, belongs to ``training.checkpoint``; which folders
exist and which one a stopped run can continue from (for messages and the task list) is read here, without torch.
"""
from __future__ import annotations

import re
from pathlib import Path

from .names import CHECKPOINT_PREFIX, MANIFEST

_NAME = re.compile("^" + re.escape(CHECKPOINT_PREFIX) + r"(\d+)$")


def checkpoint_step(name: str) -> int | None:
    """N for a folder named ``checkpoint-N``, else None."""
    match = _NAME.match(name)
    return int(match.group(1)) if match else None


def list_checkpoints(directory: Path) -> list[tuple[int, Path]]:
    """``checkpoint-N`` directories under ``directory`` (complete or not), oldest first."""
    if not directory.is_dir():
        return []
    found = [(step, p) for p in directory.iterdir() if p.is_dir() and (step := checkpoint_step(p.name)) is not None]
    return sorted(found)


def latest_saved(directory: Path) -> Path | None:
    """The newest checkpoint whose manifest was written (not re-hashed: for messages only)."""
    done = [p for _, p in list_checkpoints(directory) if (p / MANIFEST).is_file()]
    return done[-1] if done else None
