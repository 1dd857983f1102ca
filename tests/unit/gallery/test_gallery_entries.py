"""Every gallery entry's architecture numbers, checked against a real transformers model built from them."""
from __future__ import annotations

import pytest
import torch

from tuneforge import gallery
from tuneforge.errors import TuneforgeError
from tuneforge.models.memory import ModelShape

ENTRIES = gallery.entries()


def _real_counts(entry) -> tuple[int, int]:
    """(all parameters, embedding parameters) of the model the entry describes, built on the meta device."""
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(entry.hf_config())
    total = sum(p.numel() for p in model.parameters())  # tied weights are one parameter, counted once
    return total, model.get_input_embeddings().weight.numel()


@pytest.mark.parametrize("entry", ENTRIES, ids=[e.id for e in ENTRIES])
def test_parameter_count_matches_the_model_card(entry):
    total, embedding = _real_counts(entry)
    assert abs(total / entry.parameters - 1) < 0.01, f"{entry.id}: {total:,} parameters vs {entry.parameters_b}B stated"
    if entry.non_embedding_parameters_b is not None:  # Qwen cards also state the count without embeddings
        head = 0 if entry.tied_embeddings else embedding
        non_embedding = (total - embedding - head) / 1e9
        assert abs(non_embedding / entry.non_embedding_parameters_b - 1) < 0.01, entry.id
    # the estimator's own count (from the same numbers) agrees with transformers' model
    shape = ModelShape.from_config(entry.hf_config())
    assert abs(shape.total_params() / total - 1) < 0.002, entry.id


def test_issue_coverage():
    ids = {e.id for e in ENTRIES}
    wanted = {f"qwen2.5-{s}-instruct" for s in ("0.5b", "1.5b", "3b", "7b", "14b", "32b", "72b")}
    wanted |= {f"qwen3-{s}" for s in ("0.6b", "1.7b", "4b", "8b", "14b", "32b")}
    wanted |= {"llama-3.1-8b-instruct", "llama-3.1-70b-instruct", "llama-3.2-1b-instruct", "llama-3.2-3b-instruct",
               "mistral-7b-instruct-v0.3", "gemma-2-2b-it", "gemma-2-9b-it", "builtin:toy"}
    assert wanted <= ids
    assert len(ids) == len(ENTRIES)  # ids are unique


def test_toy_entry_is_the_builtin_model(toy_tokenizer):
    from tuneforge.models.builtin import toy_config

    real = toy_config(len(toy_tokenizer))
    entry = gallery.get("builtin:toy")
    for key, value in entry.config_kwargs().items():
        if key != "max_position_embeddings":
            assert getattr(real, key) == value, key


def test_every_entry_is_complete_and_serialisable():
    import json

    for entry in ENTRIES:
        d = entry.to_dict()
        json.dumps(d)
        assert d["end_of_turn"] and d["license"] and d["context_length"] > 0
        assert set(d["recommended"]) == set(gallery.STRATEGIES) >= {"sft", "dpo", "kto", "reward", "pretrain"}
        for strategy in gallery.STRATEGIES:
            assert set(d["recommended"][strategy]) == set(gallery.METHODS)
        assert d["recommended"]["dpo"]["lora"]["dpo_beta"] == 0.1
        assert d["recommended"]["kto"]["lora"]["kto_beta"] == 0.1
        assert all(d["recommended"]["pretrain"][m]["packing"] for m in gallery.METHODS)


def test_lookup_by_id_or_hub_id_and_close_matches():
    assert gallery.get("Qwen/Qwen2.5-7B-Instruct").id == "qwen2.5-7b-instruct"
    assert gallery.get("QWEN2.5-7B-INSTRUCT").hub_id == "Qwen/Qwen2.5-7B-Instruct"
    with pytest.raises(TuneforgeError, match="qwen2.5-7b-instruct"):
        gallery.get("qwen2.5-7b")
    with pytest.raises(TuneforgeError, match="llama-3.1-8b-instruct"):
        gallery.get("lama-3.1-8b-instruct")


def test_recommended_config_follows_the_practice():
    lora = gallery.recommended_config("qwen2.5-7b-instruct", "sft", "lora")
    assert 1e-4 <= lora["learning_rate"] <= 2e-4 and lora["lora_dim"] == 32 and lora["lora_alpha"] == 64
    full = gallery.recommended_config("qwen2.5-7b-instruct", "sft", "full")
    assert full["lora_dim"] == 0 and full["learning_rate"] <= 2e-5
    dpo = gallery.recommended_config("llama-3.1-8b-instruct", "dpo", "qlora4")
    assert dpo["load_in_4bit"] is True and dpo["dpo_beta"] == 0.1 and dpo["training_strategy"] == "dpo"
    with pytest.raises(TuneforgeError, match="method='qlora'.*qlora4"):
        gallery.recommended_config("qwen2.5-7b-instruct", "sft", "qlora")
