"""Reading (and trimming) a run's JSONL records, its progress, its log and its exit status.

``metrics.jsonl`` has one writer (``monitor.MetricsLog``) and every reader reads it here: the curves image,
the model card's evaluations, the resume's trim, the task service's summary, follower and event stream.
A line is a record only when it is complete (ends with a newline): the last line of a file being written
may be half there, and it is read on a later poll instead.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..storage import writing
from .names import EXIT_FILE, PROGRESS_FILE


def _parse(lines: list[bytes], unreadable: bool, blank: bool = False) -> list[Any]:
    """JSON rows of ``lines``; an unreadable line as a marker row when ``unreadable``, else skipped; a blank line
    counts as an unreadable row only when ``blank`` (``read_jsonl``'s row positions count every line)."""
    rows: list[Any] = []
    for line in lines:
        if not blank and not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            if unreadable:
                rows.append({"unreadable_line": line.decode("utf-8", "replace")[:200]})
    return rows


def read_jsonl(path: str | Path, after: int = 0) -> list[Any]:
    """Complete rows of a JSONL file after the first ``after``; a half-written last line is left for later.

    A line that is not JSON is returned as ``{"unreadable_line": <its first 200 characters>}``.
    """
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        return []
    end = data.rfind(b"\n")
    return _parse(data[: end + 1].splitlines()[max(after, 0):], unreadable=True, blank=True)


def read_metrics(path: str | Path) -> list[dict]:
    """The complete records of a ``metrics.jsonl`` (none when it does not exist); unreadable lines are skipped."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        return []
    end = data.rfind(b"\n")
    return [r for r in _parse(data[: end + 1].splitlines(), unreadable=False) if isinstance(r, dict)]


def read_evaluations(path: str | Path) -> list[dict[str, Any]]:
    """The evaluation records of a run's metrics log (across resumes), each with its step."""
    return [record for record in read_metrics(path) if "eval_loss" in record]


def trim_metrics(path: Path, step: int) -> int:
    """Drop metrics records of steps after ``step`` (they are recomputed on resume); returns how many.

    Everything up to the checkpoint stays, byte for byte, so the log reads like one uninterrupted run; a
    torn last line (killed mid-write) is dropped too.
    """
    if not path.is_file():
        return 0
    kept, dropped = [], 0
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            dropped += 1
            continue
        if isinstance(record.get("step"), int) and record["step"] > step:
            dropped += 1
            continue
        kept.append(line)
    tmp = path.with_name(path.name + ".tmp")
    with writing(path):
        tmp.write_text("".join(k + "\n" for k in kept), encoding="utf-8")
        tmp.replace(path)
    return dropped


@dataclass
class JsonlTail:
    """Follows a JSONL file that grows (and that a resumed run may shorten): new complete rows per ``poll``."""

    path: Path
    rows: int = 0  # rows returned so far = the position of the next row
    _offset: int = 0
    reset: bool = field(default=False, init=False)  # set when the file was shortened since the last poll

    def skip_to(self, rows: int) -> None:
        self.rows, self._offset = 0, 0
        if rows > 0:
            self.poll(limit=rows)

    def poll(self, limit: int | None = None) -> list[dict]:
        self.reset = False
        try:
            size = os.path.getsize(self.path)
        except OSError:
            return []
        if size < self._offset:  # rewritten shorter (a resume drops the rows after its checkpoint)
            self.rows, self._offset, self.reset = 0, 0, True
        with open(self.path, "rb") as fh:
            fh.seek(self._offset)
            data = fh.read()
        out: list[dict] = []
        pos = 0
        while limit is None or len(out) < limit:
            nl = data.find(b"\n", pos)
            if nl < 0:
                break
            out += _parse([data[pos:nl]], unreadable=True)
            pos = nl + 1
        self._offset += pos
        self.rows += len(out)
        return out


def read_progress(run_dir: str | Path) -> dict | None:
    """``progress.json`` (``training.progress`` writes it every step), or None when absent or unreadable."""
    try:
        data = json.loads((Path(run_dir) / PROGRESS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("step"), int) else None


def read_exit_status(run_dir: str | Path) -> int | None:
    """The exit code a task process recorded in ``task_exit.json``, or None."""
    try:
        return int(json.loads((Path(run_dir) / EXIT_FILE).read_text())["exit_code"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def read_log(path: str | Path, offset: int = 0, limit: int = 65536) -> dict[str, Any]:
    """Text of a log from a byte offset; the chunk ends on a whole UTF-8 character."""
    try:
        size = os.path.getsize(path)
    except OSError:
        return {"offset": offset, "next_offset": offset, "size": 0, "text": ""}
    offset = min(max(offset, 0), size)
    with open(path, "rb") as fh:
        fh.seek(offset)
        chunk = fh.read(max(limit, 1))
    cut = len(chunk)
    # Do not split a multi-byte character: drop an incomplete trailing sequence (it comes with the next read).
    for back in range(1, min(4, len(chunk)) + 1):
        byte = chunk[-back]
        if byte & 0xC0 == 0x80:
            continue
        if byte & 0x80:
            need = 2 if byte & 0xE0 == 0xC0 else 3 if byte & 0xF0 == 0xE0 else 4
            if need > back:
                cut = len(chunk) - back
        break
    chunk = chunk[:cut]
    return {"offset": offset, "next_offset": offset + len(chunk), "size": size,
            "text": chunk.decode("utf-8", "replace")}


def log_error_line(path: str | Path) -> str | None:
    """The last 'tuneforge: error: ...' line, or the last non-empty line, of a log (a failed task's summary)."""
    try:
        size = os.path.getsize(path)
    except OSError:
        size = 0
    text = read_log(path, max(0, size - 16384), 16384)["text"]
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    for line in reversed(lines):
        if line.startswith("tuneforge: error:") or "Error" in line.split(":")[0]:
            return line[:500]
    return lines[-1][:500] if lines else None
