"""Which rows each optimizer step sees, on each process.

An epoch is a seeded permutation of the rows cut into global steps of
``batch x processes x accumulation`` rows. A step's rows are sorted by length (less padding, same
gradient: the step's loss is normalised over all its tokens) and dealt out as micro-batches; process
``r`` takes micro-batches ``r, r + W, ...``. So a global step sees the same rows whatever the number of
processes, without duplicates or drops, and 2 processes x accumulation k equal 1 process x 2k.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Sequence


@dataclass(frozen=True)
class Geometry:
    batch_size: int
    accumulation: int
    world_size: int = 1
    rank: int = 0

    @property
    def rows_per_step(self) -> int:
        return self.batch_size * self.accumulation * self.world_size


def steps_per_epoch(n_rows: int, geo: Geometry) -> int:
    return -(-n_rows // geo.rows_per_step)


def epoch_steps(n_rows: int, lengths: Sequence[int], geo: Geometry, seed: int, epoch: int) -> list[list[list[int]]]:
    """For one epoch: per step, this process's micro-batches (lists of row indices)."""
    order = list(range(n_rows))
    random.Random(seed * 100_003 + epoch).shuffle(order)
    steps = []
    for s in range(0, n_rows, geo.rows_per_step):
        rows = sorted(order[s: s + geo.rows_per_step], key=lambda i: (-lengths[i], i))
        micro = [rows[m: m + geo.batch_size] for m in range(0, len(rows), geo.batch_size)]
        mine = [mb for j, mb in enumerate(micro) if j % geo.world_size == geo.rank]
        steps.append(mine)
    return steps
