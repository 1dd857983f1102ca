"""Which rows each optimizer step sees, on each process, and the batch geometry that decides it.

An epoch is a seeded permutation of the rows cut into global steps of
``per_device x accumulation x processes`` rows. A step's rows are sorted by length (less padding, same
gradient: the step's loss is normalised over all its tokens) and dealt out as micro-batches; process
``r`` takes micro-batches ``r, r + W, ...``. So a global step sees the same rows whatever the number of
processes, without duplicates or drops, and 2 processes x accumulation k equal 1 process x 2k.

With ``group_by_length`` (padded batches), the permutation is first cut into megabatches of
``MEGABATCH_STEPS`` steps; each megabatch is sorted by length, cut into steps, and its steps are
shuffled (seeded). Steps then hold rows of similar length, so padding nearly vanishes, while the
order of lengths across the epoch stays random. Everything depends only on the rows per step, not on
how those rows are split over processes and accumulation.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Sequence

# Steps per length-sorted megabatch: large enough to find rows of similar length, small enough that
# an epoch's long and short rows stay mixed over time.
MEGABATCH_STEPS = 32


@dataclass(frozen=True)
class BatchGeometry:
    """How a run cuts its optimizer steps: ``per_device`` rows per micro-batch, ``accumulation``
    micro-batches per process and step. Resolved once at the start of a run (``batch_fit.resolve_batch``)
    and read by the sampler, the loop, the checkpoint, the start banner and the log."""

    per_device: int
    accumulation: int

    def effective(self, world_size: int) -> int:
        """Rows per optimizer step over all processes (the effective batch)."""
        return self.per_device * self.accumulation * world_size


def steps_per_epoch(n_rows: int, geometry: BatchGeometry, world_size: int = 1) -> int:
    return -(-n_rows // geometry.effective(world_size))


def eval_batches_rows(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Validation rows longest first, cut into batches of ``batch_size``: every row once, little padding."""
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    return [order[s: s + batch_size] for s in range(0, len(order), batch_size)]


def validation_batches(validation, batch_size: int, collate) -> list:
    """The validation set collated once (``collate(rows, "validation")``), longest rows first, every row once;
    empty without a validation set. Shared by the SFT and DPO recipes."""
    if validation is None:
        return []
    return [collate(rows, "validation") for rows in eval_batches_rows(validation.lengths, batch_size)]


def _length_grouped(order: list[int], lengths: Sequence[int], rows_per_step: int, rng: random.Random) -> list[int]:
    """``order`` rearranged so that consecutive ``rows_per_step`` slices hold rows of similar length."""
    mega = rows_per_step * MEGABATCH_STEPS
    out: list[int] = []
    for m in range(0, len(order), mega):
        block = sorted(order[m: m + mega], key=lambda i: (-lengths[i], i))
        steps = [block[s: s + rows_per_step] for s in range(0, len(block), rows_per_step)]
        # A short last step (end of the epoch) stays last, so every other step is full.
        full = steps if len(steps[-1]) == rows_per_step or m + mega < len(order) else steps[:-1]
        rest = steps[len(full):]
        rng.shuffle(full)
        for step in full + rest:
            out += step
    return out


def epoch_steps(n_rows: int, lengths: Sequence[int], geometry: BatchGeometry, seed: int, epoch: int,
                group_by_length: bool = False, *, world_size: int = 1, rank: int = 0) -> list[list[list[int]]]:
    """For one epoch: per step, the micro-batches (lists of row indices) of process ``rank`` of ``world_size``."""
    rows_per_step = geometry.effective(world_size)
    order = list(range(n_rows))
    rng = random.Random(seed * 100_003 + epoch)
    rng.shuffle(order)
    if group_by_length:
        order = _length_grouped(order, lengths, rows_per_step, rng)
    steps = []
    for s in range(0, n_rows, rows_per_step):
        rows = sorted(order[s: s + rows_per_step], key=lambda i: (-lengths[i], i))
        micro = [rows[m: m + geometry.per_device] for m in range(0, len(rows), geometry.per_device)]
        steps.append([mb for j, mb in enumerate(micro) if j % world_size == rank])
    return steps
