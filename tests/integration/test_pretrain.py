"""Continued pre-training: raw-text documents, every token trained, EOS between documents, packed to
seq_length without cross-document attention — the packed loss equals each document's loss computed alone."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import tuneforge
from tuneforge.config import from_dict
from tuneforge.data.collate import pack_batch
from tuneforge.data.pretrain import build_pretrain_data, cut_documents
from tuneforge.errors import DataError
from tuneforge.models.builtin import toy_model
from tuneforge.models.forward import CROSS_ENTROPY, CausalLMLoss
from tuneforge.training.pretrain import PretrainRecipe

WORDS = ("goji", "ginseng", "tea", "jujube", "longan", "steep", "water", "store", "dry", "cool", "shop", "price")


def _texts(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, size=int(rng.integers(5, 40)))) for _ in range(n)]


def _write_text_rows(path, texts):
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts), encoding="utf-8")
    return path


def test_cut_documents_trains_every_token_but_the_first_once():
    lengths = np.array([3, 10, 5, 4, 1])
    doc, start, end = cut_documents(lengths, 4)
    assert list(zip(doc, start, end)) == [(0, 0, 3), (1, 0, 4), (1, 3, 7), (1, 6, 10), (2, 0, 4), (2, 3, 5),
                                          (3, 0, 4), (4, 0, 1)]
    for d, n in enumerate(lengths):
        targets = [t for p in np.nonzero(doc == d)[0] for t in range(start[p] + 1, end[p])]
        assert sorted(targets) == list(range(1, n))  # each token after the first: a target exactly once
    assert (end - start).max() <= 4


def test_text_files_and_folders_are_documents_ending_with_eos(tmp_path, toy_tokenizer):
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "a.md").write_text("# Goji\n\nSteep goji in water.\n\nStore dry.", encoding="utf-8")
    (corpus / "b.txt").write_text("Ginseng tea.", encoding="utf-8")
    (corpus / "notes.bin").write_bytes(b"\x00")  # not a document
    cfg = from_dict({"training_strategy": "pretrain", "train_data": str(corpus), "seq_length": 64})
    data = build_pretrain_data(cfg, toy_tokenizer)
    assert len(data.train.rows) == 2  # one document per file: blank lines do not split a file
    for row in data.train.rows:
        assert row.input_ids[-1] == toy_tokenizer.eos_token_id and row.labels == row.input_ids


def test_wrong_data_shape_is_refused_with_the_field(tmp_path, toy_tokenizer, sft_file):
    cfg = from_dict({"training_strategy": "pretrain", "train_data": str(sft_file)})
    with pytest.raises(DataError, match="field 'text'.*needs a 'text' column.*instruction rows"):
        build_pretrain_data(cfg, toy_tokenizer)


def _eval_sums(recipe, module) -> tuple[float, float]:
    loss = tokens = 0.0
    with torch.no_grad():
        for batch in recipe.eval_batches():
            _, stats = recipe.loss(module, batch)
            loss, tokens = loss + float(stats["loss_sum"]), tokens + stats["tokens"]
    return loss, tokens


def test_packed_loss_equals_each_document_alone(tmp_path, toy_tokenizer):
    texts = _texts(12)
    path = _write_text_rows(tmp_path / "docs.jsonl", texts)
    cfg = from_dict({"training_strategy": "pretrain", "train_data": str(path), "validation_data": str(path),
                     "seq_length": 128})
    data = build_pretrain_data(cfg, toy_tokenizer)
    docs = list(data.validation.rows)
    assert max(len(d.input_ids) for d in docs) <= 128  # no document is cut: each is scored whole below
    module = CausalLMLoss(toy_model(toy_tokenizer)).eval()
    packed = PretrainRecipe(data, toy_tokenizer.pad_token_id, 2, 128, packing=True)
    assert len(packed.validation) < len(docs) / 2  # rows really hold several documents
    # Each document alone, through the plain Hugging Face forward (no packing, no recipe).
    alone = 0.0
    with torch.no_grad():
        for d in docs:
            ids = torch.tensor([d.input_ids])
            alone += float(module.model(input_ids=ids, labels=ids).loss) * (len(d.input_ids) - 1)
    loss, tokens = _eval_sums(packed, module)
    assert tokens == sum(len(d.input_ids) - 1 for d in docs)
    assert loss == pytest.approx(alone, rel=1e-5)
    unpacked = PretrainRecipe(data, toy_tokenizer.pad_token_id, 2, 128, packing=False)
    assert _eval_sums(unpacked, module)[0] == pytest.approx(alone, rel=1e-5)
    # The check can fail: the same packed rows with positions running on (documents attending to each other).
    batch = pack_batch(docs[:4])
    with torch.no_grad():
        crossed, _ = module(batch.input_ids, None, None, targets=batch.targets, output=CROSS_ENTROPY)
        separate, _ = module(**batch.model_inputs(), output=CROSS_ENTROPY)
    assert abs(float(crossed) - float(separate)) > 1e-3


def test_cut_documents_lose_no_target_with_or_without_packing(tmp_path, toy_tokenizer):
    path = _write_text_rows(tmp_path / "long.jsonl", _texts(6, seed=1))
    cfg = from_dict({"training_strategy": "pretrain", "train_data": str(path), "validation_data": str(path),
                     "seq_length": 16})
    data = build_pretrain_data(cfg, toy_tokenizer)
    module = CausalLMLoss(toy_model(toy_tokenizer)).eval()
    packed = _eval_sums(PretrainRecipe(data, toy_tokenizer.pad_token_id, 3, 16, packing=True), module)
    unpacked = _eval_sums(PretrainRecipe(data, toy_tokenizer.pad_token_id, 3, 16, packing=False), module)
    assert packed[1] == unpacked[1] == sum(n - 1 for n in data.validation.lengths)
    assert packed[0] == pytest.approx(unpacked[0], rel=1e-5)


def test_pretrain_trains_end_to_end(tmp_path, toy_tokenizer):
    path = _write_text_rows(tmp_path / "docs.jsonl", _texts(16, seed=2))
    out = tmp_path / "run"
    summary = tuneforge.train({"training_strategy": "pretrain", "train_data": str(path), "validation_split": 0.25,
                               "seq_length": 64, "packing": True, "lora_dim": 8, "per_device_train_batch_size": 2,
                               "max_steps": 4, "eval_steps": 2, "learning_rate": 1e-2, "output_dir": str(out)},
                              progress=False)
    assert (out / "adapter_model.safetensors").is_file()
    evals = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    losses = [r["eval_loss"] for r in evals if "eval_loss" in r]
    assert len(losses) >= 2 and losses[-1] < losses[0]
    assert summary.steps == 4
