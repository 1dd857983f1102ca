import json

import pytest

from tuneforge.data.formats import RowReport, detect_format, load_examples
from tuneforge.errors import DataError


def _write(tmp_path, name, rows):
    p = tmp_path / name
    if name.endswith(".json"):
        p.write_text(json.dumps(rows, ensure_ascii=False))
    else:
        p.write_text("\n".join(json.dumps(r, ensure_ascii=False) for r in rows) + "\n")
    return p


def roles(conv):
    return [(m.role, m.content) for m in conv.messages]


def test_instruction_format_with_input_and_system(tmp_path):
    p = _write(tmp_path, "a.jsonl", [{"instruction": "翻译", "input": "hello", "output": "你好", "system": "S"}])
    (conv,) = load_examples(p, "sft")
    assert roles(conv) == [("system", "S"), ("user", "翻译\nhello"), ("assistant", "你好")]
    assert conv.source.endswith("a.jsonl:1")


def test_messages_sharegpt_prompt_completion_and_json_array(tmp_path):
    msgs = _write(tmp_path, "m.json", [{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}])
    share = _write(tmp_path, "s.jsonl", [{"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]}])
    pc = _write(tmp_path, "p.jsonl", [{"prompt": "q", "completion": "a"}])
    for path in (msgs, share, pc):
        (conv,) = load_examples(path, "sft")
        assert roles(conv) == [("user", "q"), ("assistant", "a")]


def test_csv(tmp_path):
    p = tmp_path / "d.csv"
    p.write_text("instruction,output\nq1,a1\nq2,a2\n")
    convs = load_examples(p, "sft")
    assert [roles(c)[-1][1] for c in convs] == ["a1", "a2"]
    assert convs[1].source.endswith(":3")


def test_preference_rows(tmp_path):
    p = _write(tmp_path, "d.jsonl", [
        {"prompt": "q", "chosen": "good", "rejected": "bad"},
        {"prompt": [{"role": "system", "content": "S"}, {"role": "user", "content": "q"}],
         "chosen": [{"role": "assistant", "content": "good"}], "rejected": {"role": "assistant", "content": "bad"}},
    ])
    a, b = load_examples(p, "dpo")
    assert (a.chosen, a.rejected, [m.role for m in a.prompt]) == ("good", "bad", ["user"])
    assert (b.chosen, b.rejected, [m.role for m in b.prompt]) == ("good", "bad", ["system", "user"])


@pytest.mark.parametrize("row, line_field", [
    ({"instruction": "q", "output": ""}, "field 'output': empty"),
    ({"instruction": "q", "output": ["x"]}, "field 'output': expected a string"),
    ({"instruction": "q"}, "field 'output': missing required field"),
    ({"messages": [{"role": "user", "content": "q"}]}, "no assistant turn"),
    ({"messages": [{"role": "robot", "content": "q"}, {"role": "assistant", "content": "a"}]}, "unknown role 'robot'"),
])
def test_bad_rows_name_file_line_and_field(tmp_path, row, line_field):
    good = {"instruction": "q", "output": "a"} if "instruction" in row else \
        {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}
    p = _write(tmp_path, "bad.jsonl", [good, good, row])
    with pytest.raises(DataError) as err:
        load_examples(p, "sft")
    assert "bad.jsonl, line 3" in str(err.value) and line_field in str(err.value)


def test_invalid_json_line(tmp_path):
    p = tmp_path / "x.jsonl"
    p.write_text('{"prompt": "q", "completion": "a"}\n{"prompt": "q", \n')
    with pytest.raises(DataError, match="x.jsonl, line 2: invalid JSON"):
        load_examples(p, "sft")


def test_skip_mode_counts_reasons(tmp_path):
    p = _write(tmp_path, "d.jsonl", [{"instruction": "q", "output": "a"}, {"instruction": "q", "output": ""},
                                     {"instruction": "q"}, {"instruction": "q", "output": "b"}])
    report = RowReport()
    convs = load_examples(p, "sft", report)
    assert len(convs) == 2 and report.total == 2


def test_strategy_and_format_mismatch(tmp_path):
    p = _write(tmp_path, "d.jsonl", [{"prompt": "q", "chosen": "a", "rejected": "b"}])
    with pytest.raises(DataError, match="training_strategy: dpo"):
        load_examples(p, "sft")
    q = _write(tmp_path, "e.jsonl", [{"instruction": "q", "output": "a"}])
    with pytest.raises(DataError, match="rejected"):
        load_examples(q, "dpo")


def test_detect_format():
    assert detect_format({"instruction": 1, "output": 2}) == "instruction"
    assert detect_format({"foo": 1}) is None


def test_utf8_byte_order_mark_and_non_utf8_file(tmp_path):
    p = tmp_path / "bom.jsonl"
    p.write_bytes("\ufeff".encode() + json.dumps({"instruction": "问", "output": "答"}, ensure_ascii=False).encode() + b"\n")
    (conv,) = load_examples(p, "sft")
    assert conv.messages[-1].content == "答"
    bad = tmp_path / "latin1.jsonl"
    bad.write_bytes('{"instruction": "caf\xe9", "output": "a"}\n'.encode("latin-1"))
    with pytest.raises(DataError, match="latin1.jsonl"):
        load_examples(bad, "sft")
