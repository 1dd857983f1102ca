"""The best-model snapshot (``checkpoint-best/``): the best evaluated weights so far, with their own manifest.

Every checkpoint also carries the best weights as of its step (``best.safetensors``, a hard link when possible),
so a resumed run restores the snapshot that matches its own ``best_step`` (docs/reliability.md).
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from ...rundir import MANIFEST
from .manifest import WEIGHTS, swap_into_place, verify, write_manifest

BEST_IN_CHECKPOINT = "best.safetensors"  # the best-model weights as of the checkpoint's step


def write_best_manifest(best_dir: Path, step: int) -> None:
    """Record that ``checkpoint-best/`` holds the weights of ``step`` (hashes of its files, written last)."""
    write_manifest(best_dir, step)


def best_snapshot_step(best_dir: Path) -> int | None:
    """The step ``checkpoint-best/`` verifiably holds, or None (absent, no manifest, damaged)."""
    if verify(best_dir) is not None:
        return None
    step = json.loads((best_dir / MANIFEST).read_text(encoding="utf-8")).get("step")
    return step if type(step) is int else None


def link_or_copy(src: Path, dst: Path) -> None:
    """A hard link (no extra space; the snapshot is replaced by rename, never rewritten in place), else a copy."""
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def install_best(source: Path, best_dir: Path, step: int) -> None:
    """Make ``checkpoint-best/`` hold ``source`` (the weights of ``step``), atomically, with its manifest."""
    tmp = best_dir.with_name(best_dir.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    link_or_copy(source, tmp / WEIGHTS)
    write_manifest(tmp, step)
    swap_into_place(tmp, best_dir)
