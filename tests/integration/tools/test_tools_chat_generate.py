"""`tuneforge chat` and `tuneforge generate` from a LoRA run, a full run, a merged directory and
base + --adapter, with the run's template and system prompt."""
from __future__ import annotations

import io
import json

import pytest

from tuneforge.cli import main
from tuneforge.models import inference

RUN_SYSTEM = "You answer as a ship's cook."


@pytest.fixture
def seen_prompts(monkeypatch):
    """Every conversation rendered for generation, as (role, content) lists."""
    seen: list[list[tuple[str, str]]] = []
    real = inference.prompt_ids

    def spy(tokenizer, source, messages, system_prompt=None):
        ids = real(tokenizer, source, messages, system_prompt)
        seen.append(tokenizer.decode(ids))
        return ids

    monkeypatch.setattr(inference, "prompt_ids", spy)
    return seen


def _chat(monkeypatch, argv, lines):
    monkeypatch.setattr("sys.stdin", io.StringIO(lines))
    return main(["chat", *argv, "--max-new-tokens", "4", "--temperature", "0"])


def test_chat_keeps_history_and_uses_the_runs_system_prompt(monkeypatch, capsys, lora_run, seen_prompts):
    rc = _chat(monkeypatch, [str(lora_run)], "first question\nsecond question\n/history\n/exit\nnever asked\n")
    assert rc == 0
    out = capsys.readouterr().out
    assert len(seen_prompts) == 2  # two turns; nothing after /exit
    first, second = seen_prompts
    assert f"<|im_start|>system\n{RUN_SYSTEM}<|im_end|>" in first and "Quill" not in first
    assert second.startswith(first)  # the second prompt carries the whole first exchange
    assert "first question" in second and second.count("<|im_start|>assistant") == 2
    assert f"system: {RUN_SYSTEM}" in out and "user: first question" in out and "user: second question" in out
    assert out.count("assistant:") >= 4  # two streamed answers + two in /history
    assert "never asked" not in out


def test_chat_reset_and_base_plus_adapter(monkeypatch, capsys, tools_model_dir, lora_run, seen_prompts):
    rc = _chat(monkeypatch, [str(tools_model_dir), "--adapter", str(lora_run), "--system", "Be brief."],
               "one\n/reset\ntwo\n")
    assert rc == 0
    assert "(history cleared)" in capsys.readouterr().out
    assert "one" not in seen_prompts[1] and "Be brief." in seen_prompts[1]


def test_chat_with_a_bare_base_model_uses_the_templates_default(monkeypatch, capsys, tools_model_dir, seen_prompts):
    assert _chat(monkeypatch, [str(tools_model_dir)], "hi\n") == 0
    assert "You are Quill, a terse assistant." in seen_prompts[0]


def test_generate_file_from_lora_run(tmp_path, capsys, lora_run, tools_data, seen_prompts):
    out = tmp_path / "answers.jsonl"
    assert main(["generate", str(lora_run), "--input", str(tools_data["prompts"]), "--output", str(out),
                 "--max-new-tokens", "5", "--temperature", "0", "--batch-size", "2"]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [sorted(r) for r in rows] == [["prompt", "response"], ["input", "instruction", "response"],
                                         ["messages", "response"]]
    assert all(isinstance(r["response"], str) for r in rows)
    assert "Count crates\n1, 2" in seen_prompts[1] and all(RUN_SYSTEM in p for p in seen_prompts)


def test_generate_is_the_same_from_run_and_merged_dir(tmp_path, capsys, lora_run):
    assert main(["merge", str(lora_run), "--output", str(tmp_path / "m")]) == 0
    capsys.readouterr()
    answers = []
    for model in (str(lora_run), str(tmp_path / "m")):
        assert main(["generate", model, "--prompt", "How many apples in crate 3?", "--max-new-tokens", "6",
                     "--temperature", "0"]) == 0
        answers.append(capsys.readouterr().out)
    assert answers[0] == answers[1]


def test_generate_from_full_run_and_errors(capsys, full_run, tmp_path):
    assert main(["generate", str(full_run), "--prompt", "Hello", "--max-new-tokens", "3", "--temperature", "0.8",
                 "--seed", "1"]) == 0
    capsys.readouterr()
    assert main(["generate", str(full_run)]) == 2
    assert "exactly one of --prompt" in capsys.readouterr().err
    assert main(["generate", str(tmp_path), "--prompt", "x"]) == 2  # an empty directory is no model
    assert "neither a model directory" in capsys.readouterr().err
