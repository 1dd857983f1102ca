"""Padding-free packing gives the same per-row losses and gradients as padded batches (fp32, 1e-5).

Packed rows share one sequence with restarting ``position_ids`` and ``attention_mask=None``;
transformers then builds a per-document causal mask (only without a KV cache: DESIGN.md §5), so no
row attends to another. Checked in train and eval mode, for the loss, per-token log-probs and grads.
"""
from __future__ import annotations

import json
import random

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

import tuneforge
from tuneforge.data.collate import pack_batch, pad_batch
from tuneforge.data.templates import IGNORE_INDEX, Encoded
from tuneforge.models.forward import CROSS_ENTROPY, TOKEN_LOGPS, CausalLMLoss

VOCAB = 64


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=VOCAB, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128,
                      attn_implementation="sdpa")
    return LlamaForCausalLM(cfg).float()


def _rows(seed: int = 0) -> list[Encoded]:
    rng = random.Random(seed)
    rows = []
    for n in (9, 3, 17, 6):
        ids = [rng.randrange(1, VOCAB) for _ in range(n)]
        prompt = rng.randint(1, n - 1)
        rows.append(Encoded(ids, [IGNORE_INDEX] * prompt + ids[prompt:], prompt))
    return rows


def _per_row_logps(module, rows, packed: bool) -> list[torch.Tensor]:
    """Per row, the log-probs of its trained next tokens, in order."""
    batch = pack_batch(rows) if packed else pad_batch(rows, pad_id=0)
    logps = module(**batch.model_inputs(), output=TOKEN_LOGPS)
    mask = batch.targets != IGNORE_INDEX
    if not packed:
        return [logps[i][mask[i]] for i in range(len(rows))]
    out, start = [], 0
    for r in rows:
        end = start + len(r.input_ids)
        out.append(logps[0, start:end][mask[0, start:end]])
        start = end
    return out


