"""A data set's file on disk: received in full under a private name, then published under a name that no other
upload can take, and never changed afterwards.

Two uploads of ``train.jsonl`` at the same moment used to pick the same free name and replace each other's
file. Here each upload streams into ``datasets/.incoming/<random>`` (counted and hashed while it streams, cut
at the limit), and is published by first *creating* the final name with ``O_EXCL`` — which exactly one caller
can do — then moving its bytes onto that placeholder. A digest and size recorded with the row let a task
refuse a file that was changed by hand afterwards.
"""
from __future__ import annotations

import hashlib
import os
import re
import uuid
from pathlib import Path
from typing import BinaryIO

from ..pathtext import path_text_problem
from .errors import BadRequest, TooLarge

DATA_SUFFIXES = (".json", ".jsonl", ".csv", ".parquet")
MAX_STEM = 100  # characters of the published name's stem (the original name is kept in the row's name)
CHUNK = 1 << 20
INCOMING = ".incoming"


def upload_name(filename: str) -> tuple[str, str]:
    """(safe stem, suffix) of an uploaded file's name; BadRequest naming ``file`` when it cannot be one."""
    if not isinstance(filename, str) or not filename:
        raise BadRequest("file: the upload has no file name.", "file")
    problem = "contains a NUL byte" if "\x00" in filename else None
    base = Path(filename.replace("\\", "/")).name
    problem = problem or path_text_problem(base)
    if problem:
        raise BadRequest(f"file {base[:60]!r}{'...' if len(base) > 60 else ''}: the name {problem}.", "file")
    suffix = Path(base).suffix.lower()
    if suffix not in DATA_SUFFIXES:
        raise BadRequest(f"file {base!r}: expected a {', '.join(DATA_SUFFIXES)} file.", "file")
    stem = re.sub(r"[^A-Za-z0-9_-]+", "_", Path(base).stem).strip("_")[:MAX_STEM].strip("_") or "data"
    return stem, suffix


def receive(source: bytes | BinaryIO, incoming: Path, suffix: str, limit: int) -> tuple[Path, int, str]:
    """Write the upload to a private file in ``incoming``: (its path, size in bytes, sha256 hex).

    Over ``limit`` bytes: TooLarge, and nothing is left behind."""
    incoming.mkdir(parents=True, exist_ok=True)
    tmp = incoming / f"{uuid.uuid4().hex}{suffix}"
    digest, size = hashlib.sha256(), 0
    try:
        with open(tmp, "xb") as out:
            for chunk in _chunks(source):
                size += len(chunk)
                if size > limit:
                    raise TooLarge(f"file: over the upload limit of {limit / 2**20:g} MiB.", "file")
                digest.update(chunk)
                out.write(chunk)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return tmp, size, digest.hexdigest()


def _chunks(source: bytes | BinaryIO):
    if isinstance(source, (bytes, bytearray)):
        for start in range(0, len(source), CHUNK):
            yield bytes(source[start:start + CHUNK])
        return
    while True:
        chunk = source.read(CHUNK)
        if not chunk:
            return
        yield chunk


def publish(tmp: Path, directory: Path, stem: str, suffix: str, taken) -> Path:
    """Move ``tmp`` to ``directory/<stem>[-N]<suffix>``, a name no file had and ``taken(path)`` does not
    claim; exactly one concurrent caller wins each name (``O_EXCL``), the others try the next."""
    for n in range(1, 100_000):
        final = directory / (f"{stem}{suffix}" if n == 1 else f"{stem}-{n}{suffix}")
        try:
            os.close(os.open(final, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
        except FileExistsError:
            continue
        if taken(str(final)):  # a row whose file was removed by hand still owns the name: leave it alone
            final.unlink()
            continue
        os.replace(tmp, final)  # onto our own empty placeholder: no one else's file is replaced
        return final
    raise BadRequest(f"file: no free name for {stem}{suffix} in {directory}.", "file")


def file_digest(path: Path) -> tuple[int, str]:
    """(size in bytes, sha256 hex) of a file, read in chunks."""
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(CHUNK), b""):
            size += len(chunk)
            digest.update(chunk)
    return size, digest.hexdigest()
