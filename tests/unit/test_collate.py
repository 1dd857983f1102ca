"""Padded and packed batches: shapes, per-row shifted targets, restarting positions (hand-worked)."""
from __future__ import annotations

import torch

from tuneforge.data.collate import pack_batch, pad_batch, row_targets
from tuneforge.data.templates import IGNORE_INDEX as X
from tuneforge.data.templates import Encoded

ROWS = [Encoded([1, 2, 3], [X, 2, 3], 1), Encoded([4, 5], [X, 5], 1), Encoded([6, 7, 8, 9], [X, X, 8, 9], 2)]


def test_row_targets_shift_within_the_row():
    assert row_targets([X, 2, 3]) == [2, 3, X]


def test_pad_batch_hand_worked():
    b = pad_batch(ROWS, pad_id=0)
    assert b.input_ids.tolist() == [[1, 2, 3, 0], [4, 5, 0, 0], [6, 7, 8, 9]]
    assert b.attention_mask.tolist() == [[1, 1, 1, 0], [1, 1, 0, 0], [1, 1, 1, 1]]
    assert b.targets.tolist() == [[2, 3, X, X], [5, X, X, X], [X, 8, 9, X]]
    assert b.position_ids is None
    assert (b.n_rows, b.n_trained, b.n_real_tokens) == (3, 5, 9)


def test_pack_batch_hand_worked():
    b = pack_batch(ROWS)
    assert b.input_ids.tolist() == [[1, 2, 3, 4, 5, 6, 7, 8, 9]]
    assert b.position_ids.tolist() == [[0, 1, 2, 0, 1, 0, 1, 2, 3]]
    # a row's last token never predicts the next row's first token
    assert b.targets.tolist() == [[2, 3, X, 5, X, X, 8, 9, X]]
    assert b.attention_mask is None
    assert (b.n_rows, b.n_trained, b.n_real_tokens) == (3, 5, 9)


def test_batches_are_long_tensors_and_move():
    b = pack_batch(ROWS).to(torch.device("cpu"))
    assert b.input_ids.dtype == b.targets.dtype == b.position_ids.dtype == torch.long
    assert set(b.model_inputs()) == {"input_ids", "attention_mask", "position_ids", "targets"}
