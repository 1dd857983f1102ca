"""Read data files and turn each row, whatever its format, into one canonical example.

SFT rows become a ``Conversation`` (a list of role/content messages); DPO rows a ``PreferencePair``.
Formats (DESIGN.md §2) are detected per file from the first row's keys, then every row is checked
against that format; a defect is reported with the file, the line (JSONL) or row number, and the field.
"""
from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from ..errors import DataError

ROLES = ("system", "user", "assistant")
SHAREGPT_ROLES = {"system": "system", "human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant"}


@dataclass
class Message:
    role: str
    content: str


@dataclass
class Conversation:
    messages: list[Message]
    source: str = ""  # "file:line", for messages about this row later on


@dataclass
class PreferencePair:
    prompt: list[Message]  # system?/user/assistant... ending with a user turn
    chosen: str
    rejected: str
    source: str = ""


@dataclass
class RowReport:
    """Rows dropped before training, counted by reason (``on_bad_rows: skip`` and truncation)."""

    dropped: dict[str, int] = field(default_factory=dict)
    examples: dict[str, str] = field(default_factory=dict)

    def drop(self, reason: str, where: str) -> None:
        self.dropped[reason] = self.dropped.get(reason, 0) + 1
        self.examples.setdefault(reason, where)

    @property
    def total(self) -> int:
        return sum(self.dropped.values())

    def summary(self) -> str:
        """'; dropped N rows: reason: count, ...' or '' (appended to the start banner's data line)."""
        if not self.total:
            return ""
        return f"; dropped {self.total} rows: " + ", ".join(f"{k}: {v}" for k, v in self.dropped.items())


# ---------------------------------------------------------------------------------------------
# files → (line number, raw row)


@dataclass
class InvalidLine:
    """A JSONL line that is not valid JSON, yielded (instead of raised) when the caller skips bad rows."""

    error: DataError


def _read_text(path: Path) -> str:
    """The file as text: UTF-8, with or without a byte-order mark; anything else is a clear error."""
    raw = path.read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise DataError(str(path), line, None, f"not UTF-8 text (byte {exc.start}); save the file as UTF-8") from None


def read_rows(path: str | Path, keep_invalid: bool = False) -> Iterator[tuple[int, Any]]:
    """Yield ``(line_or_row_number, row)``; numbers are 1-based file lines for JSONL, row indices otherwise.

    An invalid JSONL line raises a DataError, or with ``keep_invalid`` is yielded as an ``InvalidLine``
    (the other lines still parse; a broken JSON array or CSV cannot be read past its defect).
    """
    path = Path(path)
    name = str(path)
    if not path.is_file():
        raise DataError(name, None, None, "no such file")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        for i, row in enumerate(csv.DictReader(io.StringIO(_read_text(path), newline="")), start=2):  # line 1: header
            yield i, dict(row)
        return
    if suffix == ".parquet":
        try:
            import pyarrow.parquet as pq
        except ImportError:
            raise DataError(name, None, None, "reading Parquet needs pyarrow (pip install pyarrow)") from None
        for i, row in enumerate(pq.read_table(path).to_pylist(), start=1):
            yield i, row
        return
    text = _read_text(path)
    stripped = text.lstrip()
    if stripped.startswith("["):
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as exc:
            if exc.msg != "Extra data":  # "Extra data": a JSONL file whose first line is a list — read as JSONL
                raise DataError(name, exc.lineno, None, f"invalid JSON ({exc.msg})") from None
            rows = None
        if rows is not None:
            for i, row in enumerate(rows, start=1):
                yield i, row
            return
    for lineno, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            err = DataError(name, lineno, None, f"invalid JSON ({exc.msg} at column {exc.colno})")
            if not keep_invalid:
                raise err from None
            row = InvalidLine(err)
        yield lineno, row


# ---------------------------------------------------------------------------------------------
# format detection and conversion


def detect_format(row: Any) -> str | None:
    if not isinstance(row, dict):
        return None
    keys = set(row)
    if {"chosen", "rejected"} & keys or ("prompt" in keys and "rejected" in keys):
        return "preference"
    if "messages" in keys:
        return "messages"
    if "conversations" in keys:
        return "sharegpt"
    if "instruction" in keys or "output" in keys:
        return "instruction"
    if "prompt" in keys and "completion" in keys:
        return "prompt_completion"
    return None


def _text(row: dict, key: str, where: tuple[str, int], *, required: bool = True, allow_empty: bool = False) -> str:
    value = row.get(key)
    if value is None:
        if required:
            raise DataError(where[0], where[1], key, "missing required field")
        return ""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise DataError(where[0], where[1], key, f"expected a string, got {type(value).__name__}")
    if required and not allow_empty and not value.strip():
        raise DataError(where[0], where[1], key, "empty")
    return value


def _messages(items: Any, where: tuple[str, int], key: str, role_key: str, content_key: str,
              role_map: dict[str, str] | None = None) -> list[Message]:
    if not isinstance(items, list) or not items:
        raise DataError(where[0], where[1], key, "expected a non-empty list of messages")
    out = []
    for i, item in enumerate(items):
        fld = f"{key}[{i}]"
        if not isinstance(item, dict):
            raise DataError(where[0], where[1], fld, "expected an object with role and content")
        role = item.get(role_key)
        role = (role_map or {r: r for r in ROLES}).get(role) if isinstance(role, str) else None
        if role is None:
            raise DataError(where[0], where[1], f"{fld}.{role_key}", f"unknown role {item.get(role_key)!r} (expected one of {', '.join(sorted(role_map or ROLES))})")
        content = item.get(content_key)
        if not isinstance(content, str):
            raise DataError(where[0], where[1], f"{fld}.{content_key}", "expected a string")
        if role == "assistant" and not content.strip():
            raise DataError(where[0], where[1], f"{fld}.{content_key}", "empty assistant answer")
        out.append(Message(role, content))
    return out


