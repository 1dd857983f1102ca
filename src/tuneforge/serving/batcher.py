"""The continuous batcher: one generation thread per model in memory, batching on transformers.

Requests wait in a queue; between two decoding steps the batcher admits as many as fit in
``max_batch_size`` sequences, runs their prompts through the model once (prefill), and merges their
key/value cache into the running batch, so a new request does not wait for the longest one in flight.
Finished and cancelled sequences leave the batch at the next step. Rows of one batch may use different
adapters of the same base (peft's per-row ``adapter_names``).

The batcher never waits for a client: tokens go to an unbounded per-request queue on the server's event
loop, so a slow reader delays nobody else.
"""
from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from ..models.kv_cache import cache_argument as _cache_argument  # noqa: F401 (moved to models/, kept here)
from ..models.kv_cache import returned_cache as _returned_cache
from .loading import BASE_ONLY, Backbone, ServedModel
from .sampling import SamplingParams, TextTracker, make_generator, next_token

log = logging.getLogger("tuneforge.serving")


@dataclass(frozen=True)
class Event:
    """What a request's reader receives: a piece of text, the end of one choice, or a failure."""

    kind: str  # "delta" | "finish" | "error"
    index: int = 0
    text: str = ""
    finish_reason: str | None = None
    completion_tokens: int = 0


class Sink:
    """A request's events, delivered to an asyncio queue on the server's event loop from the batcher's thread."""

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.loop = loop
        self.queue: asyncio.Queue[Event] = asyncio.Queue()
        self._cancelled = threading.Event()

    def emit(self, event: Event) -> None:
        deliver([(self, event)])

    def cancel(self) -> None:
        """The client is gone (or the request ended): the batcher drops its sequences at the next step."""
        self._cancelled.set()

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()


def deliver(events: list[tuple[Sink, Event]]) -> None:
    """Hand events to their readers' event loops: one wake-up per loop for a whole decoding step (waking the
    loop once per token and row cost a fifth of the batcher thread's time)."""
    by_loop: dict[int, tuple[asyncio.AbstractEventLoop, list[tuple[Sink, Event]]]] = {}
    for sink, event in events:
        if not sink.cancelled:
            by_loop.setdefault(id(sink.loop), (sink.loop, []))[1].append((sink, event))
    for loop, items in by_loop.values():
        try:
            loop.call_soon_threadsafe(_put_all, items)
        except RuntimeError:  # the server's event loop is closed: nobody is left to read these
            for sink, _ in items:
                sink.cancel()


def _put_all(items: list[tuple[Sink, Event]]) -> None:
    for sink, event in items:
        sink.queue.put_nowait(event)


@dataclass
class Job:
    """One prompt of a request, generating ``params.n`` choices numbered from ``first_index``."""

    model: ServedModel
    prompt_ids: list[int]
    params: SamplingParams
    sink: Sink
    first_index: int = 0


@dataclass
class _Row:
    """One choice being generated."""

    job: Job
    index: int
    tracker: TextTracker
    generator: torch.Generator | None
    next_position: int  # position id of the token fed next
    generated: int = 0


@dataclass
class _Batch:
    """The sequences decoded together: their cache, attention mask (left-padded) and last tokens."""

    rows: list[_Row] = field(default_factory=list)
    cache: object | None = None
    mask: torch.Tensor | None = None  # [rows, cached length], 1 = real token
    last: list[int] = field(default_factory=list)

    def select(self, keep: list[int]) -> None:
        """Keep (or repeat) these rows, in this order."""
        if keep == list(range(len(self.rows))):
            return
        self.rows = [self.rows[i] for i in keep]
        self.last = [self.last[i] for i in keep]
        if not keep:
            self.cache, self.mask = None, None
            return
        index = torch.tensor(keep, device=self.mask.device)  # type: ignore[union-attr]
        self.cache.batch_select_indices(index)  # type: ignore[union-attr]
        self.mask = self.mask[index]  # type: ignore[index]
        self._trim()

    def _trim(self) -> None:
        """Drop cache columns that are padding for every remaining row (left by departed long rows)."""
        first_real = int(self.mask.any(dim=0).to(torch.int8).argmax())  # type: ignore[union-attr]
        if first_real > 0 and _mergeable(self.cache):
            for layer in self.cache.layers:  # type: ignore[union-attr]
                layer.keys, layer.values = layer.keys[..., first_real:, :], layer.values[..., first_real:, :]
            self.mask = self.mask[:, first_real:]  # type: ignore[index]

    def extend(self, other: "_Batch") -> None:
        """Append another batch's rows, left-padding the shorter cache."""
        if not other.rows:  # every row of the other batch already finished (or failed) at its first token
            return
        if not self.rows:
            self.rows, self.cache, self.mask, self.last = other.rows, other.cache, other.mask, other.last
            return
        width = max(self.mask.shape[1], other.mask.shape[1])  # type: ignore[union-attr]
        for mine, theirs in zip(self.cache.layers, other.cache.layers):  # type: ignore[union-attr]
            mine.keys = torch.cat([_pad_left(mine.keys, width), _pad_left(theirs.keys, width)])
            mine.values = torch.cat([_pad_left(mine.values, width), _pad_left(theirs.values, width)])
        self.mask = torch.cat([F.pad(self.mask, (width - self.mask.shape[1], 0)),  # type: ignore[union-attr]
                               F.pad(other.mask, (width - other.mask.shape[1], 0))])  # type: ignore[union-attr]
        self.rows += other.rows
        self.last += other.last


