"""A model, tokenizer and data that are not in the repository, and tiny runs trained on them.

The tokenizer is the toy byte-level BPE with a chat template that has its *own* default system prompt
and pad token == EOS token; the model is a small random Llama of a different shape than the toy.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

DEFAULT_SYSTEM = "You are Quill, a terse assistant."
RUN_SYSTEM = "You answer as a ship's cook."
TEMPLATE = (
    "{%- if messages and messages[0]['role'] == 'system' -%}"
    "{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' -}}{%- set rest = messages[1:] -%}"
    "{%- else -%}{{- '<|im_start|>system\\n" + DEFAULT_SYSTEM + "<|im_end|>\\n' -}}{%- set rest = messages -%}"
    "{%- endif -%}"
    "{%- for m in rest -%}{{- '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' -}}{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}")


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def tools_model_dir(tmp_path_factory) -> Path:
    """tokenizer (own default system prompt, pad == eos) + LlamaForCausalLM(hidden 48, 2 layers), safetensors."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from tuneforge.models.builtin import TOKENIZER_DIR

    out = tmp_path_factory.mktemp("quill-model")
    tok = AutoTokenizer.from_pretrained(str(TOKENIZER_DIR))
    tok.pad_token = tok.eos_token
    tok.chat_template = TEMPLATE
    tok.save_pretrained(str(out))
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=48, intermediate_size=96, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
                      tie_word_embeddings=False, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
                      bos_token_id=None)
    torch.manual_seed(7)
    model = LlamaForCausalLM(cfg)
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    model.save_pretrained(str(out), safe_serialization=True)
    return out


@pytest.fixture(scope="session")
def tools_data(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("quill-data")
    sft = [{"messages": [{"role": "user", "content": f"How many apples in crate {i}?"},
                         {"role": "assistant", "content": "Crate " + str(i) + " holds " + "many " * (i % 7) + "apples."}]}
           for i in range(20)]
    sft.append({"messages": [{"role": "user", "content": "Two turns?"}, {"role": "assistant", "content": "Yes."},
                             {"role": "user", "content": "Sure?"}, {"role": "assistant", "content": "Quite sure."}]})
    dpo = [{"prompt": f"Is {i} even?", "chosen": "Yes, it is." if i % 2 == 0 else "No, it is odd.",
            "rejected": "Maybe. " * (1 + i % 5)} for i in range(12)]
    return {"sft": write_jsonl(d / "sft.jsonl", sft), "dpo": write_jsonl(d / "dpo.jsonl", dpo),
            "prompts": write_jsonl(d / "prompts.jsonl", [{"prompt": "Hello?"},
                                                         {"instruction": "Count crates", "input": "1, 2"},
                                                         {"messages": [{"role": "user", "content": "Hi"}]}])}


def _train(model_dir: Path, data: Path, out: Path, **keys):
    import tuneforge

    base = dict(model=str(model_dir), train_data=str(data), output_dir=str(out), max_steps=3, learning_rate=5e-2,
                per_device_train_batch_size=4, seq_length=128, logging_steps=1, warmup_ratio=0.0,
                system_prompt=RUN_SYSTEM)
    base.update(keys)
    return tuneforge.train(base, progress=False)


@pytest.fixture(scope="session")
def lora_run(tools_model_dir, tools_data, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "lora"
    _train(tools_model_dir, tools_data["sft"], out, lora_dim=8, validation_split=0.2, eval_steps=2)
    return out


@pytest.fixture(scope="session")
def full_run(tools_model_dir, tools_data, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("runs") / "full"
    _train(tools_model_dir, tools_data["sft"], out, lora_dim=0, max_steps=2, learning_rate=1e-3)
    return out


@pytest.fixture(scope="session")
def prompts() -> dict[str, str]:
    """The template's own default system prompt and the one the runs configure."""
    return {"default": DEFAULT_SYSTEM, "run": RUN_SYSTEM}
