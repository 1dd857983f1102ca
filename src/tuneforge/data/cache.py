"""The tokenized cache: encoded rows as flat numpy arrays on disk, memory-mapped for training.

Storage (docs/data.md explains the choice): one directory per cache key holding raw little-endian
arrays and a ``manifest.json`` that lists every array's dtype, shape, size and CRC-32, the counts, the
dropped-row report and the human-readable key inputs. A directory is written under a temporary name
and renamed into place only when complete, so a reader sees a whole entry or none; an entry whose
manifest is missing, unreadable or disagrees with its files is treated as absent and rebuilt.

Arrays of an entry (``k`` kept rows, ``m`` converted examples, ``S`` segments per row):

- ``ids``        int32 (total tokens,)  token ids of every kept row, concatenated
- ``seg_len``    int32 (k, S)           SFT: the row's length (S=1); DPO: prompt, chosen, rejected (S=3)
- ``spans``      int32 (n spans, 2)     SFT: ``[start, end)`` token runs that are trained
- ``span_count`` int32 (k,)             SFT: spans per row
- ``prompt_len`` int32 (k,)             SFT: tokens before the first trained token of the last turn
- ``truncated``  uint8 (k,)             1 when truncation changed the row
- ``examples``   int64 (m, 3)           per converted row: file index, line, kept row index or -1-drop code
"""
from __future__ import annotations

import json
import os
import shutil
import time
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .encode import EncodedPair
from .templates import IGNORE_INDEX, Encoded

MANIFEST = "manifest.json"
FORMAT_VERSION = 1
_BLOCK = 16 << 20
ARRAYS: dict[str, tuple[str, int | None]] = {  # name -> (dtype, columns or None for 1-D)
    "ids": ("<i4", None), "seg_len": ("<i4", -1), "spans": ("<i4", 2), "span_count": ("<i4", None),
    "prompt_len": ("<i4", None), "truncated": ("u1", None), "examples": ("<i8", 3),
}


class CacheCorrupt(Exception):
    """A cache entry is incomplete or damaged: it is removed and rebuilt, never used."""


def crc32_file(path: Path) -> int:
    crc = 0
    with open(path, "rb") as fh:
        while block := fh.read(_BLOCK):
            crc = zlib.crc32(block, crc)
    return crc


class EntryWriter:
    """Appends chunks of encoded rows to the arrays of a new entry in a temporary directory."""

    def __init__(self, tmp_dir: Path, segments: int):
        self.dir, self.segments = tmp_dir, segments
        tmp_dir.mkdir(parents=True)
        self.files = {name: open(tmp_dir / f"{name}.bin", "wb") for name in ARRAYS}
        self.rows = {name: 0 for name in ARRAYS}

    def append(self, name: str, array: np.ndarray) -> None:
        dtype = ARRAYS[name][0]
        np.ascontiguousarray(array, dtype=dtype).tofile(self.files[name])
        self.rows[name] += len(array)

    def finish(self, manifest: dict[str, Any]) -> None:
        """Close the arrays and write the manifest last (the entry is complete only with it)."""
        arrays = {}
        for name, fh in self.files.items():
            fh.close()
            dtype, cols = ARRAYS[name]
            cols = self.segments if cols == -1 else cols
            shape = [self.rows[name]] + ([cols] if cols else [])
            path = self.dir / f"{name}.bin"
            arrays[name] = {"dtype": dtype, "shape": shape, "bytes": path.stat().st_size, "crc32": crc32_file(path)}
        manifest = {**manifest, "format_version": FORMAT_VERSION, "arrays": arrays,
                    "created": time.strftime("%Y-%m-%dT%H:%M:%S")}
        with open(self.dir / MANIFEST, "w", encoding="utf-8") as fh:
            json.dump(manifest, fh, ensure_ascii=False, indent=1)
            fh.flush()
            os.fsync(fh.fileno())

    def abort(self) -> None:
        for fh in self.files.values():
            fh.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def publish(tmp_dir: Path, final_dir: Path) -> None:
    """Move a finished entry into place atomically (rename within one file system)."""
    if final_dir.exists():  # a damaged entry found by the caller: replaced, never reused
        shutil.rmtree(final_dir)
    os.replace(tmp_dir, final_dir)


