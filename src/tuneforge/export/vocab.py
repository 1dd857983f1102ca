"""The tokenizer as GGUF metadata: byte-level BPE vocabulary and merges, token types, special token ids,
the pre-tokenizer name llama.cpp splits text with, and the chat template with the run's system prompt as
its default.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

from ..errors import ConfigError

# llama.cpp token types (gguf.TokenType): how each vocabulary entry is matched and shown
NORMAL, CONTROL, USER_DEFINED, UNUSED = 1, 3, 4, 5

_LLAMA3_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
                 r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
_QWEN2_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
                r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
# tokenizer.json split regex -> llama.cpp's pre-tokenizer name (tokenizer.ggml.pre)
PRE_TOKENIZERS = {_LLAMA3_SPLIT: "llama-bpe", _QWEN2_SPLIT: "qwen2"}


@dataclass
class Vocab:
    tokens: list[str]
    types: list[int]
    merges: list[str]
    pre: str
    special_ids: dict[str, int] = field(default_factory=dict)  # bos/eos/pad/unk -> id
    add_bos: bool = False
    chat_template: str | None = None


def _pre_name(pre: dict | None, where: str) -> str:
    """llama.cpp's name for the way this tokenizer splits text before BPE."""
    if pre and pre.get("type") == "ByteLevel" and pre.get("use_regex", True):
        return "gpt-2"  # the plain GPT-2 split (the built-in model's tokenizer)
    parts = (pre or {}).get("pretokenizers", [])
    splits = [p for p in parts if p.get("type") == "Split"]
    if len(splits) == 1 and any(p.get("type") == "ByteLevel" for p in parts):
        regex = splits[0].get("pattern", {}).get("Regex")
        if regex in PRE_TOKENIZERS:
            return PRE_TOKENIZERS[regex]
    raise ConfigError(f"{where}: the tokenizer's pre-tokenizer is not one llama.cpp knows by name (supported: "
                      f"GPT-2 byte-level, {', '.join(PRE_TOKENIZERS.values())}); nothing was written.")


def _merges(model: dict) -> list[str]:
    return [m if isinstance(m, str) else " ".join(m) for m in model.get("merges", [])]


def with_default_system(template: str | None, system_prompt: str | None) -> str | None:
    """The template, rendering ``system_prompt`` when a conversation has no system message (as the run did)."""
    if not template or system_prompt is None:
        return template
    literal = json.dumps(system_prompt, ensure_ascii=False)
    prefix = ("{%- if not (messages and messages[0]['role'] == 'system') -%}"
              "{%- set messages = [{'role': 'system', 'content': " + literal + "}] + messages -%}{%- endif -%}")
    return prefix + template


def _token_table(tokenizer, vocab_size: int) -> tuple[list[str], list[int]]:
    ids = tokenizer.get_vocab()
    added = {t.content: t for t in tokenizer.backend_tokenizer.get_added_tokens_decoder().values()}
    if max(ids.values()) >= vocab_size:
        raise ConfigError(f"the tokenizer has ids up to {max(ids.values())} "
                          f"but the model's vocab_size is {vocab_size}: "
                          "llama.cpp needs one embedding row per token. Nothing was written.")
    size = vocab_size  # rows past the tokenizer (padding) become unused tokens
    tokens = [f"[PAD{i}]" for i in range(size)]
    types = [UNUSED] * size
    for token, i in ids.items():
        tokens[i] = token
        types[i] = (CONTROL if added[token].special else USER_DEFINED) if token in added else NORMAL
    return tokens, types


def _special_ids(tokenizer) -> dict[str, int]:
    out = {}
    for key in ("bos", "eos", "pad", "unk"):
        value = getattr(tokenizer, f"{key}_token_id", None)
        if value is not None:
            out[key] = int(value)
    return out


def build_vocab(tokenizer, vocab_size: int, *, where: str, system_prompt: str | None,
                use_chat_template: bool) -> Vocab:
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise ConfigError(f"{where}: a fast (tokenizers) tokenizer is needed for GGUF export.")
    spec = json.loads(backend.to_str())
    model = spec.get("model", {})
    if model.get("type") != "BPE" or (spec.get("decoder") or {}).get("type") != "ByteLevel":
        raise ConfigError(f"{where}: only byte-level BPE tokenizers (Llama 3, Qwen, the built-in model) are "
                          f"exported; this one is {model.get('type')!r}. Nothing was written.")
    tokens, types = _token_table(tokenizer, vocab_size)
    specials = _special_ids(tokenizer)
    probe = tokenizer("a")["input_ids"]
    add_bos = "bos" in specials and bool(probe) and probe[0] == specials["bos"]
    template = getattr(tokenizer, "chat_template", None) if use_chat_template else None
    return Vocab(tokens, types, _merges(model), _pre_name(spec.get("pre_tokenizer"), where), specials, add_bos,
                 with_default_system(template, system_prompt))


def write_vocab(writer, vocab: Vocab) -> None:
    writer.add_tokenizer_model("gpt2")  # llama.cpp's name for byte-level BPE
    writer.add_tokenizer_pre(vocab.pre)
    writer.add_token_list(vocab.tokens)
    writer.add_token_types(vocab.types)
    writer.add_token_merges(vocab.merges)
    adders = {"bos": writer.add_bos_token_id, "eos": writer.add_eos_token_id, "pad": writer.add_pad_token_id,
              "unk": writer.add_unk_token_id}
    for key, value in vocab.special_ids.items():
        adders[key](value)
    writer.add_add_bos_token(vocab.add_bos)
    if vocab.chat_template:
        writer.add_chat_template(vocab.chat_template)
