"""A LoRA run on the built-in model, and a tiny Qwen2-shaped model directory whose byte-level BPE tokenizer
(a few thousand merges, Qwen2's split regex, ChatML with its own default system prompt) is trained here."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

RUN_SYSTEM = "You answer as a ship's cook. 你是厨师。"
QWEN_DEFAULT_SYSTEM = "You are Tiny Qwen, a test model."
QWEN_TEMPLATE = (
    "{%- if messages[0]['role'] == 'system' -%}{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' -}}"
    "{%- set rest = messages[1:] -%}{%- else -%}{{- '<|im_start|>system\\n" + QWEN_DEFAULT_SYSTEM
    + "<|im_end|>\\n' -}}{%- set rest = messages -%}{%- endif -%}"
    "{%- for m in rest -%}{{- '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' -}}{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}")


@pytest.fixture(scope="session")
def toy_lora_run(tmp_path_factory) -> Path:
    import tuneforge

    d = tmp_path_factory.mktemp("export-run")
    rows = [{"messages": [{"role": "user", "content": f"How many apples in crate {i}?"},
                          {"role": "assistant", "content": f"Crate {i} holds {i * 3} apples."}]} for i in range(16)]
    data = d / "sft.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    out = d / "sft-lora"
    tuneforge.train(dict(model="builtin:toy", train_data=str(data), output_dir=str(out), max_steps=3,
                         learning_rate=5e-2, per_device_train_batch_size=4, seq_length=64, lora_dim=8, lora_alpha=16,
                         warmup_ratio=0.0, system_prompt=RUN_SYSTEM), progress=False)
    return out


def _corpus() -> list[str]:
    repo = Path(__file__).resolve().parents[3]
    lines = []
    for path in sorted((repo / "examples" / "data").glob("*.jsonl")):
        lines += path.read_text(encoding="utf-8").splitlines()
    lines += (repo / "README.md").read_text(encoding="utf-8").splitlines()
    return lines


def qwen2_tokenizer(vocab_size: int = 3000):
    """Byte-level BPE trained here with Qwen2's pre-tokenizer split and ChatML specials."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    from tuneforge.export.vocab import _QWEN2_SPLIT

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(_QWEN2_SPLIT), behavior="isolated"),
                                                 pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(_corpus(), trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>")
    fast.add_special_tokens({"additional_special_tokens": ["<|im_start|>"]})
    fast.chat_template = QWEN_TEMPLATE
    return fast


@pytest.fixture(scope="session")
def qwen2_dir(tmp_path_factory) -> Path:
    """A 'merged directory': config.json + model.safetensors + tokenizer (no tuneforge config)."""
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    out = tmp_path_factory.mktemp("tiny-qwen2")
    tok = qwen2_tokenizer()
    tok.save_pretrained(str(out))
    cfg = Qwen2Config(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                      tie_word_embeddings=False, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id,
                      bos_token_id=None)
    torch.manual_seed(11)
    model = Qwen2ForCausalLM(cfg)
    with torch.no_grad():  # Qwen2's q/k/v biases start at zero: give them values so their export is tested
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.normal_(0, 0.5)
    model.save_pretrained(str(out), safe_serialization=True)
    return out
