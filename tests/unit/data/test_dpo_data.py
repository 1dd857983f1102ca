"""DPO data: encoding of prompt/chosen/rejected, truncation of both sequences, dropped rows counted."""
from __future__ import annotations

import copy
import re

import pytest

from tuneforge.config import from_dict
from tuneforge.data import encode as dpo_data  # the truncation rule lives in the one encoder
from tuneforge.data.dpo import (DROP_IDENTICAL, DROP_IDENTICAL_TRUNCATED, DROP_NO_RESPONSE, DROP_TEMPLATE,
                                EncodedPair, build_dpo_data, truncate_pair)
from tuneforge.data.formats import Message
from tuneforge.data.templates import IGNORE_INDEX, encode_prompt
from tuneforge.errors import DataError

LONG_PROMPT = " ".join(f"context{i}" for i in range(300)) + " so what is the FINAL QUESTION?"


def _build(tmp_path, write_jsonl, tok, rows, **keys):
    path = write_jsonl(tmp_path / "pairs.jsonl", rows)
    cfg = from_dict({"training_strategy": "dpo", "train_data": str(path), **keys})
    return build_dpo_data(cfg, tok)


def _row(prompt="What is goji?", chosen="A dried berry, ¥35 a bag.", rejected="No idea."):
    return {"prompt": prompt, "chosen": chosen, "rejected": rejected}


def test_pair_encoding_matches_generation_prompt_and_ends_with_eos(tmp_path, write_jsonl, toy_tokenizer):
    data = _build(tmp_path, write_jsonl, toy_tokenizer, [_row()])
    pair = data.train.pairs[0]
    # the prompt is exactly what the model sees at generation time (template + generation prompt)
    msgs = [Message("user", "What is goji?")]
    assert pair.prompt == encode_prompt(toy_tokenizer, msgs, chat_template=True)
    # each response is the assistant text plus the end-of-turn token, not the template's trailing newline
    assert pair.chosen[-1] == toy_tokenizer.eos_token_id and pair.rejected[-1] == toy_tokenizer.eos_token_id
    assert toy_tokenizer.decode(pair.chosen[:-1]) == "A dried berry, ¥35 a bag."
    chosen_row, rejected_row = pair.sequences()
    assert chosen_row.labels[: len(pair.prompt)] == [IGNORE_INDEX] * len(pair.prompt)
    assert chosen_row.labels[len(pair.prompt):] == pair.chosen
    assert rejected_row.input_ids == pair.prompt + pair.rejected


def test_plain_mode_appends_eos(tmp_path, write_jsonl, toy_tokenizer):
    data = _build(tmp_path, write_jsonl, toy_tokenizer, [_row()], apply_chat_template=False)
    pair = data.train.pairs[0]
    assert toy_tokenizer.decode(pair.prompt) == "What is goji?\n"
    assert pair.chosen[-1] == toy_tokenizer.eos_token_id and pair.rejected[-1] == toy_tokenizer.eos_token_id


def test_message_list_prompt_with_system_and_system_prompt(tmp_path, write_jsonl, toy_tokenizer):
    rows = [
        {"prompt": [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": "Price of goji?"}],
         "chosen": [{"role": "assistant", "content": "¥35."}], "rejected": "Figure it out."},
        {"prompt": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"},
                    {"role": "user", "content": "Open on Sunday?"}], "chosen": "Yes, 9-18.", "rejected": "No."},
    ]
    data = _build(tmp_path, write_jsonl, toy_tokenizer, rows, system_prompt="You are Bencao Hall's assistant.")
    first, second = (toy_tokenizer.decode(p.prompt) for p in data.train.pairs)
    # the row's own system message wins; the configured system prompt fills rows without one and
    # replaces the template's built-in default
    assert "Answer briefly." in first and "Bencao Hall" not in first
    assert "Bencao Hall" in second and "You are a helpful assistant." not in second
    # earlier turns of a multi-turn prompt are context, never trained
    assert "Hello!" in second and second.endswith("<|im_start|>assistant\n")
    assert toy_tokenizer.decode(data.train.pairs[0].chosen) == "¥35.<|im_end|>"


@pytest.mark.parametrize("prompt, chosen, rejected", [
    (LONG_PROMPT, "Short answer.", "Nope."),  # long prompt only
    ("Tell me everything?", "very long answer " * 80, "another long wrong answer " * 60),  # long responses only
    (LONG_PROMPT, "very long answer " * 80, "another long wrong answer " * 60),  # both
])
def test_truncation_bounds_both_sequences_and_keeps_prompt_end(tmp_path, write_jsonl, toy_tokenizer, prompt, chosen,
                                                               rejected):
    seq_length = 96
    full = _build(tmp_path, write_jsonl, toy_tokenizer, [_row(prompt, chosen, rejected)], seq_length=4096)
    data = _build(tmp_path, write_jsonl, toy_tokenizer, [_row(prompt, chosen, rejected)], seq_length=seq_length)
    whole, cut = full.train.pairs[0], data.train.pairs[0]
    assert data.train.truncated == 1
    for row in cut.sequences():
        assert len(row.input_ids) <= seq_length
    # the prompt keeps its end (the question and the generation prompt)
    assert whole.prompt[len(whole.prompt) - len(cut.prompt):] == cut.prompt
    assert toy_tokenizer.decode(cut.prompt).endswith("<|im_start|>assistant\n")
    # the prompt is shortened only down to its floor, only as far as needed; responses keep their start
    floor = int(seq_length * dpo_data.PROMPT_FLOOR_FRACTION)
    assert len(cut.prompt) >= min(len(whole.prompt), floor)
    assert cut.chosen == whole.chosen[: len(cut.chosen)] and cut.rejected == whole.rejected[: len(cut.rejected)]
    longest = max(len(whole.chosen), len(whole.rejected))
    if len(whole.prompt) > floor and longest <= seq_length - floor:
        assert cut.chosen == whole.chosen and cut.rejected == whole.rejected  # only the prompt had to give
    if len(whole.prompt) <= floor:
        assert cut.prompt == whole.prompt  # a short prompt is never cut
    assert cut.longest == seq_length