def _pad_left(t: torch.Tensor, width: int) -> torch.Tensor:
    """[batch, heads, length, dim] → length ``width``, zeros on the left (masked out)."""
    return F.pad(t, (0, 0, width - t.shape[-2], 0))


def _mergeable(cache) -> bool:
    """Caches of plain growing layers can be merged and trimmed; sliding-window or other layouts cannot,
    so for those the batcher admits new requests only when the batch is empty."""
    layers = getattr(cache, "layers", None)
    return bool(layers) and all(type(layer).__name__ == "DynamicLayer" and layer.keys is not None for layer in layers)


class Batcher:
    """Generates for every served model that lives on one backbone."""

    def __init__(self, backbone: Backbone, max_batch_size: int = 8):
        self.backbone = backbone
        self.max_batch_size = max_batch_size
        self._pending: deque[Job] = deque()
        self._wake = threading.Condition()
        self._closing = False
        self._batch = _Batch()
        self.cancelled = 0  # sequences dropped because their client left (for /health)
        self._thread = threading.Thread(target=self._run, name="tuneforge-batcher", daemon=True)
        self._cache_arg = _cache_argument(backbone.model)

    # -- the server's side ---------------------------------------------------------------------------------

    def start(self) -> "Batcher":
        self._thread.start()
        return self

    def submit(self, job: Job) -> None:
        with self._wake:
            self._pending.append(job)
            self._wake.notify()

    def close(self, timeout: float = 10.0) -> None:
        with self._wake:
            self._closing = True
            self._wake.notify()
        if self._thread.is_alive():
            self._thread.join(timeout)

    @property
    def load(self) -> dict[str, int]:
        """Sequences being generated and prompts waiting, for /health."""
        return {"running": len(self._batch.rows), "waiting": sum(j.params.n for j in list(self._pending)),
                "cancelled": self.cancelled}

    # -- the batcher's thread ---------------------------------------------------------------------------------

    def _run(self) -> None:
        with torch.inference_mode():
            while True:
                with self._wake:
                    while not self._closing and not self._pending and not self._batch.rows:
                        self._wake.wait(timeout=1.0)
                    if self._closing:
                        break
                try:
                    self._admit()
                    if self._batch.rows:
                        self._decode()
                except Exception as exc:
                    # a failed forward pass (e.g. out of memory) fails its requests, not the server
                    log.exception("generation failed")
                    self._fail([r.job for r in self._batch.rows], exc)
                    self._batch = _Batch()
        self._fail([r.job for r in self._batch.rows] + list(self._pending), RuntimeError("the server is shutting down"))

    def _take_admissible(self) -> list[Job]:
        """Queued jobs that fit next to the running rows, in arrival order; cancelled ones are dropped."""
        room = self.max_batch_size - len(self._batch.rows)
        if self._batch.rows and not _mergeable(self._batch.cache):
            return []
        taken: list[Job] = []
        with self._wake:
            while self._pending and (self._pending[0].sink.cancelled or self._pending[0].params.n <= room):
                job = self._pending.popleft()
                if job.sink.cancelled:
                    self.cancelled += job.params.n
                else:
                    taken.append(job)
                    room -= job.params.n
        return taken

    def _admit(self) -> None:
        jobs = self._take_admissible()
        if not jobs:
            return
        try:
            fresh = self._prefill(jobs)
        except Exception as exc:
            if len(jobs) > 1:  # find the request at fault: each prompt alone, so one bad request fails alone
                for job in jobs:
                    self._prefill_alone(job)
                return
            log.exception("prefill failed")
            self._fail(jobs, exc)
            return
        self._batch.extend(fresh)

    def _prefill_alone(self, job: Job) -> None:
        try:
            fresh = self._prefill([job])
        except Exception as exc:
            log.exception("prefill failed")
            self._fail([job], exc)
            return
        self._batch.extend(fresh)

    def _prefill(self, jobs: list[Job]) -> _Batch:
        """Run the prompts once; the batch gets one row per choice (the prompt's cache repeated n times)."""
        device = self.backbone.device
        width = max(len(j.prompt_ids) for j in jobs)
        ids = torch.tensor([[0] * (width - len(j.prompt_ids)) + j.prompt_ids for j in jobs], device=device)
        mask = torch.tensor([[0] * (width - len(j.prompt_ids)) + [1] * len(j.prompt_ids) for j in jobs], device=device)
        positions = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 1)  # as transformers' generate() numbers them
        out = self._forward([j.model.adapter_name for j in jobs], input_ids=ids, attention_mask=mask,
                            position_ids=positions, use_cache=True, logits_to_keep=1)
        batch = _Batch(cache=_returned_cache(out), mask=mask, last=[0] * len(jobs))
        batch.rows = [None] * len(jobs)  # type: ignore[list-item]
        repeat = [i for i, j in enumerate(jobs) for _ in range(j.params.n)]
        logits = out.logits[:, -1, :]
        batch.select(repeat)
        batch.rows = [_Row(jobs[i], jobs[i].first_index + c, TextTracker(jobs[i].model.tokenizer, jobs[i].params.stop),
                           make_generator(jobs[i].params, jobs[i].first_index + c), len(jobs[i].prompt_ids))
                      for i, c in _choices(jobs)]
        self._advance(batch, logits[torch.tensor(repeat, device=logits.device)])
        return batch

    def _decode(self) -> None:
        batch = self._batch
        device = self.backbone.device
        mask = torch.cat([batch.mask, torch.ones(len(batch.rows), 1, dtype=batch.mask.dtype, device=device)], dim=1)
        out = self._forward([r.job.model.adapter_name for r in batch.rows],
                            input_ids=torch.tensor(batch.last, device=device)[:, None], attention_mask=mask,
                            position_ids=torch.tensor([[r.next_position] for r in batch.rows], device=device),
                            use_cache=True, **{self._cache_arg: batch.cache})
        batch.cache, batch.mask = _returned_cache(out), mask
        for row in batch.rows:
            row.next_position += 1
        self._advance(batch, out.logits[:, -1, :])

    def _forward(self, adapters: list[str | None], **inputs):
        """One forward pass; the adapter of each row is honoured (one adapter: peft's plain path)."""
        model = self.backbone.model
        if not self.backbone.has_adapters:
            return model(**inputs)
        if len(set(adapters)) > 1:
            return model(**inputs, adapter_names=list(adapters))
        if adapters[0] == BASE_ONLY:
            with model.disable_adapter():
                return model(**inputs)
        if model.active_adapter != adapters[0]:
            model.set_adapter(adapters[0])
        return model(**inputs)

    def _advance(self, batch: _Batch, logits: torch.Tensor) -> None:
        """Pick each row's next token, hand out its text, and drop finished or cancelled rows."""
        keep: list[int] = []
        out: list[tuple[Sink, Event]] = []
        failed: set[int] = set()  # jobs whose sampling failed in this step: they end, the others go on
        greedy = logits.argmax(dim=-1).tolist()  # one device sync for every greedy row
        for i, row in enumerate(batch.rows):
            if row.job.sink.cancelled:
                self.cancelled += 1
                continue
            if id(row.job) in failed:
                continue
            params = row.job.params
            try:
                token = greedy[i] if params.greedy else next_token(logits[i], params, row.generator)
            except Exception as exc:  # this request alone fails; the rows of other requests keep decoding
                log.warning("sampling failed for one request: %s", exc)
                failed.add(id(row.job))
                out.append((row.job.sink, Event("error", row.index, text=f"generation failed: {exc}")))
                continue
            row.generated += 1
            finish, delta = _step_text(row, token)
            if delta:
                out.append((row.job.sink, Event("delta", row.index, delta)))
            if finish:
                out.append((row.job.sink, Event("finish", row.index, finish_reason=finish,
                                                completion_tokens=row.generated)))
                continue
            batch.last[i] = token
            keep.append(i)
        deliver(out)
        batch.select([i for i in keep if id(batch.rows[i].job) not in failed])

    @staticmethod
    def _fail(jobs: list[Job], exc: BaseException) -> None:
        for job in {id(j): j for j in jobs}.values():
            job.sink.emit(Event("error", job.first_index, text=f"generation failed: {exc}"))


def _step_text(row: _Row, token: int) -> tuple[str | None, str]:
    """(finish reason or None, text to hand out) after ``token``: 'stop' at an end-of-turn token (not shown)
    or a stop string (cut before it), 'length' at max_tokens or the context limit (the last token shows)."""
    if token in row.job.model.stop_ids:
        return "stop", row.tracker.flush()
    delta = row.tracker.add(token)
    if row.tracker.stopped:
        return "stop", delta
    if row.generated >= row.job.params.max_tokens or \
            len(row.job.prompt_ids) + row.generated >= row.job.model.context_limit:
        return "length", delta + row.tracker.flush()
    return None, delta


def _choices(jobs: list[Job]):
    """(job index, choice number) for every row, in the order of the repeated prefill rows."""
    for i, job in enumerate(jobs):
        for c in range(job.params.n):
            yield i, c
