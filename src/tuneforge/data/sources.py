"""Data sources read incrementally: a file, a directory of shards, or a saved Hugging Face dataset.

JSONL, CSV and Parquet are streamed (a line, a CSV record, a Parquet row group at a time), never read
whole; a JSON array file is parsed whole, as before (the format cannot be streamed without a second
parser). JSONL lines are yielded unparsed (``RawLine``) so the JSON parsing can run in the tokenizing
worker processes; everything else yields parsed rows. Row numbers are 1-based file lines for JSONL
and CSV (line 1 of a CSV is its header), row indices for the others.
"""
from __future__ import annotations

import codecs
import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from ..errors import DataError

SHARD_SUFFIXES = (".jsonl", ".json", ".csv", ".parquet", ".arrow")
# Raw-text documents (training_strategy: pretrain): one file = one document, read as {"text": contents}. A
# directory's text files are its shards only when it holds no data shards (a README.md beside JSONL shards
# is not data).
TEXT_SUFFIXES = (".txt", ".md")
PARQUET_BATCH_ROWS = 1024


@dataclass
class RawLine:
    """One JSONL line, not parsed yet."""

    text: str


@dataclass
class InvalidLine:
    """A JSONL line that is not valid JSON, yielded (instead of raised) when the caller skips bad rows."""

    error: DataError


def parse_line(path: str, lineno: int, line: str, keep_invalid: bool) -> Any:
    """A JSONL line parsed; invalid JSON raises a DataError naming file and line (or is wrapped)."""
    try:
        return json.loads(line)
    except (json.JSONDecodeError, RecursionError) as exc:
        err = DataError(path, lineno, None, _json_problem(exc))
        if not keep_invalid:
            raise err from None
        return InvalidLine(err)


# The JSON parser's messages, in words a user can act on ({col}: the column it names).
JSON_PROBLEMS = {
    "Unterminated string starting at": "a string starts at column {col} and never ends: the line is cut off in "
                                       "the middle of a string (the file looks truncated)",
    "Invalid control character at": "a raw control character (a tab or a line break) inside a string at column "
                                     "{col}; write it as \\t or \\n",
    "Expecting value": "no JSON value at column {col} (a missing value, a trailing comma, or text without quotes)",
    "Expecting ',' delimiter": "a ',' is missing before column {col} (or the line is cut off)",
    "Expecting ':' delimiter": "a ':' is missing after the key before column {col}",
    "Expecting property name enclosed in double quotes": "a key at column {col} is not in double quotes (JSON "
                                                          "needs \"key\"; a trailing comma before '}}' also "
                                                          "causes this)",
    "Extra data": "more than one JSON value on the line (the next starts at column {col}); write one row per line",
}


def _json_problem(exc: Exception) -> str:
    """The reason a JSON text was refused, in words, with its column (one message for uploads and training)."""
    if isinstance(exc, RecursionError):
        return "invalid JSON (nested too deeply: rows are objects of strings, lists and small objects)"
    msg, col = exc.msg, exc.colno  # type: ignore[attr-defined]
    words = JSON_PROBLEMS.get(msg)
    return (f"invalid JSON: {words.format(col=col)}" if words
            else f"invalid JSON ({msg.removesuffix(' at')}, column {col})")


def _decode(raw: bytes, path: str, lineno: int, offset: int) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(path, lineno, None,
                        f"not UTF-8 text (byte {offset + exc.start}); save the file as UTF-8") from None


def _starts_with_array(path: Path) -> bool:
    """True when the file's first non-blank character is '[' (a JSON array, or JSONL of arrays)."""
    with open(path, "rb") as fh:
        head = fh.read(4096).lstrip(codecs.BOM_UTF8).lstrip()
    return head.startswith(b"[")


def _json_array(path: Path) -> Iterator[tuple[int, Any]] | None:
    """Rows of a JSON array file, or None when the file is JSONL whose first line is a list."""
    name = str(path)
    raw = path.read_bytes()
    text = _decode(raw[3:] if raw.startswith(codecs.BOM_UTF8) else raw, name, 1, 0)
    try:
        rows = json.loads(text)
    except RecursionError as exc:
        raise DataError(name, 1, None, _json_problem(exc)) from None
    except json.JSONDecodeError as exc:
        if exc.msg == "Extra data":  # several JSON values: JSONL whose first line is a list
            return None
        raise DataError(name, exc.lineno, None, _json_problem(exc)) from None
    if not isinstance(rows, list):
        return iter([(1, rows)])
    return enumerate(rows, start=1)


