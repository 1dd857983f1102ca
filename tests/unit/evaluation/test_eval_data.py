"""Evaluation reads any training format through the data layer: prompts, references, refusals, drops."""
import pytest

from tuneforge.config import from_dict
from tuneforge.errors import DataError
from tuneforge.evaluation.data import encode_file, file_strategy, generation_items


def _cfg(path, **keys):
    return from_dict({"train_data": str(path), **keys})


def test_multi_turn_chat_prompt_is_everything_before_the_last_answer(tmp_path, write_jsonl, toy_tokenizer):
    path = write_jsonl(tmp_path / "chat.jsonl", [
        {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."},
                      {"role": "user", "content": "菊花茶怎么泡？"}, {"role": "assistant", "content": "热水冲泡。"}]}])
    assert file_strategy(str(path)) == "sft"
    data = encode_file(_cfg(path), toy_tokenizer)
    (item,) = generation_items(data.validation, "sft")
    assert [m.content for m in item.prompt] == ["Hi", "Hello.", "菊花茶怎么泡？"]
    assert item.reference == "热水冲泡。" and item.source == f"{path}:1"
    assert data.train is data.validation and data.validation.lengths[0] == len(data.validation.rows[0].input_ids)
    sharegpt = write_jsonl(tmp_path / "sg.jsonl", [{"conversations": [{"from": "human", "value": "q"},
                                                                     {"from": "gpt", "value": "a"}]}])
    (item,) = generation_items(encode_file(_cfg(sharegpt), toy_tokenizer).validation, "sft")
    assert (item.prompt[-1].content, item.reference) == ("q", "a")


def test_preference_rows_are_scored_against_chosen(tmp_path, write_jsonl, toy_tokenizer):
    path = write_jsonl(tmp_path / "p.jsonl", [{"prompt": "Tea?", "chosen": "Yes, please.", "rejected": "No."},
                                              {"prompt": "Same?", "chosen": "x", "rejected": "x"}])
    assert file_strategy(str(path)) == "dpo"
    data = encode_file(_cfg(path, training_strategy="dpo"), toy_tokenizer)
    assert len(data.validation) == 1 and data.report.dropped == {"chosen and rejected are identical": 1}
    (item,) = generation_items(data.validation, "dpo")
    assert item.reference == "Yes, please." and item.prompt[-1].content == "Tea?"


def test_a_row_training_refuses_names_file_line_and_field(tmp_path, write_jsonl, toy_tokenizer):
    path = write_jsonl(tmp_path / "long.jsonl", [{"instruction": "short", "output": "ok"},
                                                 {"instruction": "word " * 200, "output": "ok"}])
    with pytest.raises(DataError) as err:
        encode_file(_cfg(path, seq_length=64), toy_tokenizer)
    assert (err.value.path, err.value.line, err.value.field) == (str(path), 2, "seq_length")
    with pytest.raises(DataError, match="cannot tell the row format"):
        file_strategy(str(write_jsonl(tmp_path / "odd.jsonl", [{"question": "q", "answer": 1}])))
