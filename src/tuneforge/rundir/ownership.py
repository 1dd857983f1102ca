"""Which directories are tuneforge runs, who is using one, and what a new run may remove from one.

A directory is a run directory only when it holds the marker file ``.tuneforge-run``, written first
(before any other file) when a run starts in a new or empty directory. A non-empty directory without
the marker belongs to someone else: it is refused and nothing in it is touched.

A run holds ``fcntl.flock`` on ``.tuneforge-lock`` for its whole life; the operating system releases
it when the process dies in any way, so a crash never leaves a stale lock. docs/reliability.md
describes the contract the task service relies on.
"""
from __future__ import annotations

import errno
import fcntl
import json
import os
import shutil
import time
from pathlib import Path

from ..errors import ConfigError
from ..storage import writing
from .names import CONFIG_FILE, LOCK, MARKER, RUN_FILES, RUN_PATTERNS


def is_finished(run_dir: str | Path) -> bool:
    """The resolved config is written last: a run directory holding it is a finished run."""
    return (Path(run_dir) / CONFIG_FILE).is_file()


def is_run_dir(path: str | Path) -> bool:
    """True when ``path`` carries the tuneforge run marker."""
    return (Path(path) / MARKER).is_file()


def _read_pid(lock_path: Path) -> int | None:
    try:
        return int(json.loads(lock_path.read_text(encoding="utf-8"))["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def lock_holder(path: str | Path) -> int | None:
    """The pid of the live process holding the run's lock, or None when no run holds it."""
    lock_path = Path(path) / LOCK
    try:
        fd = os.open(lock_path, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return _read_pid(lock_path) or -1
        raise
    finally:
        os.close(fd)  # closing drops the probe's shared lock
    return None


def init_run_dir(path: str | Path) -> Path:
    """Create ``path`` (if needed) and mark it as a tuneforge run directory.

    For a task runner that writes its own files (a log) into the run directory before ``tuneforge train``
    starts. Refuses a non-empty directory that is not already a run directory.
    """
    out = Path(path)
    _refuse_foreign(out, "output_dir")
    out.mkdir(parents=True, exist_ok=True)
    if not is_run_dir(out):
        _write_marker(out)
    return out


def _entries(out: Path) -> list[str]:
    return sorted(p.name for p in out.iterdir() if p.name != LOCK) if out.is_dir() else []


def _refuse_foreign(out: Path, key: str) -> None:
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{key}={str(out)!r}: exists and is not a directory.")
    if out.is_dir() and not is_run_dir(out) and _entries(out):
        shown = ", ".join(_entries(out)[:5]) + (" ..." if len(_entries(out)) > 5 else "")
        raise ConfigError(
            f"{key}={str(out)!r} is not empty ({shown}) and is not a tuneforge run directory (it has no {MARKER} "
            "marker): nothing in it was touched. Choose a new or empty output_dir.")


def _write_marker(out: Path) -> None:
    from .. import __version__

    tmp = out / (MARKER + ".tmp")
    tmp.write_text(json.dumps({"tuneforge_run": 1, "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
                               "tuneforge_version": __version__}) + "\n", encoding="utf-8")
    tmp.replace(out / MARKER)


class RunLock:
    """The exclusive lock on a run directory, held from ``claim`` until ``release`` (or process death)."""

    def __init__(self, out: Path, fd: int):
        self.path, self._fd = out, fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = None


def claim(output_dir: str | Path) -> RunLock:
    """Lock ``output_dir`` for this run and mark it as a run directory; refuse a foreign or busy directory.

    Order matters: a foreign directory is refused before anything is created in it; the lock is taken
    before the marker is written, and the directory is checked again under the lock (another process
    may have written into it meanwhile).
    """
    out = Path(output_dir)
    _refuse_foreign(out, "output_dir")
    lock_path = out / LOCK
    with writing(lock_path):
        out.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            raise
        pid = _read_pid(lock_path)
        who = f"pid {pid}" if pid else "another process"
        raise ConfigError(f"output_dir={str(out)!r} is in use by another tuneforge run ({who}). Wait for it to "
                          "finish or stop it, or choose another output_dir.") from None
    lock = RunLock(out, fd)
    try:
        _refuse_foreign(out, "output_dir")
        with writing(out / MARKER):
            os.ftruncate(fd, 0)
            holder = {"pid": os.getpid(), "started": time.strftime("%Y-%m-%dT%H:%M:%S")}
            os.write(fd, (json.dumps(holder) + "\n").encode())
            if not is_run_dir(out):
                _write_marker(out)
    except BaseException:
        lock.release()
        raise
    return lock


def clear_run_files(out: Path) -> list[str]:
    """Remove what an earlier run wrote into this run directory (never anything else); returns the names."""
    if not is_run_dir(out):  # never reached through claim(); a guard for other callers
        raise ConfigError(f"output_dir={str(out)!r} is not a tuneforge run directory: nothing removed.")
    targets = [out / name for name in RUN_FILES]
    for pattern in RUN_PATTERNS:
        targets += list(out.glob(pattern))
    removed = []
    for target in targets:
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        elif target.exists() or target.is_symlink():
            target.unlink()
        else:
            continue
        removed.append(target.name)
    return removed
