"""`tuneforge merge` of an adapter on the output head of a model whose head shares the input embeddings (the
toy, with `lm_head` in lora_target_modules as the GRPO example has): the merged model computes what base +
adapter compute; folding the head's update into the shared matrix would change the embeddings too."""
from __future__ import annotations

import torch

import tuneforge
from tuneforge.cli import main


def test_merge_unties_an_adapted_tied_head(tmp_path, write_jsonl):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from tuneforge.models.builtin import toy_model, toy_tokenizer

    data = write_jsonl(tmp_path / "d.jsonl", [{"instruction": f"q{i}", "output": f"answer {i}"} for i in range(4)])
    run = tmp_path / "run"
    tuneforge.train({"train_data": str(data), "output_dir": str(run), "max_steps": 2, "learning_rate": 5e-2,
                     "lora_dim": 4, "lora_target_modules": ["q_proj", "lm_head"], "seq_length": 64,
                     "save_steps": -1}, progress=False)
    assert main(["merge", str(run), "--output", str(tmp_path / "merged")]) == 0
    ids = torch.tensor([[5, 17, 230, 99, 1000, 42]])
    tok = toy_tokenizer()
    with torch.no_grad():
        plain = toy_model(tok)(input_ids=ids).logits
        adapted = PeftModel.from_pretrained(toy_model(tok), str(run)).eval()(input_ids=ids).logits
        merged_model = AutoModelForCausalLM.from_pretrained(str(tmp_path / "merged")).eval()
        merged = merged_model(input_ids=ids).logits
    assert (adapted - plain).abs().max() > 1e-3
    torch.testing.assert_close(merged, adapted, atol=1e-4, rtol=1e-4)
    assert not merged_model.config.tie_word_embeddings
