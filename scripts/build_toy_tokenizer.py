"""Build the built-in toy model's tokenizer (byte-level BPE, ChatML template).

Run from the repository root: ``python scripts/build_toy_tokenizer.py``. The result is committed under
``src/tuneforge/models/toy_tokenizer/`` so that nothing is trained or downloaded at run time. The corpus is
the project's own example data plus a few bilingual sentences, so Chinese and English both get merges;
being byte-level, the tokenizer encodes any text, merges only make it shorter.
"""
from __future__ import annotations

import json
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "src" / "tuneforge" / "models" / "toy_tokenizer"
VOCAB_SIZE = 6000
SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

EXTRA_TEXT = [
    "You are a helpful assistant. How can I help you today? Thank you for your question.",
    "您好，请问有什么可以帮您？感谢您的耐心等待，祝您生活愉快。",
    "The quick brown fox jumps over the lazy dog. 0123456789 + - * / = ( ) [ ] { } < > , . ; : ! ?",
    "中药材应存放在阴凉干燥处，避免阳光直射。如有身体不适，请咨询医生。",
]


def corpus() -> list[str]:
    texts = list(EXTRA_TEXT)
    for path in sorted((ROOT / "examples" / "data").glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                texts.append(json.dumps(json.loads(line), ensure_ascii=False))
    return texts


def chat_template() -> str:
    # ChatML, like Qwen2.5: a default system prompt when the conversation has none, which
    # tuneforge's `system_prompt` replaces (DESIGN.md §4: a default the user cannot override).
    return (
        "{%- if messages and messages[0]['role'] == 'system' -%}"
        "{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' -}}"
        "{%- set rest = messages[1:] -%}"
        "{%- else -%}"
        "{{- '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' -}}"
        "{%- set rest = messages -%}"
        "{%- endif -%}"
        "{%- for m in rest -%}"
        "{{- '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' -}}"
        "{%- endfor -%}"
        "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}"
    )


def main() -> None:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=SPECIAL,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus(), trainer)
    from transformers import PreTrainedTokenizerFast

    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=["<|im_start|>"],
        model_max_length=4096,
    )
    fast.chat_template = chat_template()
    OUT.mkdir(parents=True, exist_ok=True)
    fast.save_pretrained(str(OUT))
    print(f"wrote {OUT} ({len(fast)} tokens)")


if __name__ == "__main__":
    main()
