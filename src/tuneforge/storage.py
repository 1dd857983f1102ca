"""Writing to disk: a full disk (or another OS write error) becomes one message naming the path, exit code 4.

Libraries report a full disk in their own words: ``OSError(ENOSPC)`` from Python, ``RuntimeError('...
file write failed')`` from ``torch.save``, a ``SafetensorError`` mentioning ``StorageFull`` from
safetensors. ``writing(path, needed)`` recognises them around one write and says how much space the
write needs and how much is free.
"""
from __future__ import annotations

import contextlib
import errno
import os
import shutil
from pathlib import Path
from typing import Iterator

from .errors import TuneforgeError

GIB = 1024 ** 3
_SPACE_ERRNOS = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC), errno.EFBIG}
_SPACE_WORDS = ("no space left", "storagefull", "disk quota", "file write failed", "file too large")


class StorageError(TuneforgeError):
    """Writing failed (no space left, quota, read-only file system); what was complete before is kept."""

    exit_code = 4


def free_bytes(path: Path) -> int | None:
    """Free space on the file system holding ``path`` (or its nearest existing parent)."""
    probe = Path(path)
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        return shutil.disk_usage(probe).free
    except OSError:
        return None


def _gib(n: int | None) -> str:
    return "unknown" if n is None else f"{n / GIB:.2f} GiB"


def space_message(path: Path, needed: int | None, exc: BaseException) -> str:
    need = f" it needs about {_gib(needed)} free" if needed else ""
    return (f"cannot write {path}: no space left on the device ({_gib(free_bytes(path))} free;{need}). "
            "What was complete before is kept: free some space, then rerun the same command to resume from the "
            "last complete checkpoint.")


@contextlib.contextmanager
def writing(path: str | Path, needed: int | None = None) -> Iterator[None]:
    """Around one write to ``path``: out-of-space and other OS write errors become ``StorageError``."""
    try:
        yield
    except StorageError:
        raise
    except Exception as exc:  # SafetensorError is a plain Exception subclass
        if _out_of_space(exc):
            raise StorageError(space_message(Path(path), needed, exc)) from None
        if isinstance(exc, OSError) and exc.errno is not None:  # read-only, permission, not a directory ...
            raise StorageError(f"cannot write {getattr(exc, 'filename', None) or path}: "
                               f"{os.strerror(exc.errno)}.") from None
        raise


def _out_of_space(exc: BaseException) -> bool:
    if isinstance(exc, OSError) and exc.errno in _SPACE_ERRNOS:
        return True
    if isinstance(exc, MemoryError):
        return False
    return any(word in str(exc).lower() for word in _SPACE_WORDS)


def dir_bytes(path: Path) -> int:
    """Bytes of the files under ``path`` (0 when absent): the size a new checkpoint will roughly have."""
    if not path.is_dir():
        return 0
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
