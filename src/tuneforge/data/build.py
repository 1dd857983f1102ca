"""Build (or find) the tokenized cache entry of one data path: read, encode in parallel, write atomically.

A data path (file, shard directory or saved HF dataset) is read as a stream and cut into chunks of
``CHUNK_ROWS`` rows; ``data_num_workers`` processes parse and encode the chunks with the one encoder
(``encode.encode_example``) while this process writes their arrays to a temporary entry, in chunk
order — so the result is identical for any number of workers, and the first bad row reported is the
first one in the file. Only a bounded number of chunks is in flight: memory does not grow with the data.

Several processes (``--nproc``, accelerate, DeepSpeed) asking for the same entry take a file lock: the
first builds, the others wait and then map the same files.
"""
from __future__ import annotations

import collections
import hashlib
import json
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from ..errors import ConfigError, DataError
from . import encode
from .cache import FORMAT_VERSION, CacheCorrupt, EntryWriter, TokenStore, publish
from .formats import FileRows, RowReport, example_from
from .sources import data_sources, source_files

CHUNK_ROWS = 512
DEFAULT_CACHE_DIR = Path("~/.cache/tuneforge/data")
CACHE_DIR_ENV = "TUNEFORGE_DATA_CACHE"  # overrides the default location (tests, shared machines)


def cache_root(configured: str | None) -> Path:
    """``data_cache_dir``, else $TUNEFORGE_DATA_CACHE, else ~/.cache/tuneforge/data."""
    return Path(configured or os.environ.get(CACHE_DIR_ENV) or DEFAULT_CACHE_DIR).expanduser()


def default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


# ---------------------------------------------------------------------------------------------
# the key


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(16 << 20):
            h.update(block)
    return h.hexdigest()


def content_digest(path: Path, root: Path) -> str:
    """SHA-256 of a file's bytes, remembered per (path, size, mtime, inode) in ``root/digests.json`` so an
    unchanged multi-gigabyte file is not re-read at every start (any write changes size or mtime)."""
    st = path.stat()
    stamp = f"{path.resolve()}|{st.st_size}|{st.st_mtime_ns}|{st.st_ino}"
    memo_path = root / "digests.json"
    try:
        memo = json.loads(memo_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        memo = {}
    if stamp in memo:
        return memo[stamp]
    digest = _sha256_file(path)
    memo = {k: v for k, v in memo.items() if not k.startswith(f"{path.resolve()}|")}
    memo[stamp] = digest
    root.mkdir(parents=True, exist_ok=True)
    tmp = memo_path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(memo), encoding="utf-8")
    os.replace(tmp, memo_path)
    return digest


def data_digest(value: Any, cache_dir: str | None = None) -> str:
    """SHA-256 of a data value's contents: a file's own SHA-256, or (shard directories, mixed train_data)
    a hash over every file's digest and each source's weight and row cap. Unchanged files are not re-read."""
    root = cache_root(cache_dir)
    sources = data_sources(value)
    if len(sources) == 1 and sources[0].weight == 1 and sources[0].max_rows is None and Path(sources[0].path).is_file():
        return content_digest(Path(sources[0].path), root)
    parts = [[src.path, src.weight, src.max_rows, [content_digest(f, root) for f in source_files(src.path)]]
             for src in sources]
    return hashlib.sha256(json.dumps(parts).encode("utf-8")).hexdigest()


def tokenizer_fingerprint(tokenizer) -> str:
    """A hash of what the tokenizer does: its vocabulary, merges, normalisation, special tokens, template."""
    h = hashlib.sha256()
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        h.update(backend.to_str().encode("utf-8"))
    else:  # a slow (Python) tokenizer
        h.update(json.dumps(sorted(tokenizer.get_vocab().items()), ensure_ascii=False).encode("utf-8"))
    extras = {"class": type(tokenizer).__name__, "chat_template": getattr(tokenizer, "chat_template", None),
              "special": {k: str(v) for k, v in getattr(tokenizer, "special_tokens_map", {}).items()},
              "ids": [getattr(tokenizer, a, None) for a in ("bos_token_id", "eos_token_id", "pad_token_id")]}
    h.update(json.dumps(extras, sort_keys=True, ensure_ascii=False, default=str).encode("utf-8"))
    return h.hexdigest()


def key_inputs(path: str, files: list[Path], tokenizer, settings: encode.EncodeSettings, on_bad_rows: str,
               root: Path) -> dict[str, Any]:
    """Everything that changes the encoded result (readable; stored in the manifest)."""
    return {
        "data": str(path), "files": {str(f): content_digest(f, root) for f in files},
        "tokenizer": tokenizer_fingerprint(tokenizer), "chat_template": getattr(tokenizer, "chat_template", None),
        "strategy": settings.strategy, "seq_length": settings.seq_length,
        "apply_chat_template": settings.apply_chat_template, "system_prompt": settings.system_prompt,
        "truncation": encode.truncation_rules(), "on_bad_rows": on_bad_rows,
        "encoder_version": encode.ENCODER_VERSION, "cache_format": FORMAT_VERSION,
    }


