"""A checkpoint folder's files and its manifest: written atomically, verified before it is trusted.

Files go to ``checkpoint-N.tmp``; ``manifest.json`` (name, size, sha256 of every file) is written last; only then
is the directory renamed to ``checkpoint-N``. A checkpoint counts only when its manifest verifies, so a crash
mid-save leaves the previous one in charge.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any, Callable

from ...errors import ConfigError
from ...rundir import BEST_DIR, MANIFEST, checkpoint_step, list_checkpoints

STATE = "trainer_state.json"
WEIGHTS = "trainable.safetensors"
OPTIMIZER = "optimizer.pt"
SCHEDULER = "scheduler.pt"
SCALER = "scaler.pt"
# DeepSpeed's own sharded checkpoint (weights + optimizer, one file per process); the folder name is on disk
DEEPSPEED_DIR = "engine"
FORMAT_VERSION = 1


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def verify(path: Path) -> str | None:
    """None when ``path`` is a complete checkpoint, else why not."""
    manifest = path / MANIFEST
    if not manifest.is_file():
        return "no manifest.json (the save did not finish)"
    try:
        data = json.loads(manifest.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return "manifest.json is unreadable"
    files, why = _manifest_files(data, path)
    if why is not None:
        return why
    for name, meta in files.items():
        f = path / name
        if not f.is_file():
            return f"{name} is missing"
        if f.stat().st_size != meta["size"]:
            return f"{name} is truncated or altered ({f.stat().st_size} bytes, expected {meta['size']})"
        if file_sha256(f) != meta["sha256"]:
            return f"{name} is corrupt (sha256 mismatch)"
    if path.name != BEST_DIR:
        try:
            read_state(path)
        except (OSError, ValueError, KeyError, TypeError):
            return f"{STATE} is malformed"
    return None


def _manifest_files(data: Any, path: Path) -> tuple[dict[str, dict], str | None]:
    """The manifest's file table when it has the right shape (and names what a checkpoint needs), else why not."""
    bad = "manifest.json is malformed"
    files = data.get("files") if isinstance(data, dict) else None
    if not isinstance(files, dict) or not files:
        return {}, f"{bad} (no file table)"
    for name, meta in files.items():
        parts = Path(name).parts
        if not name or Path(name).is_absolute() or ".." in parts:
            return {}, f"{bad} (file name {name[:80]!r})"
        if not (isinstance(meta, dict) and type(meta.get("size")) is int and isinstance(meta.get("sha256"), str)
                and len(meta["sha256"]) == 64):
            return {}, f"{bad} (entry for {name[:80]!r})"
    step = checkpoint_step(path.name)
    if step is not None and data.get("step") != step:
        return {}, f"{bad} (it says step {str(data.get('step'))[:20]}, the directory step {step})"
    needed = {WEIGHTS} if path.name == BEST_DIR else {STATE, SCHEDULER}
    if path.name != BEST_DIR and not any(n.startswith(DEEPSPEED_DIR + "/") for n in files):
        needed |= {WEIGHTS, OPTIMIZER}
    missing = sorted(needed - set(files))
    if missing:
        return {}, f"{bad} (it does not list {', '.join(missing)})"
    return files, None


def latest_complete(directory: Path, say: Callable[[str], None]) -> Path | None:
    """The newest verified checkpoint; unusable ones are named and skipped. Refuses when all are unusable."""
    found = list_checkpoints(directory)
    problems = []
    for _, path in reversed(found):
        why = verify(path)
        if why is None:
            for bad in problems:
                say(f"warning: skipping {bad}")
            return path
        problems.append(f"{path.name}: {why}")
    if problems:
        raise ConfigError(f"resume_from_checkpoint: no complete checkpoint in {directory} ({'; '.join(problems)}). "
                          "Set overwrite_output_dir=true to start the run over, or give a checkpoint path.")
    return None


def read_state(path: Path) -> dict[str, Any]:
    """A checkpoint's ``trainer_state.json``; ValueError when it does not have the shape the loop writes."""
    state = json.loads((path / STATE).read_text(encoding="utf-8"))
    train = state.get("train_state") if isinstance(state, dict) else None
    if not isinstance(train, dict) or type(train.get("global_step")) is not int:
        raise ValueError(f"{path / STATE}: no train_state")
    if not all(v is None or type(v) in (int, float) for v in train.values()):
        raise ValueError(f"{path / STATE}: train_state holds a value that is not a number")
    return state


def fsync_path(path: Path) -> None:
    """Flush ``path`` (a file or a directory's entries) to the disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_manifest(directory: Path, step: int) -> None:
    """Last file of a checkpoint: its presence and hashes are what make the checkpoint complete."""
    files = {}
    for f in sorted(directory.rglob("*")):  # nested: DeepSpeed writes its shards in subdirectories
        if f.is_file() and f.name != MANIFEST:
            fsync_path(f)
            files[f.relative_to(directory).as_posix()] = {"size": f.stat().st_size, "sha256": file_sha256(f)}
    tmp = directory / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps({"format": FORMAT_VERSION, "step": step, "files": files,
                               "written": time.strftime("%Y-%m-%dT%H:%M:%S")}, indent=1), encoding="utf-8")
    fsync_path(tmp)
    tmp.replace(directory / MANIFEST)


def swap_into_place(tmp: Path, final: Path) -> None:
    """Rename ``tmp`` to ``final``; an existing ``final`` (same step, e.g. re-saved after resume) goes last."""
    old = final.with_name(final.name + ".old")
    if old.exists():
        shutil.rmtree(old)
    if final.exists():
        final.rename(old)
    tmp.rename(final)
    fsync_path(final.parent)
    if old.exists():
        shutil.rmtree(old)
