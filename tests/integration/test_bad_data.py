"""Bad data is refused before training — file, line, field, exit code 2 — or, with on_bad_rows: skip, dropped and counted.

One fixture per defect kind (tests/fixtures/bad_data/README.md), the defect at a known line.
"""
from pathlib import Path

import pytest

from tuneforge.cli import main
from tuneforge.config import from_dict
from tuneforge.data.sft import build_sft_data

BAD = Path(__file__).resolve().parents[1] / "fixtures" / "bad_data"

# file, strategy, line, field (None: the defect is the whole line), words the reason must contain, extra keys
CASES = [
    ("invalid_json.jsonl", "sft", 3, None, "invalid JSON", {}),
    ("missing_field.jsonl", "sft", 4, "output", "missing required field", {}),
    ("wrong_type.jsonl", "sft", 2, "output", "expected a string", {}),
    ("empty_answer.jsonl", "sft", 5, "output", "empty", {}),
    ("unknown_role.jsonl", "sft", 3, "messages[1].role", "unknown role 'bot'", {}),
    ("no_assistant_turn.jsonl", "sft", 6, "messages", "no assistant turn", {}),
    ("dpo_missing_rejected.jsonl", "dpo", 2, "rejected", "missing required field", {}),
    ("truncated_no_trained_token.jsonl", "sft", 4, "seq_length", "no trained token", {"seq_length": 64}),
]


def _args(tmp_path, name, strategy, extra):
    keys = {"train_data": str(BAD / name), "training_strategy": strategy, "output_dir": str(tmp_path / "out"),
            "max_steps": 1, "per_device_train_batch_size": 2, **extra}
    return ["train", *[f"{k}={v}" for k, v in keys.items()], "--no-progress"]


@pytest.mark.parametrize("name,strategy,line,field,why,extra", CASES, ids=[c[0] for c in CASES])
def test_each_defect_is_refused_with_file_line_and_field(tmp_path, capsys, name, strategy, line, field, why, extra):
    code = main(_args(tmp_path, name, strategy, extra))
    err = capsys.readouterr().err
    assert code == 2, err
    assert f"{name}, line {line}" in err
    if field is not None:
        assert f"field '{field}'" in err
    assert why in err
    assert "Traceback" not in err
    assert not (tmp_path / "out").exists(), "refused before any output was written"


@pytest.mark.parametrize("name,strategy,line,field,why,extra", CASES, ids=[c[0] for c in CASES])
def test_skip_drops_exactly_the_bad_row(tmp_path, toy_tokenizer, name, strategy, line, field, why, extra):
    if strategy != "sft":
        from tuneforge.data.dpo import build_dpo_data as build
    else:
        build = build_sft_data
    cfg = from_dict({"train_data": str(BAD / name), "training_strategy": strategy, "on_bad_rows": "skip", **extra})
    data = build(cfg, toy_tokenizer)
    assert data.report.total == 1, data.report.dropped
    (reason, count), = data.report.dropped.items()
    assert count == 1
    assert data.report.examples[reason] == f"{BAD / name}:{line}"
    kept = data.train.sources if strategy == "sft" else data.train.sources
    assert len(kept) == 5 and f"{BAD / name}:{line}" not in kept


def test_skip_reports_counts_by_reason_on_the_command_line(tmp_path, capsys, write_jsonl):
    good = [{"instruction": f"q{i}", "output": f"a{i}"} for i in range(6)]
    f = write_jsonl(tmp_path / "mixed.jsonl", good)
    lines = f.read_text().splitlines()
    lines[1] = "{broken"
    lines[3] = '{"instruction": "q"}'
    lines[4] = '{"instruction": "q", "output": ""}'
    f.write_text("\n".join(lines) + "\n")
    code = main(["train", f"train_data={f}", f"output_dir={tmp_path / 'o'}", "max_steps=1", "on_bad_rows=skip",
                 "per_device_train_batch_size=2", "--no-progress"])
    out = capsys.readouterr().out
    assert code == 0
    assert "dropped 3 rows" in out
    assert "invalid JSON: 1" in out and "missing required field (output): 1" in out and "empty (output): 1" in out


def test_invalid_first_line_is_skipped_and_format_detected_from_the_next(tmp_path, toy_tokenizer, write_jsonl):
    f = write_jsonl(tmp_path / "d.jsonl", [{"instruction": "q", "output": "a"}] * 3)
    f.write_text('["not", "an", "object"]\n{oops\n' + f.read_text())
    cfg = from_dict({"train_data": str(f), "on_bad_rows": "skip"})
    data = build_sft_data(cfg, toy_tokenizer)
    assert len(data.train.rows) == 3
    assert data.report.dropped == {"unrecognised row format": 1, "invalid JSON": 1}