def cache_key(inputs: dict[str, Any]) -> str:
    blob = json.dumps({k: v for k, v in inputs.items() if k != "data"}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:24]


# ---------------------------------------------------------------------------------------------
# encoding chunks (in worker processes, or here with one worker)


@dataclass
class _WorkerState:
    tokenizer: Any = None
    settings: encode.EncodeSettings | None = None
    skip: bool = False


_STATE = _WorkerState()


def _init_worker(tokenizer, settings: encode.EncodeSettings, skip: bool) -> None:
    _STATE.tokenizer, _STATE.settings, _STATE.skip = tokenizer, settings, skip


@dataclass
class ChunkResult:
    ids: list[np.ndarray] = field(default_factory=list)
    seg_len: list[list[int]] = field(default_factory=list)
    spans: list[tuple[int, int]] = field(default_factory=list)
    span_count: list[int] = field(default_factory=list)
    prompt_len: list[int] = field(default_factory=list)
    truncated: list[int] = field(default_factory=list)
    examples: list[tuple[int, int, int]] = field(default_factory=list)  # file, line, local row or -1-reason
    reasons: list[str] = field(default_factory=list)
    report: RowReport = field(default_factory=RowReport)
    error: tuple | None = None  # (path, line, field, why) of the first refused row


def _trained_runs(labels: list[int]) -> list[tuple[int, int]]:
    runs, start = [], None
    for i, label in enumerate(labels + [encode.IGNORE_INDEX]):
        if label != encode.IGNORE_INDEX and start is None:
            start = i
        elif label == encode.IGNORE_INDEX and start is not None:
            runs.append((start, i))
            start = None
    return runs


def _add(out: ChunkResult, item, truncated: bool) -> None:
    if isinstance(item, encode.EncodedPair):
        out.ids.append(np.asarray(item.prompt + item.chosen + item.rejected, dtype=np.int32))
        out.seg_len.append([len(item.prompt), len(item.chosen), len(item.rejected)])
        out.span_count.append(0)
        out.prompt_len.append(len(item.prompt))
    else:
        out.ids.append(np.asarray(item.input_ids, dtype=np.int32))
        out.seg_len.append([len(item.input_ids)])
        runs = _trained_runs(list(item.labels))
        out.spans += runs
        out.span_count.append(len(runs))
        out.prompt_len.append(item.prompt_length)
    out.truncated.append(int(truncated))


def encode_chunk(file_index: int, name: str, fmt: str, rows: list[tuple[int, Any]]) -> ChunkResult:
    """Parse, convert and encode one chunk of a file's rows (the one encoder, the drop rules of training)."""
    out, settings, skip = ChunkResult(), _STATE.settings, _STATE.skip
    kept = 0
    for lineno, payload in rows:
        try:
            example = example_from(name, lineno, payload, fmt, out.report if skip else None)
        except DataError as err:
            out.error = (err.path, err.line, err.field, err.why)
            return out
        if example is None:
            continue
        enc = encode.encode_example(example, _STATE.tokenizer, settings)
        if enc.kept:
            _add(out, enc.item, enc.truncated)
            out.examples.append((file_index, lineno, kept))
            kept += 1
            continue
        if enc.refused and not skip:
            out.error = (name, lineno, enc.field, enc.why)
            return out
        out.report.drop(enc.drop, f"{name}:{lineno}")
        if enc.drop not in out.reasons:
            out.reasons.append(enc.drop)
        out.examples.append((file_index, lineno, -1 - out.reasons.index(enc.drop)))
    return out


def _chunks(files: list[Path], strategy: str, report: RowReport | None) -> Iterator[tuple[int, str, str, list]]:
    for index, path in enumerate(files):
        rows = FileRows(path, strategy, report)
        chunk: list = []
        for lineno, payload in rows:
            chunk.append((lineno, payload))
            if len(chunk) == CHUNK_ROWS:
                yield index, rows.name, rows.fmt, chunk
                chunk = []
        if chunk:
            yield index, rows.name, rows.fmt, chunk


def _encoded_chunks(chunks: Iterator[tuple], workers: int, init_args: tuple) -> Iterator[ChunkResult]:
    """Chunk results in input order; a pool only when there is more than one chunk and worker."""
    first = next(chunks, None)
    second = next(chunks, None)
    if first is None:
        return
    pending = [first] + ([second] if second is not None else [])
    if workers <= 1 or second is None or "fork" not in multiprocessing.get_all_start_methods():
        _init_worker(*init_args)
        for task in pending:
            yield encode_chunk(*task)
        for task in chunks:
            yield encode_chunk(*task)
        return
    # fork: the workers inherit the loaded tokenizer instead of unpickling it.
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"), initializer=_init_worker,
                             initargs=init_args) as pool:
        window: collections.deque = collections.deque(pool.submit(encode_chunk, *t) for t in pending)
        for task in chunks:
            window.append(pool.submit(encode_chunk, *task))
            while len(window) >= 2 * workers:
                yield window.popleft().result()
        while window:
            yield window.popleft().result()


# ---------------------------------------------------------------------------------------------
# building an entry