def _jsonl_lines(path: Path) -> Iterator[tuple[int, RawLine]]:
    name, offset = str(path), 0
    with open(path, "rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            if lineno == 1 and raw.startswith(codecs.BOM_UTF8):
                raw, offset = raw[3:], 3
            text = _decode(raw, name, lineno, offset)
            offset += len(raw)
            if text.strip():
                yield lineno, RawLine(text)


def _csv_rows(path: Path) -> Iterator[tuple[int, Any]]:
    name = str(path)
    with open(path, encoding="utf-8-sig", newline="") as fh:
        reader = csv.DictReader(fh)
        try:
            for row in reader:
                yield reader.line_num, dict(row)
        except UnicodeDecodeError as exc:
            raise DataError(name, reader.line_num + 1, None,
                            f"not UTF-8 text ({exc.reason}); save the file as UTF-8") from None
        except csv.Error as exc:
            raise DataError(name, reader.line_num, None, f"invalid CSV ({exc})") from None


def _parquet_rows(path: Path) -> Iterator[tuple[int, Any]]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise DataError(str(path), None, None, "reading Parquet needs pyarrow (pip install pyarrow)") from None
    try:
        reader = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises ArrowInvalid / OSError for a damaged file
        raise DataError(str(path), None, None, f"not a readable Parquet file ({exc})") from None
    n = 0
    for batch in reader.iter_batches(batch_size=PARQUET_BATCH_ROWS):
        for row in batch.to_pylist():
            n += 1
            yield n, row


def _arrow_rows(path: Path) -> Iterator[tuple[int, Any]]:
    """Rows of an Arrow IPC stream file (the shards ``datasets.Dataset.save_to_disk`` writes)."""
    import pyarrow as pa

    try:
        source = pa.memory_map(str(path))
        try:
            reader = pa.ipc.open_stream(source)
        except pa.ArrowInvalid:
            reader = pa.ipc.open_file(source)
            batches = (reader.get_batch(i) for i in range(reader.num_record_batches))
        else:
            batches = iter(reader)
    except Exception as exc:
        raise DataError(str(path), None, None, f"not a readable Arrow file ({exc})") from None
    n = 0
    for batch in batches:
        for row in batch.to_pylist():
            n += 1
            yield n, row


def _text_document(path: Path) -> Iterator[tuple[int, Any]]:
    """A .txt/.md file as one row ``{"text": its contents}`` (one document per file)."""
    raw = path.read_bytes()
    yield 1, {"text": _decode(raw[3:] if raw.startswith(codecs.BOM_UTF8) else raw, str(path), 1, 0)}


def file_rows(path: str | Path) -> Iterator[tuple[int, Any]]:
    """``(row number, row)`` of one file; JSONL rows come as ``RawLine`` (parsed by the caller)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(str(path), None, None, "no such file")
    suffix = path.suffix.lower()
    if suffix in TEXT_SUFFIXES:
        return _text_document(path)
    if suffix == ".csv":
        return _csv_rows(path)
    if suffix == ".parquet":
        return _parquet_rows(path)
    if suffix == ".arrow":
        return _arrow_rows(path)
    if _starts_with_array(path):
        rows = _json_array(path)
        if rows is not None:
            return rows
    return _jsonl_lines(path)


def source_files(path: str | Path) -> list[Path]:
    """The files a data path stands for: the file itself, a saved HF dataset's Arrow shards, or a
    directory's JSONL/JSON/CSV/Parquet shards in name order."""
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise DataError(str(path), None, None, "no such file or directory")
    state = path / "state.json"
    if state.is_file():  # datasets.Dataset.save_to_disk
        try:
            names = [f["filename"] for f in json.loads(state.read_text(encoding="utf-8"))["_data_files"]]
        except (ValueError, KeyError, TypeError):
            raise DataError(str(state), None, "_data_files", "not a Hugging Face dataset state file") from None
        return [path / n for n in names]
    shards = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in SHARD_SUFFIXES)
    if not shards:
        shards = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in TEXT_SUFFIXES)
    if not shards:
        raise DataError(str(path), None, None, "directory holds no data shards (.jsonl, .json, .csv, .parquet; "
                        ".txt/.md documents for training_strategy: pretrain)")
    return shards


@dataclass(frozen=True)
class DataSource:
    """One entry of ``train_data``: a path, its sampling weight (rows x weight per epoch) and a row cap."""

    path: str
    weight: float = 1.0
    max_rows: int | None = None


def data_sources(value: Any) -> list[DataSource]:
    """``train_data`` (a path, or a list of paths / {path, weight, max_rows}) as DataSources."""
    if value is None:
        return []
    items = value if isinstance(value, (list, tuple)) else [value]
    out = []
    for item in items:
        if isinstance(item, str):
            out.append(DataSource(item))
        elif isinstance(item, dict):
            out.append(DataSource(str(item["path"]), float(item.get("weight", 1.0) or 1.0), item.get("max_rows")))
        else:  # a config object with the same attributes
            out.append(DataSource(str(item.path), float(getattr(item, "weight", 1.0)), getattr(item, "max_rows", None)))
    return out
