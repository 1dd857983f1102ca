"""Preview and stats show exactly what training trains on (issue 14, item 1), and the cache command works."""
from __future__ import annotations

import json

from tuneforge.cli import main
from tuneforge.config import from_dict
from tuneforge.data.split import prepare_data
from tuneforge.data.preview import render

LONG = " ".join(f"context{i}" for i in range(120)) + " so what is the FINAL QUESTION?"


def _preview(capsys, data, *keys):
    assert main(["preview", "--data", str(data), "--n", "10", "--json", *keys]) == 0
    return json.loads(capsys.readouterr().out)["rows"]


def _as_json(tokenizer, enc, truncated):
    row = render(tokenizer, enc, truncated)
    return {"text": row.text, "trained_spans": [list(s) for s in row.trained_spans], "tokens": row.tokens}


def test_long_dpo_pairs_preview_equals_training(tmp_path, write_jsonl, toy_tokenizer, capsys):
    rows = [{"prompt": LONG, "chosen": "a long right answer " * 30, "rejected": "a long wrong answer " * 25},
            {"prompt": "short?", "chosen": "very long answer " * 40, "rejected": "no"},
            {"prompt": LONG, "chosen": "yes", "rejected": "no"}]
    path = write_jsonl(tmp_path / "pairs.jsonl", rows)
    shown = _preview(capsys, path, "seq_length=96")
    train = prepare_data(from_dict({"train_data": str(path), "training_strategy": "dpo", "seq_length": 96}),
                         toy_tokenizer).train
    assert len(shown) == len(train) == 3
    for i, row in enumerate(shown):
        chosen, rejected = train.pairs[i].sequences()
        assert len(chosen.input_ids) <= 96 and len(rejected.input_ids) <= 96
        for side, enc in (("chosen", chosen), ("rejected", rejected)):
            expected = _as_json(toy_tokenizer, enc, train.is_truncated(i))
            assert {k: row[side][k] for k in expected} == expected
        # training keeps the prompt's end (the question) and cuts the responses
        assert row["chosen"]["text"].find("FINAL QUESTION") >= 0 or "short?" in row["chosen"]["text"]


def test_long_sft_rows_preview_and_stats_equal_training(tmp_path, write_jsonl, toy_tokenizer, capsys):
    rows = [{"messages": [{"role": "user", "content": LONG[-200:]}, {"role": "assistant", "content": "answer " * 200}]},
            {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello " * 5},
                          {"role": "user", "content": "more"}, {"role": "assistant", "content": "sure " * 200}]}]
    path = write_jsonl(tmp_path / "rows.jsonl", rows)
    shown = _preview(capsys, path, "seq_length=200")
    train = prepare_data(from_dict({"train_data": str(path), "seq_length": 200}), toy_tokenizer).train
    for i, row in enumerate(shown):
        expected = _as_json(toy_tokenizer, train.rows[i], train.is_truncated(i))
        assert {k: row[k] for k in expected} == expected and row["truncated"]
    assert main(["stats", "--data", str(path), "seq_length=200", "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)["splits"]["train"]
    assert stats["truncated"] == 2 and stats["answer_cut"] == 0  # training keeps both rows


def test_stats_counts_as_refused_only_the_pairs_training_drops(tmp_path, write_jsonl, toy_tokenizer, capsys):
    rows = [{"prompt": LONG, "chosen": "right " * 40, "rejected": "wrong " * 40},  # kept: the prompt is cut
            {"prompt": "q", "chosen": "same", "rejected": "same"}]  # dropped by training: identical
    path = write_jsonl(tmp_path / "pairs.jsonl", rows)
    assert main(["stats", "--data", str(path), "seq_length=64", "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)["splits"]["train"]
    data = prepare_data(from_dict({"train_data": str(path), "training_strategy": "dpo", "seq_length": 64}),
                        toy_tokenizer)
    assert stats["answer_cut"] == sum(data.report.dropped.values()) == 1


def test_cache_ls_and_clear(tmp_path, write_jsonl, toy_tokenizer, capsys, private_data_cache):
    path = write_jsonl(tmp_path / "d.jsonl", [{"prompt": "q", "completion": "a"}])
    prepare_data(from_dict({"train_data": str(path)}), toy_tokenizer)
    (private_data_cache / "keep-me.txt").write_text("not a cache entry")
    assert main(["cache", "ls", "--json"]) == 0
    entries = json.loads(capsys.readouterr().out)["entries"]
    assert len(entries) == 1 and entries[0]["state"] == "ok" and entries[0]["data"] == str(path)
    assert main(["cache", "clear", "0" * 24]) == 2
    assert "no entry" in capsys.readouterr().err
    assert main(["cache", "clear"]) == 0
    assert "removed 1 entries" in capsys.readouterr().out
    assert (private_data_cache / "keep-me.txt").is_file()  # only cache entries are ever deleted
    assert main(["cache", "ls"]) == 0 and "(0 entries" in capsys.readouterr().out