def to_conversation(row: Any, fmt: str, where: tuple[str, int]) -> Conversation:
    if not isinstance(row, dict):
        raise DataError(where[0], where[1], None, f"expected a JSON object, got {type(row).__name__}")
    if fmt == "instruction":
        instruction = _text(row, "instruction", where)
        extra = _text(row, "input", where, required=False)
        output = _text(row, "output", where)
        system = _text(row, "system", where, required=False)
        user = instruction + ("\n" + extra if extra.strip() else "")
        msgs = ([Message("system", system)] if system.strip() else []) + [Message("user", user), Message("assistant", output)]
    elif fmt == "prompt_completion":
        msgs = [Message("user", _text(row, "prompt", where)), Message("assistant", _text(row, "completion", where))]
    elif fmt == "messages":
        msgs = _messages(row.get("messages"), where, "messages", "role", "content")
    elif fmt == "sharegpt":
        msgs = _messages(row.get("conversations"), where, "conversations", "from", "value", SHAREGPT_ROLES)
    else:
        raise DataError(where[0], where[1], None, f"row format {fmt!r} is not an SFT format")
    if not any(m.role == "assistant" for m in msgs):
        raise DataError(where[0], where[1], "messages", "conversation has no assistant turn")
    if msgs[0].role == "assistant":
        raise DataError(where[0], where[1], "messages", "conversation starts with an assistant turn")
    return Conversation(msgs, f"{where[0]}:{where[1]}")


def to_preference(row: Any, where: tuple[str, int]) -> PreferencePair:
    if not isinstance(row, dict):
        raise DataError(where[0], where[1], None, f"expected a JSON object, got {type(row).__name__}")
    for key in ("prompt", "chosen", "rejected"):
        if key not in row or row[key] is None:
            raise DataError(where[0], where[1], key, "missing required field")
    prompt = row["prompt"]
    if isinstance(prompt, str):
        if not prompt.strip():
            raise DataError(where[0], where[1], "prompt", "empty")
        prompt_msgs = [Message("user", prompt)]
    else:
        prompt_msgs = _messages(prompt, where, "prompt", "role", "content")
        if prompt_msgs[-1].role != "user":
            raise DataError(where[0], where[1], "prompt", "the prompt's last message must be a user turn")
    system = row.get("system")
    if isinstance(system, str) and system.strip() and prompt_msgs[0].role != "system":
        prompt_msgs.insert(0, Message("system", system))
    answers = []
    for key in ("chosen", "rejected"):
        value = row[key]
        if isinstance(value, list):  # [{"role": "assistant", "content": ...}]
            msgs = _messages(value, where, key, "role", "content")
            if len(msgs) != 1 or msgs[0].role != "assistant":
                raise DataError(where[0], where[1], key, "expected one assistant message")
            value = msgs[0].content
        elif isinstance(value, dict):
            msgs = _messages([value], where, key, "role", "content")
            value = msgs[0].content
        elif not isinstance(value, str):
            raise DataError(where[0], where[1], key, f"expected a string or an assistant message, got {type(value).__name__}")
        if not value.strip():
            raise DataError(where[0], where[1], key, "empty answer")
        answers.append(value)
    return PreferencePair(prompt_msgs, answers[0], answers[1], f"{where[0]}:{where[1]}")


def load_examples(path: str | Path, strategy: str, report: RowReport | None = None) -> list:
    """All rows of ``path`` as Conversations (sft) or PreferencePairs (dpo).

    With ``report`` given, malformed rows are dropped and counted there (``on_bad_rows: skip``);
    without it the first malformed row raises a DataError.
    """
    name = str(path)
    fmt = None
    out = []
    for lineno, row in read_rows(path, keep_invalid=report is not None):
        try:
            if isinstance(row, InvalidLine):
                if report is None:
                    raise row.error
                report.drop("invalid JSON", f"{name}:{lineno}")
                continue
            if fmt is None:
                fmt = detect_format(row)
                if fmt is None:
                    keys = sorted(row) if isinstance(row, dict) else type(row).__name__
                    err = DataError(name, lineno, None, f"cannot tell the row format from keys {keys}; expected "
                                    "instruction/output, messages, conversations, prompt/completion or prompt/chosen/rejected")
                    if report is None:
                        raise err
                    report.drop("unrecognised row format", f"{name}:{lineno}")  # detect from the next row
                    continue
                if strategy == "dpo" and fmt != "preference":
                    raise DataError(name, lineno, "rejected", "training_strategy=dpo needs prompt/chosen/rejected rows")
                if strategy == "sft" and fmt == "preference":
                    raise DataError(name, lineno, None, "prompt/chosen/rejected rows are preference data: set training_strategy: dpo")
            out.append(to_preference(row, (name, lineno)) if strategy == "dpo" else to_conversation(row, fmt, (name, lineno)))
        except DataError as err:
            if report is None or fmt is None:
                raise
            report.drop(_reason(err), f"{name}:{lineno}")
    if not out:
        raise DataError(name, None, None, "no usable rows")
    return out


def _reason(err: DataError) -> str:
    """A short reason for counting skipped rows ('missing required field rejected' ...)."""
    fld = (err.field or "").split("[")[0].split(".")[0]
    return f"{err.why} ({fld})" if fld else err.why