class _Collector:
    """Appends chunk results to an EntryWriter, renumbering rows and drop reasons globally."""

    def __init__(self, writer: EntryWriter):
        self.writer, self.rows, self.reasons, self.report = writer, 0, [], RowReport()
        self.n_examples, self.n_truncated = 0, 0

    def add(self, res: ChunkResult) -> None:
        w = self.writer
        if res.ids:
            w.append("ids", np.concatenate(res.ids))
            w.append("seg_len", np.asarray(res.seg_len, dtype=np.int32))
            w.append("span_count", np.asarray(res.span_count, dtype=np.int32))
            w.append("prompt_len", np.asarray(res.prompt_len, dtype=np.int32))
            w.append("truncated", np.asarray(res.truncated, dtype=np.uint8))
            self.n_truncated += sum(res.truncated)
        if res.spans:
            w.append("spans", np.asarray(res.spans, dtype=np.int32))
        if res.examples:
            ex = np.asarray(res.examples, dtype=np.int64)
            codes, kept = ex[:, 2], ex[:, 2] >= 0
            if res.reasons:  # chunk-local drop codes -> codes into this entry's drop_reasons
                for reason in res.reasons:
                    if reason not in self.reasons:
                        self.reasons.append(reason)
                glob = np.asarray([self.reasons.index(r) for r in res.reasons], dtype=np.int64)
                codes[~kept] = -1 - glob[-1 - codes[~kept]]
            codes[kept] += self.rows
            w.append("examples", ex)
            self.rows += int(kept.sum())
            self.n_examples += len(ex)
        for reason, count in res.report.dropped.items():
            self.report.dropped[reason] = self.report.dropped.get(reason, 0) + count
            self.report.examples.setdefault(reason, res.report.examples[reason])


@contextmanager
def _locked(lock_path: Path):
    """An exclusive lock on ``lock_path`` (one builder per machine; the others wait here)."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "a+") as fh:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows: no cross-process lock, builds may repeat
            yield
            return
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def _build(entry: Path, path: str, files: list[Path], tokenizer, settings, on_bad_rows: str, workers: int,
           inputs: dict[str, Any]) -> None:
    skip = on_bad_rows == "skip"
    tmp = entry.with_name(f"{entry.name}.tmp-{os.getpid()}")
    writer = EntryWriter(tmp, 3 if settings.strategy in ("dpo", "kto", "reward") else 1)  # kto: one side may be empty
    collector = _Collector(writer)
    read_report = RowReport()
    start = time.perf_counter()
    try:
        chunks = _chunks(files, settings.strategy, read_report if skip else None)
        try:
            for res in _encoded_chunks(chunks, workers, (tokenizer, settings, skip)):
                collector.add(res)
                if res.error is not None:
                    raise DataError(*res.error)
        except BrokenProcessPool:
            raise ConfigError(f"data_num_workers={workers}: a tokenizing worker process died (out of memory?) while "
                              f"encoding {path}; retry with fewer workers (data_num_workers: 1).") from None
        if collector.n_examples == 0:
            raise DataError(str(path), None, None, "no usable rows")
        report = RowReport(dict(read_report.dropped), dict(read_report.examples))
        for reason, count in collector.report.dropped.items():
            report.dropped[reason] = report.dropped.get(reason, 0) + count
            report.examples.setdefault(reason, collector.report.examples[reason])
        writer.finish({"key_inputs": inputs, "strategy": settings.strategy, "files": [str(f) for f in files],
                       "rows": collector.rows, "examples": collector.n_examples, "truncated": collector.n_truncated,
                       "drop_reasons": collector.reasons,
                       "report": {"dropped": report.dropped, "examples": report.examples},
                       "workers": workers, "build_seconds": round(time.perf_counter() - start, 3)})
    except BaseException:
        writer.abort()
        raise
    publish(tmp, entry)


def open_or_build(path: str, tokenizer, settings: encode.EncodeSettings, *, on_bad_rows: str = "error",
                  cache_dir: str | None = None, workers: int | None = None) -> TokenStore:
    """The verified, memory-mapped cache entry of ``path`` under these settings, built when absent.

    A missing, partial or damaged entry is (re)built; a DataError (bad row, no usable rows) leaves no entry.
    """
    root = cache_root(cache_dir)
    files = source_files(path)
    try:
        inputs = key_inputs(path, files, tokenizer, settings, on_bad_rows, root)
        entry = root / cache_key(inputs)
        with _locked(root / f"{entry.name}.lock"):
            try:
                return TokenStore.open(entry)
            except CacheCorrupt:
                pass
            _build(entry, path, files, tokenizer, settings, on_bad_rows, workers or default_workers(), inputs)
            store = TokenStore.open(entry, check=False)  # just written and checksummed by this process
            store.built_here = True
            return store
    except OSError as exc:  # not writable, disk full ...: the half-written entry is already removed
        raise ConfigError(f"data_cache_dir={str(root)!r}: cannot write the tokenized data cache "
                          f"({exc.strerror or exc}); "
                          "free space or set data_cache_dir to a writable directory.") from None
