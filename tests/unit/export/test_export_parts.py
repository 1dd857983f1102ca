"""Parts of GGUF export that need no model: Q/K row order, storage types, template and pre-tokenizer mapping,
the Ollama template families."""
from __future__ import annotations

import jinja2
import pytest
import torch

from tuneforge.errors import ConfigError
from tuneforge.export import runtime_files, tensors, vocab


def test_llama_rope_rows_interleave_the_two_halves_of_each_head():
    w = torch.arange(8).reshape(8, 1).float()  # 2 heads of 4 rows: (0 1 | 2 3), (4 5 | 6 7)
    assert tensors.to_llama_rope_rows(w, 2).flatten().tolist() == [0, 2, 1, 3, 4, 6, 5, 7]


def test_norms_stay_f32_and_q8_0_falls_back_where_rows_are_not_blocks_of_32():
    assert tensors.storage_for((128,), "q8_0") == "f32"
    assert tensors.storage_for((64, 128), "q8_0") == "q8_0"
    assert tensors.storage_for((64, 48), "q8_0") == "f16"
    assert tensors.storage_for((64, 48), "bf16") == "bf16"


def test_default_system_prompt_is_rendered_only_when_the_conversation_has_none():
    template = "{% for m in messages %}[{{ m['role'] }}:{{ m['content'] }}]{% endfor %}"
    wrapped = vocab.with_default_system(template, 'Say "hi"\n — 你好')
    render = jinja2.Environment().from_string(wrapped).render
    assert render(messages=[{"role": "user", "content": "q"}]) == '[system:Say "hi"\n — 你好][user:q]'
    assert render(messages=[{"role": "system", "content": "own"}, {"role": "user", "content": "q"}]) == "[system:own][user:q]"
    assert vocab.with_default_system(template, None) == template


def test_unknown_pre_tokenizer_is_refused_by_name():
    assert vocab._pre_name({"type": "ByteLevel", "use_regex": True}, "x") == "gpt-2"
    qwen = {"type": "Sequence", "pretokenizers": [{"type": "Split", "pattern": {"Regex": vocab._QWEN2_SPLIT}},
                                                  {"type": "ByteLevel", "use_regex": False}]}
    assert vocab._pre_name(qwen, "x") == "qwen2"
    with pytest.raises(ConfigError, match="pre-tokenizer"):
        vocab._pre_name({"type": "Whitespace"}, "x")


@pytest.mark.parametrize("marker,family", [("<|im_start|>", "ChatML"), ("<|start_header_id|>", "Llama 3"),
                                           ("[INST]", "fallback (role: content)")])
def test_ollama_template_family(marker, family):
    assert runtime_files.ollama_template("{{ '" + marker + "' }}")[0] == family
