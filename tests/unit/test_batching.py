"""Step/micro-batch assignment: every row once per epoch, deterministic, independent of world size."""
from __future__ import annotations

import random

import pytest

from tuneforge.training import batching
from tuneforge.training.batching import BatchGeometry, epoch_steps, steps_per_epoch


def _lengths(n: int, seed: int = 0) -> list[int]:
    rng = random.Random(seed)
    return [rng.randint(5, 500) for _ in range(n)]


def _global_steps(n, lengths, geometry, world, seed=3, epoch=0, group=False):
    """Per global step, the set of rows seen by all ranks together."""
    per_rank = [epoch_steps(n, lengths, geometry, seed, epoch, group_by_length=group, world_size=world, rank=r)
                for r in range(world)]
    return [sorted(i for rank in per_rank for mb in rank[s] for i in mb) for s in range(len(per_rank[0]))]


@pytest.mark.parametrize("group", [False, True])
@pytest.mark.parametrize("n", [1, 7, 64, 333])
def test_every_row_once_per_epoch(n, group):
    lengths = _lengths(n)
    geo = BatchGeometry(per_device=4, accumulation=2)
    steps = epoch_steps(n, lengths, geo, seed=1, epoch=0, group_by_length=group)
    seen = [i for step in steps for mb in step for i in mb]
    assert sorted(seen) == list(range(n))
    assert len(steps) == steps_per_epoch(n, geo)
    assert all(len(mb) <= 4 for step in steps for mb in step)
    # every step but the last is full
    assert all(sum(len(mb) for mb in step) == 8 for step in steps[:-1])


@pytest.mark.parametrize("group", [False, True])
def test_deterministic_and_epochs_differ(group):
    lengths = _lengths(200)
    geo = BatchGeometry(4, 1)
    a = epoch_steps(200, lengths, geo, seed=5, epoch=0, group_by_length=group)
    assert a == epoch_steps(200, lengths, geo, seed=5, epoch=0, group_by_length=group)
    assert a != epoch_steps(200, lengths, geo, seed=5, epoch=1, group_by_length=group)
    assert a != epoch_steps(200, lengths, geo, seed=6, epoch=0, group_by_length=group)


@pytest.mark.parametrize("group", [False, True])
def test_global_step_rows_do_not_depend_on_world_size(group):
    n, lengths = 301, _lengths(301, seed=2)
    one = _global_steps(n, lengths, BatchGeometry(2, 4), world=1, group=group)
    two = _global_steps(n, lengths, BatchGeometry(2, 2), world=2, group=group)
    four = _global_steps(n, lengths, BatchGeometry(1, 2), world=4, group=group)
    assert one == two == four


def _padded_tokens(steps, lengths):
    return sum(max(lengths[i] for i in mb) * len(mb) for step in steps for mb in step)


def test_grouping_cuts_padding():
    n, lengths = 512, _lengths(512, seed=4)
    geo = BatchGeometry(8, 1)
    plain = _padded_tokens(epoch_steps(n, lengths, geo, 0, 0), lengths)
    grouped = _padded_tokens(epoch_steps(n, lengths, geo, 0, 0, group_by_length=True), lengths)
    real = sum(lengths)
    assert grouped < plain
    assert grouped - real < 0.1 * (plain - real)  # most of the padding is gone


def test_grouped_steps_are_length_slices_hand_worked(monkeypatch):
    """One megabatch covering the epoch: the steps are consecutive slices of the rows sorted by length."""
    monkeypatch.setattr(batching, "MEGABATCH_STEPS", 4)
    lengths = [10, 80, 30, 70, 20, 60, 40, 50]  # distinct lengths: the slices are unique
    steps = epoch_steps(8, lengths, BatchGeometry(2, 1), seed=0, epoch=0, group_by_length=True)
    got = sorted(sorted(lengths[i] for i in step[0]) for step in steps)
    assert got == [[10, 20], [30, 40], [50, 60], [70, 80]]
    # rows inside a micro-batch are longest first
    assert all(lengths[step[0][0]] >= lengths[step[0][1]] for step in steps)


def test_short_last_step_stays_last():
    lengths = _lengths(21, seed=9)
    steps = epoch_steps(21, lengths, BatchGeometry(4, 1), seed=0, epoch=0, group_by_length=True)
    assert [sum(len(mb) for mb in s) for s in steps] == [4, 4, 4, 4, 4, 1]