def test_truncate_pair_keeps_bos_and_can_leave_no_response():
    pair = EncodedPair(prompt=[1] + list(range(100, 140)), chosen=[7, 8, 9, 2], rejected=[5, 2])
    # longest response 4 → the prompt keeps 20 - 4 = 16 tokens (above the floor 10): BOS + its last 15
    cut, truncated = truncate_pair(pair, seq_length=20, keep_head=1)
    assert truncated and cut.prompt[0] == 1 and cut.prompt[1:] == list(range(125, 140))
    assert cut.chosen == [7, 8, 9, 2] and cut.rejected == [5, 2] and cut.longest == 20
    # a prompt floor as long as seq_length leaves no room for any response token
    empty, _ = truncate_pair(pair, seq_length=20, keep_head=1, prompt_floor=20)
    assert empty.chosen == [] and empty.rejected == [] and len(empty.prompt) == 20
    same, truncated = truncate_pair(pair, seq_length=64)
    assert not truncated and same is pair


def test_pairs_without_response_tokens_are_dropped_and_counted(tmp_path, write_jsonl, toy_tokenizer, monkeypatch):
    monkeypatch.setattr(dpo_data, "PROMPT_FLOOR_FRACTION", 1.0)  # keep the whole (long) prompt
    rows = [_row(LONG_PROMPT), _row(LONG_PROMPT + " again"), _row()]
    data = _build(tmp_path, write_jsonl, toy_tokenizer, rows, seq_length=64)
    assert len(data.train.pairs) == 1
    assert data.report.dropped == {DROP_NO_RESPONSE: 2}
    assert data.report.examples[DROP_NO_RESPONSE].endswith(":1")


def test_identical_pairs_dropped_and_counted(tmp_path, write_jsonl, toy_tokenizer):
    shared = "The same long beginning of an answer " * 20
    rows = [_row(chosen="Same.", rejected="Same."), _row(), _row(chosen="Same", rejected="Same"),
            _row(chosen=shared + "right", rejected=shared + "wrong")]
    data = _build(tmp_path, write_jsonl, toy_tokenizer, rows, seq_length=64)
    assert len(data.train.pairs) == 1
    assert data.report.dropped == {DROP_IDENTICAL: 2, DROP_IDENTICAL_TRUNCATED: 1}


def test_all_rows_dropped_is_a_data_error(tmp_path, write_jsonl, toy_tokenizer):
    with pytest.raises(DataError, match="no trainable preference pairs"):
        _build(tmp_path, write_jsonl, toy_tokenizer, [_row(chosen="x", rejected="x")])


def test_template_that_renders_prompt_differently_is_reported(tmp_path, write_jsonl, toy_tokenizer):
    tok = copy.deepcopy(toy_tokenizer)
    # the generation prompt says "assistant" but an answered turn says "bot": the prompt is no prefix
    tok.chat_template = ("{% for m in messages %}<|im_start|>{{ 'bot' if m['role'] == 'assistant' else m['role'] }}\n"
                         "{{ m['content'] }}<|im_end|>\n{% endfor %}"
                         "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
    with pytest.raises(DataError, match="line 1.*prompt"):
        _build(tmp_path, write_jsonl, tok, [_row()])
    # with on_bad_rows: skip, such rows are dropped and counted (here all of them, so no pair is left)
    path = write_jsonl(tmp_path / "mixed.jsonl", [_row(), _row()])
    cfg = from_dict({"training_strategy": "dpo", "train_data": str(path), "on_bad_rows": "skip"})
    with pytest.raises(DataError, match=re.escape(f"no trainable preference pairs left ({DROP_TEMPLATE}: 2)")):
        build_dpo_data(cfg, tok)


def test_validation_split_holds_out_pairs(tmp_path, write_jsonl, toy_tokenizer):
    rows = [_row(prompt=f"Question number {i}?") for i in range(20)]
    data = _build(tmp_path, write_jsonl, toy_tokenizer, rows, validation_split=0.2)
    assert len(data.train.pairs) == 16 and len(data.validation.pairs) == 4
    train_prompts = {tuple(p.prompt) for p in data.train.pairs}
    assert not train_prompts & {tuple(p.prompt) for p in data.validation.pairs}