@pytest.mark.parametrize("train_mode", [True, False])
def test_packed_and_padded_per_row_logps_match(train_mode):
    module = CausalLMLoss(_model())
    module.train(train_mode)
    rows = _rows()
    with torch.no_grad():
        padded = _per_row_logps(module, rows, packed=False)
        packed = _per_row_logps(module, rows, packed=True)
        alone = [_per_row_logps(module, [r], packed=False)[0] for r in rows]
    for p, q, a in zip(padded, packed, alone):
        torch.testing.assert_close(q, p, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(q, a, rtol=1e-5, atol=1e-5)  # and equal to the row on its own


def test_packed_and_padded_loss_and_grads_match():
    rows = _rows(seed=1)
    results = []
    for packed in (False, True):
        model = _model()
        module = CausalLMLoss(model).train()
        batch = pack_batch(rows) if packed else pad_batch(rows, pad_id=0)
        loss, correct = module(**batch.model_inputs(), output=CROSS_ENTROPY)
        loss.backward()
        results.append((loss.detach(), int(correct), {n: p.grad.clone() for n, p in model.named_parameters()}))
    (l0, c0, g0), (l1, c1, g1) = results
    torch.testing.assert_close(l1, l0, rtol=1e-5, atol=1e-5)
    assert c0 == c1
    for name in g0:
        torch.testing.assert_close(g1[name], g0[name], rtol=1e-4, atol=1e-5, msg=name)


def test_cross_document_attention_would_change_the_loss():
    """The check above can fail: the same packed ids with one causal mask over the whole sequence
    (positions not restarting) give different log-probs for the later rows."""
    module = CausalLMLoss(_model()).eval()
    rows = _rows()
    batch = pack_batch(rows)
    with torch.no_grad():
        right = module(**batch.model_inputs(), output=TOKEN_LOGPS)
        leaky = module(batch.input_ids, None, None, targets=batch.targets, output=TOKEN_LOGPS)
    assert not torch.allclose(right[:, len(rows[0].input_ids):], leaky[:, len(rows[0].input_ids):], atol=1e-4)


def _step_losses(out) -> list[float]:
    recs = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    return [r["loss"] for r in recs if "loss" in r and "event" not in r]


def test_packed_training_run_matches_padded(tmp_path, write_jsonl):
    rows = [{"prompt": f"question {i} " + "word " * (i % 7), "completion": f"answer {i} " + "x " * (i % 5)}
            for i in range(16)]
    data = write_jsonl(tmp_path / "d.jsonl", rows)
    losses = []
    for packing in (False, True):
        out = tmp_path / f"o{int(packing)}"
        tuneforge.train({"train_data": str(data), "output_dir": str(out), "max_steps": 3, "logging_steps": 1,
                         "per_device_train_batch_size": 4, "packing": packing, "group_by_length": False,
                         "eval_steps": 0, "lora_dropout": 0.0, "learning_rate": 1e-3}, progress=False)
        losses.append(_step_losses(out))
    assert len(losses[0]) == 3
    assert losses[1] == pytest.approx(losses[0], rel=1e-4)


def test_length_groups_hand_worked():
    from tuneforge.models.forward import length_groups

    mask = torch.zeros(6, 10, dtype=torch.long)
    for i, n in enumerate([10, 3, 9, 2, 5, 10]):
        mask[i, :n] = 1
    assert length_groups(mask) == [([0, 5], 10), ([2], 9), ([4], 5), ([1, 3], 3)]
    assert length_groups(torch.ones(4, 8, dtype=torch.long)) is None  # no padding: nothing to save
    assert length_groups(mask.flip(1)) is None  # left-padded: not split


@pytest.mark.parametrize("kind", [CROSS_ENTROPY, TOKEN_LOGPS])
def test_row_groups_change_nothing(monkeypatch, kind):
    """A padded batch split into length groups (CPU) gives the loss, log-probs and grads of one forward."""
    from tuneforge.models import forward

    rows = _rows(seed=2) + [Encoded(list(range(1, 30)), [IGNORE_INDEX] * 4 + list(range(5, 30)), 4)]
    batch = pad_batch(rows, pad_id=0)
    assert forward.length_groups(batch.attention_mask) is not None
    results = []
    for split in (False, True):
        monkeypatch.setattr(forward, "MIN_SAVING", 0.1 if split else 2.0)
        model = _model()
        out = CausalLMLoss(model).train()(**batch.model_inputs(), output=kind)
        value = out[0] if kind == CROSS_ENTROPY else (out * torch.linspace(-1, 1, out.shape[1])).sum()
        value.backward()
        results.append((out[0].detach() if kind == CROSS_ENTROPY else out.detach(),
                        {n: p.grad.clone() for n, p in model.named_parameters()}))
    (v0, g0), (v1, g1) = results
    torch.testing.assert_close(v1, v0, rtol=1e-5, atol=1e-5)
    for name in g0:
        torch.testing.assert_close(g1[name], g0[name], rtol=1e-4, atol=1e-5, msg=name)


def test_dpo_packed_pairs_give_the_same_sequence_logps_and_training_losses(tmp_path, write_jsonl):
    """DPO packing: chosen and rejected rows of a micro-batch in one sequence; per-row sums are split at
    the position-id restarts and equal the padded batch's, and so do whole training runs."""
    from tuneforge.data.dpo import EncodedPair
    from tuneforge.training.dpo import collate_pairs, sequence_logps

    rng = random.Random(1)
    pairs = []
    for n_prompt, n_chosen, n_rejected in ((5, 4, 9), (2, 7, 3), (8, 1, 6)):
        ids = lambda n: [rng.randrange(1, VOCAB) for _ in range(n)]  # noqa: E731
        pairs.append(EncodedPair(ids(n_prompt), ids(n_chosen), ids(n_rejected)))
    module = CausalLMLoss(_model()).eval()
    with torch.no_grad():
        padded = sequence_logps(module, collate_pairs(pairs, [0, 1, 2], pad_id=0))
        packed_batch = collate_pairs(pairs, [0, 1, 2], pad_id=0, packing=True)
        packed = sequence_logps(module, packed_batch)
    assert packed_batch.sequences.input_ids.shape[0] == 1 and packed_batch.sequences.attention_mask is None
    for a, b in zip(packed, padded):
        assert (a != 0).all()
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)

    rows = [{"prompt": f"question {i}?", "chosen": "a good and polite answer " * (1 + i % 3),
             "rejected": f"bad {i}"} for i in range(8)]
    data = write_jsonl(tmp_path / "pairs.jsonl", rows)
    losses = {}
    for packing in (False, True):
        out = tmp_path / f"packing-{packing}"
        tuneforge.train({"training_strategy": "dpo", "train_data": str(data), "output_dir": str(out),
                         "max_steps": 3, "per_device_train_batch_size": 4, "lora_dim": 8, "lora_dropout": 0.0,
                         "learning_rate": 1e-2, "logging_steps": 1, "packing": packing,
                         "group_by_length": False}, progress=False)  # same rows per step either way
        losses[packing] = [json.loads(line)["loss"] for line in (out / "metrics.jsonl").read_text().splitlines()
                           if '"loss"' in line]
    assert len(losses[True]) == 3
    assert losses[True] == pytest.approx(losses[False], abs=1e-5)
