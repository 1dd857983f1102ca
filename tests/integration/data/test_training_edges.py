"""Edges found against TRL (issue 14, item 7): adapter settings when continuing, dropout during DPO."""
from __future__ import annotations

import torch
from torch import nn

from tuneforge.config import from_dict
from tuneforge.models.load import prepare_model, resolve_precision


def _dropouts(model: nn.Module, lora_only: bool = False) -> set[float]:
    return {m.p for name, m in model.named_modules() if isinstance(m, nn.Dropout) and (not lora_only or "lora_dropout" in name)}


def _data(tmp_path, write_jsonl):
    write_jsonl(tmp_path / "d.jsonl", [{"prompt": "q", "chosen": "a", "rejected": "b"}])


def test_dpo_turns_dropout_off_by_default_sft_keeps_it(tmp_path, write_jsonl, toy_tokenizer):
    _data(tmp_path, write_jsonl)
    sft = prepare_model(from_dict({"train_data": str(tmp_path / "d.jsonl"), "lora_dropout": 0.2}), toy_tokenizer,
                        torch.device("cpu"), resolve_precision(from_dict({"train_data": str(tmp_path / "d.jsonl")}),
                                                               torch.device("cpu")), tmp_path / "o1")[0]
    assert _dropouts(sft, lora_only=True) == {0.2}
    cfg = from_dict({"train_data": str(tmp_path / "d.jsonl"), "training_strategy": "dpo", "lora_dropout": 0.2})
    dpo = prepare_model(cfg, toy_tokenizer, torch.device("cpu"), resolve_precision(cfg, torch.device("cpu")),
                        tmp_path / "o2")[0]
    assert _dropouts(dpo) == {0.0}
    cfg = from_dict({"train_data": str(tmp_path / "d.jsonl"), "training_strategy": "dpo", "lora_dropout": 0.2,
                     "disable_dropout": False})
    kept = prepare_model(cfg, toy_tokenizer, torch.device("cpu"), resolve_precision(cfg, torch.device("cpu")),
                         tmp_path / "o3")[0]
    assert _dropouts(kept, lora_only=True) == {0.2}


def test_continued_adapter_honours_lora_dropout_and_reports_shape_conflicts(tmp_path, write_jsonl, toy_tokenizer,
                                                                             capsys):
    from peft import LoraConfig, get_peft_model

    from tuneforge.models.builtin import toy_model

    _data(tmp_path, write_jsonl)
    adapter = tmp_path / "adapter"
    saved = get_peft_model(toy_model(toy_tokenizer), LoraConfig(r=4, lora_alpha=8, lora_dropout=0.0,
                                                                target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"))
    saved.save_pretrained(str(adapter))
    cfg = from_dict({"train_data": str(tmp_path / "d.jsonl"), "adapter_name_or_path": str(adapter),
                     "lora_dropout": 0.3, "lora_dim": 8})
    model = prepare_model(cfg, toy_tokenizer, torch.device("cpu"), resolve_precision(cfg, torch.device("cpu")),
                          tmp_path / "out")[0]
    assert _dropouts(model, lora_only=True) == {0.3}  # the config's dropout, not the adapter's saved 0.0
    assert model.peft_config["default"].r == 4  # the adapter's shape is kept ...
    err = capsys.readouterr().err
    assert "rank 4 (config lora_dim=8)" in err and "target modules" in err  # ... and the difference is said
    assert any(p.requires_grad for p in model.parameters())
