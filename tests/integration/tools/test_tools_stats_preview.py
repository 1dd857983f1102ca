"""`tuneforge stats` and `tuneforge preview` on data and a tokenizer made here (own default system prompt,
pad == eos), checked against token counts made independently with the tokenizer itself."""
from __future__ import annotations

import json
import math

import pytest

RUN_SYSTEM = "You answer as a ship's cook."  # as the fixtures' runs (conftest.py)
DEFAULT_SYSTEM = "You are Quill, a terse assistant."

from tuneforge.cli import main


def _json_out(capsys, argv):
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


def _tokenizer(model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(model_dir))


def _count(tok, messages, strip: bool = False) -> int:
    text = tok.apply_chat_template(messages, tokenize=False)
    text = text.rstrip("\n") if strip else text
    return len(tok(text, add_special_tokens=False)["input_ids"])


def _rows(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _independent_recommendation(lengths):
    n = len(lengths)
    return next(m for m in range(64, 10 ** 6, 64) if sum(x <= m for x in lengths) >= math.ceil(0.99 * n))


def test_fixture_prompts_match(prompts):
    assert prompts == {"default": DEFAULT_SYSTEM, "run": RUN_SYSTEM}


def test_stats_counts_like_the_tokenizer(capsys, tools_model_dir, tools_data):
    tok = _tokenizer(tools_model_dir)
    rows = _rows(tools_data["sft"])
    lengths = sorted(_count(tok, [{"role": "system", "content": RUN_SYSTEM}] + r["messages"]) for r in rows)
    result = _json_out(capsys, ["stats", "--data", str(tools_data["sft"]), "--model", str(tools_model_dir),
                                f"system_prompt={RUN_SYSTEM}", "seq_length=40", "--json"])
    train = result["splits"]["train"]
    assert result["training_strategy"] == "sft"
    assert train["rows"] == len(rows) == 21
    assert train["percentiles"]["max"] == lengths[-1]
    assert train["percentiles"]["p50"] == lengths[math.ceil(0.5 * len(lengths)) - 1]
    assert train["truncated"] == sum(n > 40 for n in lengths) > 0
    assert result["recommended_seq_length"] == _independent_recommendation(lengths)
    assert sum(c for _, _, c in train["histogram"]) == len(rows)


def test_stats_without_system_prompt_counts_the_templates_default(capsys, tools_model_dir, tools_data):
    tok = _tokenizer(tools_model_dir)
    rows = _rows(tools_data["sft"])
    default = max(_count(tok, r["messages"]) for r in rows)  # the template inserts DEFAULT_SYSTEM itself
    result = _json_out(capsys, ["stats", "--data", str(tools_data["sft"]), "--model", str(tools_model_dir), "--json"])
    assert result["splits"]["train"]["percentiles"]["max"] == default


def test_stats_dpo_takes_the_longer_answer(capsys, tools_model_dir, tools_data):
    tok = _tokenizer(tools_model_dir)
    expected = []
    for r in _rows(tools_data["dpo"]):
        prompt = [{"role": "user", "content": r["prompt"]}]
        # DPO trains on prompt + response up to its end-of-turn token; the template's newline after it is not
        # part of the pair (issue 14: stats counts what training trains on), so it is not counted.
        expected.append(max(_count(tok, prompt + [{"role": "assistant", "content": r[k]}], strip=True)
                            for k in ("chosen", "rejected")))
    result = _json_out(capsys, ["stats", "--data", str(tools_data["dpo"]), "--model", str(tools_model_dir), "--json"])
    assert result["training_strategy"] == "dpo"  # detected from the prompt/chosen/rejected rows
    assert result["splits"]["train"]["percentiles"]["max"] == max(expected)
    assert result["splits"]["train"]["mean"] == round(sum(expected) / len(expected), 1)


def test_stats_text_report(capsys, tools_model_dir, tools_data):
    assert main(["stats", "--data", str(tools_data["sft"]), "--model", str(tools_model_dir), "seq_length=40"]) == 0
    out = capsys.readouterr().out
    assert "recommended seq_length: 64" in out and "p99" in out and "█" in out
    assert "would be truncated" in out


def test_preview_marks_the_trained_answer_and_its_eos(capsys, tools_model_dir, tools_data):
    data = _json_out(capsys, ["preview", "--data", str(tools_data["sft"]), "--model", str(tools_model_dir),
                              f"system_prompt={RUN_SYSTEM}", "--n", "21", "--json"])
    first = data["rows"][0]
    assert RUN_SYSTEM in first["text"] and DEFAULT_SYSTEM not in first["text"]  # the configured prompt replaces the default
    # pad == eos, yet the end-of-turn EOS is trained: the model learns to stop.
    assert first["trained_text"] == ["Crate 0 holds apples.<|im_end|>"]
    s, e = first["trained_spans"][0]
    assert first["text"][s:e] == first["trained_text"][0]
    assert first["text"][:s].endswith("<|im_start|>assistant\n")
    multi = data["rows"][20]
    assert multi["trained_text"] == ["Yes.<|im_end|>", "Quite sure.<|im_end|>"]
    assert multi["tokens"] > multi["trained_tokens"] > 0


def test_preview_default_system_prompt_and_plain_marks(capsys, tools_model_dir, tools_data):
    assert main(["preview", "--data", str(tools_data["sft"]), "--model", str(tools_model_dir), "--n", "1",
                 "--color", "never"]) == 0
    out = capsys.readouterr().out
    assert DEFAULT_SYSTEM in out
    assert "⟦Crate 0 holds apples.<|im_end|>⟧" in out


def test_preview_shows_truncation(capsys, tools_model_dir, tools_data):
    data = _json_out(capsys, ["preview", "--data", str(tools_data["sft"]), "--model", str(tools_model_dir),
                              "seq_length=45", "--n", "1", "--json"])
    row = data["rows"][0]
    assert row["truncated"] and row["tokens"] == 45
    assert "Crate 0 holds apples.".startswith(row["trained_text"][0]) and row["trained_text"][0]
    assert main(["preview", "--data", str(tools_data["sft"]), "--model", str(tools_model_dir), "seq_length=30",
                 "--n", "1"]) == 0
    assert "NO trained token left" in capsys.readouterr().out


def test_preview_dpo_renders_both_sides(capsys, tools_model_dir, tools_data):
    data = _json_out(capsys, ["preview", "--data", str(tools_data["dpo"]), "--model", str(tools_model_dir),
                              "--n", "2", "--json"])
    row = data["rows"][1]
    assert row["chosen"]["trained_text"] == ["No, it is odd.<|im_end|>"]
    assert row["rejected"]["trained_text"] == ["Maybe. Maybe. <|im_end|>"]


def test_stats_bad_input_is_a_clean_error(capsys, tools_model_dir, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"instruction": "x", "output": "y"}\n{"instruction": "x"}\n', encoding="utf-8")
    assert main(["stats", "--data", str(bad), "--model", str(tools_model_dir)]) == 2
    assert "line 2" in capsys.readouterr().err
