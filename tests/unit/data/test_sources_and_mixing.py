"""Streaming sources (CSV, Parquet, shard directories, saved HF datasets), the format table, data mixing."""
from __future__ import annotations

import json

import pytest

from tuneforge.config import from_dict
from tuneforge.data.formats import FORMATS, detect_format, load_examples, prompt_messages
from tuneforge.data.split import prepare_data, weighted
from tuneforge.errors import DataError

ROWS = [{"instruction": f"q{i}", "output": f"a{i}"} for i in range(6)]


def _messages(conv):
    return [(m.role, m.content) for m in conv.messages]


def test_parquet_csv_shards_and_saved_dataset_read_like_jsonl(tmp_path, write_jsonl):
    import pyarrow as pa
    import pyarrow.parquet as pq
    from datasets import Dataset

    expected = [_messages(c) for c in load_examples(write_jsonl(tmp_path / "d.jsonl", ROWS), "sft")]
    pq.write_table(pa.Table.from_pylist(ROWS), tmp_path / "d.parquet", row_group_size=2)
    (tmp_path / "d.csv").write_text("instruction,output\n" + "".join(f"q{i},a{i}\n" for i in range(6)), encoding="utf-8")
    shards = tmp_path / "shards"
    shards.mkdir()
    write_jsonl(shards / "part-0.jsonl", ROWS[:4])
    write_jsonl(shards / "part-1.jsonl", ROWS[4:])
    Dataset.from_list(ROWS).save_to_disk(str(tmp_path / "hf"))
    for path in ("d.parquet", "d.csv", "shards", "hf"):
        got = load_examples(tmp_path / path, "sft")
        assert [_messages(c) for c in got] == expected, path
    assert load_examples(shards, "sft")[4].source == f"{shards / 'part-1.jsonl'}:1"  # errors name the shard


def test_a_directory_without_shards_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="no data shards"):
        load_examples(tmp_path, "sft")


def test_format_table_detects_each_format_and_gives_its_prompt():
    rows = {"preference": {"prompt": "q", "chosen": "a", "rejected": "b", "system": "S"},
            "messages": {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]},
            "sharegpt": {"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]},
            "instruction": {"instruction": "q", "input": "x", "output": "a"},
            "prompt_completion": {"prompt": "q", "completion": "a"}}
    assert [f.name for f in FORMATS] == ["preference", "messages", "sharegpt", "instruction", "prompt_completion",
                                         "prompt", "feedback", "text"]
    # KTO feedback and pre-training text rows are detected only for the strategies that read them
    assert detect_format({"prompt": "q", "completion": "a", "label": True}) == "prompt_completion"
    assert detect_format({"prompt": "q", "completion": "a", "label": True}, ("feedback", "preference")) == "feedback"
    assert detect_format({"text": "t"}) is None and detect_format({"text": "t"}, ("text",)) == "text"
    for name, row in rows.items():
        assert detect_format(row) == name
        assert prompt_messages(row, ("f", 1))[-1].role == "user"
    assert detect_format({"prompt": "q"}) is None  # generation input, not a training row
    assert [(m.role, m.content) for m in prompt_messages({"prompt": "q"}, ("f", 1))] == [("user", "q")]
    assert prompt_messages(rows["preference"], ("f", 1))[0].content == "S"
    assert prompt_messages(rows["instruction"], ("f", 1))[-1].content == "q\nx"
    with pytest.raises(DataError, match="no prompt"):
        prompt_messages({"text": "q"}, ("f", 3))


def test_weighted_sampling_is_seeded_whole_copies_plus_a_sample():
    import random

    import numpy as np

    idx = np.arange(10)
    assert weighted(idx, 1.0, random.Random(0)).tolist() == list(range(10))
    two_and_half = weighted(idx, 2.5, random.Random(0))
    assert len(two_and_half) == 25 and two_and_half[:20].tolist() == list(range(10)) * 2
    assert weighted(idx, 0.3, random.Random(1)).tolist() == weighted(idx, 0.3, random.Random(1)).tolist()
    assert len(set(weighted(idx, 0.3, random.Random(1)).tolist())) == 3


def test_mixed_train_data_with_weight_and_max_rows(tmp_path, write_jsonl, toy_tokenizer):
    a = write_jsonl(tmp_path / "a.jsonl", [{"prompt": f"a{i}", "completion": "x"} for i in range(10)])
    b = write_jsonl(tmp_path / "b.jsonl", [{"prompt": f"b{i}", "completion": "y"} for i in range(10)])
    cfg = from_dict({"train_data": [str(a), {"path": str(b), "weight": 0.5, "max_rows": 6}], "seed": 3})
    data = prepare_data(cfg, toy_tokenizer)
    sources = [data.train.sources[i] for i in range(len(data.train))]
    assert sum(s.startswith(str(a)) for s in sources) == 10
    from_b = [s for s in sources if s.startswith(str(b))]
    assert len(from_b) == 3 and all(int(s.rsplit(":", 1)[1]) <= 6 for s in from_b)  # half of its first 6 rows
    assert f"{b}: 3 rows (weight 0.5) (max_rows 6)" in data.report.summary()
    again = prepare_data(cfg, toy_tokenizer)
    assert [again.train.sources[i] for i in range(len(again.train))] == sources  # deterministic under seed
    other = prepare_data(from_dict({**json.loads(json.dumps(cfg.to_dict())), "seed": 4}), toy_tokenizer)
    assert [other.train.sources[i] for i in range(len(other.train))] != sources


def test_validation_split_is_the_same_as_before_the_cache(tmp_path, write_jsonl, toy_tokenizer):
    import random

    rows = [{"prompt": f"p{i}", "completion": f"c{i}"} for i in range(20)]
    cfg = from_dict({"train_data": str(write_jsonl(tmp_path / "d.jsonl", rows)), "validation_split": 0.2, "seed": 5})
    data = prepare_data(cfg, toy_tokenizer)
    order = list(range(20))
    random.Random(5).shuffle(order)  # the rule the data layer always used: the first 20% of a seeded shuffle
    held = sorted(order[:4])
    assert [int(data.validation.sources[i].rsplit(":", 1)[1]) - 1 for i in range(4)] == held
    assert len(data.train) == 16
