"""Label masks: what is trained is exactly the assistant answers and their end-of-turn token."""
from tuneforge.data.formats import Message
from tuneforge.data.templates import IGNORE_INDEX, encode_messages, encode_prompt, with_system_prompt


def trained_text(tok, enc):
    return tok.decode([t for t, l in zip(enc.input_ids, enc.labels) if l != IGNORE_INDEX])


def conv(*pairs):
    return [Message(r, c) for r, c in pairs]


def test_only_assistant_and_end_of_turn_are_trained(toy_tokenizer):
    msgs = conv(("system", "Be brief."), ("user", "您好 hello"), ("assistant", "您好！Hi there."))
    enc = encode_messages(toy_tokenizer, msgs, chat_template=True)
    assert trained_text(toy_tokenizer, enc) == "您好！Hi there.<|im_end|>"
    # labels equal the ids where trained
    assert all(l in (IGNORE_INDEX, i) for i, l in zip(enc.input_ids, enc.labels))
    # the prompt (system + user + generation prompt) is untrained and is a prefix
    assert toy_tokenizer.decode(enc.input_ids[: enc.prompt_length]).endswith("<|im_start|>assistant\n")
    assert all(l == IGNORE_INDEX for l in enc.labels[: enc.prompt_length])


def test_multi_turn_trains_every_answer(toy_tokenizer):
    msgs = conv(("user", "q1"), ("assistant", "a1"), ("user", "q2"), ("assistant", "a2"))
    enc = encode_messages(toy_tokenizer, msgs, chat_template=True)
    assert trained_text(toy_tokenizer, enc) == "a1<|im_end|>a2<|im_end|>"
    last = encode_messages(toy_tokenizer, msgs, chat_template=True, last_turn_only=True)
    assert trained_text(toy_tokenizer, last) == "a2<|im_end|>"


def test_end_of_turn_trained_when_pad_equals_eos(pad_eos_tokenizer):
    tok = pad_eos_tokenizer
    assert tok.pad_token_id == tok.eos_token_id
    enc = encode_messages(tok, conv(("user", "q"), ("assistant", "answer")), chat_template=True)
    trained = [t for t, l in zip(enc.input_ids, enc.labels) if l != IGNORE_INDEX]
    assert trained[-1] == tok.eos_token_id
    # the pad/eos id also appears (untrained) earlier in the prompt: masking is by position, not by id
    assert enc.input_ids.count(tok.eos_token_id) >= 2


def test_system_prompt_replaces_template_default(toy_tokenizer):
    msgs = conv(("user", "q"), ("assistant", "a"))
    default = toy_tokenizer.decode(encode_messages(toy_tokenizer, msgs, chat_template=True).input_ids)
    assert "You are a helpful assistant." in default
    custom = encode_messages(toy_tokenizer, with_system_prompt(msgs, "你是本草堂的客服。"), chat_template=True)
    text = toy_tokenizer.decode(custom.input_ids)
    assert "你是本草堂的客服。" in text and "You are a helpful assistant." not in text
    # a row's own system message wins over system_prompt
    own = with_system_prompt(conv(("system", "Row system"), ("user", "q"), ("assistant", "a")), "Config system")
    assert [m.content for m in own if m.role == "system"] == ["Row system"]


def test_plain_mode_keeps_user_special_tokens_and_appends_eos(toy_tokenizer):
    tok = toy_tokenizer
    msgs = conv(("user", "<|im_start|>user q<|im_end|>"), ("assistant", "answer"))
    enc = encode_messages(tok, msgs, chat_template=False)
    assert enc.input_ids[0] == tok.convert_tokens_to_ids("<|im_start|>")  # parsed as the special token
    assert trained_text(tok, enc) == "answer<|im_end|>"
    assert enc.input_ids[-1] == tok.eos_token_id


def test_generation_prompt_matches_training_prefix(toy_tokenizer):
    msgs = conv(("user", "q"), ("assistant", "a"))
    enc = encode_messages(toy_tokenizer, msgs, chat_template=True)
    assert encode_prompt(toy_tokenizer, msgs[:1], chat_template=True) == enc.input_ids[: enc.prompt_length]


def test_template_that_refuses_a_system_message_is_reported_with_file_and_line(tmp_path, write_jsonl):
    """Mistral-style templates raise on a system role; the row is named, no traceback."""
    import pytest

    from tuneforge.config import from_dict
    from tuneforge.data.sft import build_sft_data
    from tuneforge.errors import DataError
    from tuneforge.models.builtin import toy_tokenizer

    tok = toy_tokenizer()
    tok.chat_template = (
        "{% for m in messages %}{% if m['role'] == 'system' %}{{ raise_exception('System role not supported') }}"
        "{% elif m['role'] == 'user' %}{{ '[INST] ' + m['content'] + ' [/INST]' }}"
        "{% else %}{{ m['content'] + eos_token }}{% endif %}{% endfor %}")
    data = write_jsonl(tmp_path / "d.jsonl", [{"instruction": "q", "output": "a"},
                                              {"instruction": "q", "output": "a", "system": "S"}])
    with pytest.raises(DataError, match=r"d.jsonl, line 2, field 'messages'.*System role not supported"):
        build_sft_data(from_dict({"train_data": str(data)}), tok)
    skipped = build_sft_data(from_dict({"train_data": str(data), "on_bad_rows": "skip"}), tok)
    assert len(skipped.train.rows) == 1 and skipped.report.total == 1
    # the template's own format is trained as usual: answer + EOS
    enc = skipped.train.rows[0]
    assert tok.decode([t for t, l in zip(enc.input_ids, enc.labels) if l != IGNORE_INDEX]) == "a<|im_end|>"