def read_manifest(entry: Path) -> dict[str, Any]:
    try:
        manifest = json.loads((entry / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CacheCorrupt(f"{entry}: manifest missing or unreadable ({exc})") from None
    if manifest.get("format_version") != FORMAT_VERSION or not isinstance(manifest.get("arrays"), dict):
        raise CacheCorrupt(f"{entry}: manifest of another format version")
    return manifest


def verify(entry: Path, manifest: dict[str, Any]) -> None:
    """Every array present with the size and CRC-32 the manifest recorded."""
    for name, meta in manifest["arrays"].items():
        path = entry / f"{name}.bin"
        if not path.is_file() or path.stat().st_size != meta["bytes"]:
            raise CacheCorrupt(f"{path}: missing or of the wrong size")
        if crc32_file(path) != meta["crc32"]:
            raise CacheCorrupt(f"{path}: checksum mismatch")


def _map(entry: Path, name: str, meta: dict[str, Any]) -> np.ndarray:
    dtype, shape = np.dtype(meta["dtype"]), list(meta["shape"])
    count = meta["bytes"] // dtype.itemsize
    if len(shape) == 2:
        shape = [count // shape[1], shape[1]]
    if count == 0:
        return np.zeros(shape if len(shape) == 2 else [0], dtype=dtype)
    return np.memmap(entry / f"{name}.bin", dtype=dtype, mode="r", shape=tuple(shape))


@dataclass
class TokenStore:
    """One verified cache entry, memory-mapped: encoded rows by index, without copying the data set."""

    entry: Path
    manifest: dict[str, Any]
    arrays: dict[str, np.ndarray]
    built_here: bool = False  # this process built the entry (others found it, or waited for it)

    @classmethod
    def open(cls, entry: Path, check: bool = True) -> "TokenStore":
        manifest = read_manifest(entry)
        if check:
            verify(entry, manifest)
        arrays = {name: _map(entry, name, meta) for name, meta in manifest["arrays"].items()}
        store = cls(entry, manifest, arrays)
        store._index()
        return store

    def _index(self) -> None:
        seg = np.asarray(self.arrays["seg_len"], dtype=np.int64)
        self.offsets = np.zeros(len(seg) + 1, dtype=np.int64)
        np.cumsum(seg.sum(axis=1), out=self.offsets[1:])
        if self.offsets[-1] != len(self.arrays["ids"]):
            raise CacheCorrupt(f"{self.entry}: row lengths do not add up to the stored tokens")
        counts = np.asarray(self.arrays["span_count"], dtype=np.int64)
        self.span_offsets = np.zeros(len(counts) + 1, dtype=np.int64)
        np.cumsum(counts, out=self.span_offsets[1:])

    @property
    def strategy(self) -> str:
        return self.manifest["strategy"]

    def __len__(self) -> int:
        return len(self.arrays["seg_len"])

    def lengths(self) -> np.ndarray:
        """Training length per kept row (SFT: tokens; DPO: prompt + the longer response)."""
        seg = np.asarray(self.arrays["seg_len"], dtype=np.int64)
        return seg[:, 0] if seg.shape[1] == 1 else seg[:, 0] + seg[:, 1:].max(axis=1)

    def item(self, k: int) -> Encoded | EncodedPair:
        start = int(self.offsets[k])
        seg = self.arrays["seg_len"][k]
        if len(seg) == 3:
            p, c = int(seg[0]), int(seg[1])
            ids = self.arrays["ids"][start: start + p + c + int(seg[2])].tolist()
            return EncodedPair(ids[:p], ids[p: p + c], ids[p + c:])
        ids = self.arrays["ids"][start: start + int(seg[0])].tolist()
        labels = [IGNORE_INDEX] * len(ids)
        for s, e in self.arrays["spans"][self.span_offsets[k]: self.span_offsets[k + 1]].tolist():
            labels[s:e] = ids[s:e]
        return Encoded(ids, labels, int(self.arrays["prompt_len"][k]))

    def source(self, example: int) -> str:
        file_index, line, _ = self.arrays["examples"][example].tolist()
        return f"{self.manifest['files'][file_index]}:{line}"


# ---------------------------------------------------------------------------------------------
# listing and clearing (``tuneforge cache ls|clear``)


def _entry_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.iterdir() if p.is_file())


def is_entry_name(name: str) -> bool:
    """Cache entries are named by their key (24 hex digits), temporary ones ``KEY.tmp-PID``."""
    key = name.split(".tmp-")[0]
    return len(key) == 24 and all(c in "0123456789abcdef" for c in key)


def list_entries(root: Path) -> list[dict[str, Any]]:
    """One record per entry directory under ``root``: key, state (ok / incomplete), data, rows, size."""
    out = []
    if not root.is_dir():
        return out
    for path in sorted(root.iterdir()):
        if not path.is_dir() or not is_entry_name(path.name):
            continue
        record: dict[str, Any] = {"key": path.name, "path": str(path), "bytes": _entry_bytes(path)}
        try:
            manifest = read_manifest(path)
            inputs = manifest.get("key_inputs", {})
            record.update(state="ok", data=inputs.get("data"), strategy=manifest.get("strategy"),
                          seq_length=inputs.get("seq_length"), rows=manifest.get("rows"),
                          created=manifest.get("created"))
        except CacheCorrupt:
            record["state"] = "incomplete"
        out.append(record)
    return out


def remove_entries(root: Path, keys: list[str] | None = None) -> list[str]:
    """Delete the named entries (all when ``keys`` is None); only directories named like entries are touched."""
    removed = []
    for record in list_entries(root):
        if keys is None or record["key"] in keys:
            shutil.rmtree(record["path"], ignore_errors=True)
            lock = root / f"{record['key']}.lock"
            if lock.is_file():
                lock.unlink()
            removed.append(record["key"])
    return removed
