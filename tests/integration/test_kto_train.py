"""KTO end to end: feedback rows and unpaired preference pairs train, metrics are logged, bad shapes are refused."""
from __future__ import annotations

import json

import pytest

import tuneforge
from tuneforge.config import from_dict
from tuneforge.data.kto import build_kto_data
from tuneforge.errors import DataError


def _feedback(n: int) -> list[dict]:
    return [{"prompt": f"How much is item {i}?", "completion": f"Item {i} costs {3 * i} yuan." if i % 2 else "No idea.",
             "label": bool(i % 2)} for i in range(n)]


def test_messages_prompt_csv_labels_and_pairs(tmp_path, write_jsonl, toy_tokenizer):
    rows = write_jsonl(tmp_path / "fb.jsonl", [
        {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi?"}],
         "completion": "Hello.", "label": True},
        {"messages": [{"role": "user", "content": "Price?"}], "completion": "Go away.", "label": "false"}])
    pairs = write_jsonl(tmp_path / "pairs.jsonl", [{"prompt": "Open today?", "chosen": "Yes, 9 to 6.", "rejected": "No."}])
    cfg = from_dict({"training_strategy": "kto", "train_data": [str(rows), str(pairs)], "seq_length": 128})
    data = build_kto_data(cfg, toy_tokenizer)
    assert len(data.train) == 4 and data.train.n_desirable == 2  # the pair gave one row of each class
    for r in range(4):
        row = data.train.pairs[r]
        partner = data.train.pairs[(r - 1) % 4]
        assert row.chosen and row.rejected  # completion and KL completion
        assert row.rejected == partner.chosen  # the KL completion is the previous row's completion


@pytest.mark.parametrize("row, field, why", [
    ({"prompt": "q", "completion": "a", "label": "maybe"}, "label", "expected true"),
    ({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}], "completion": "b",
      "label": True}, "messages", "must end with the user turn"),
    ({"instruction": "q", "output": "a"}, "label", "needs prompt"),
])
def test_wrong_shapes_name_file_line_and_field(tmp_path, write_jsonl, toy_tokenizer, row, field, why):
    path = write_jsonl(tmp_path / "bad.jsonl", [row])
    cfg = from_dict({"training_strategy": "kto", "train_data": str(path)})
    with pytest.raises(DataError, match=f"line 1, field '{field}'.*{why}"):
        build_kto_data(cfg, toy_tokenizer)


def test_imbalance_warning_in_the_banner_line(tmp_path, write_jsonl, toy_tokenizer):
    rows = [{"prompt": f"q{i}", "completion": f"a{i}", "label": i < 2} for i in range(8)]
    cfg = from_dict({"training_strategy": "kto", "train_data": str(write_jsonl(tmp_path / "f.jsonl", rows))})
    from tuneforge.training.kto import describe_feedback

    line = describe_feedback(build_kto_data(cfg, toy_tokenizer))
    assert "2 desirable, 6 undesirable" in line and "kto_desirable_weight in [3.00, 4.00]" in line


def test_kto_trains_end_to_end(tmp_path, write_jsonl):
    train = write_jsonl(tmp_path / "train.jsonl", _feedback(12))
    val = write_jsonl(tmp_path / "val.jsonl", _feedback(4))
    out = tmp_path / "run"
    tuneforge.train({"training_strategy": "kto", "train_data": str(train), "validation_data": str(val),
                     "seq_length": 64, "lora_dim": 8, "per_device_train_batch_size": 4, "max_steps": 3,
                     "eval_steps": 3, "logging_steps": 1, "learning_rate": 1e-2, "output_dir": str(out),
                     "metric_for_best_model": "eval_rewards/margins"}, progress=False)
    assert (out / "adapter_model.safetensors").is_file()
    records = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    train_rec = [r for r in records if "rewards/desirable" in r]
    evals = [r for r in records if "eval_kl" in r]
    assert len(train_rec) == 3 and len(evals) == 2
    for key in ("loss", "rewards/desirable", "rewards/undesirable", "logps/desirable", "logps/undesirable", "kl"):
        assert key in train_rec[-1] and "eval_" + key in evals[-1]
    assert evals[-1]["eval_rewards/margins"] > evals[0]["eval_rewards/margins"]  # it learns the labels


def test_a_single_row_is_refused(tmp_path, write_jsonl, toy_tokenizer):
    path = write_jsonl(tmp_path / "one.jsonl", [{"prompt": "q", "completion": "a", "label": True}])
    with pytest.raises(DataError, match="KTO needs at least 2"):
        build_kto_data(from_dict({"training_strategy": "kto", "train_data": str(path)}), toy_tokenizer)
