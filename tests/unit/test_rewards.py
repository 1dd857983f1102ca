"""GRPO reward functions, their checks, the GRPO config keys and prompt data (rewards.py, config/grpo.py, data/prompts.py)."""
from __future__ import annotations

import json
from fractions import Fraction

import pytest

from tuneforge import rewards as R
from tuneforge.config import from_dict
from tuneforge.data.prompts import build_prompt_data
from tuneforge.errors import ConfigError, DataError


def _one(entry, completions, **columns):
    (reward,) = R.build_rewards([entry], None)
    return R.score(reward, ["p"] * len(completions), completions, columns, ["f:1"] * len(completions))


def test_accuracy_understands_numbers_fractions_and_boxed():
    got = _one("accuracy", ["The answer is 24.", "\\boxed{\\frac{1}{2}}", "it is 7", "no idea"],
               answer=["24", "0.5", "8", "3"])
    assert got == [1.0, 1.0, 0.0, 0.0]


def test_fallback_normaliser():
    assert R.normalised_answer("so x = 1,000") == Fraction(1000)
    assert R.normalised_answer("\\boxed{\\frac{3}{4}} and 9") == Fraction(3, 4)
    assert R.normalised_answer("0.50") == Fraction(1, 2)
    assert R.normalised_answer("\\boxed{x+1}") == "x+1"
    assert R.normalised_answer("none") is None
    assert R._fallback_equal("answer: 6/4", "1.5") and not R._fallback_equal("7", "8")


def test_format_exact_match_and_length():
    assert _one("format", ["<think>a</think> <answer>1</answer>", "1"]) == [1.0, 0.0]
    assert _one("format:^\\d+$", ["12", "1a"]) == [1.0, 0.0]
    assert _one("exact_match:label", [" yes ", "no"], label=["yes", "yes"]) == [1.0, 0.0]
    assert _one("length:4", ["abc", "abcdef"]) == [0.0, -0.5]
    assert _one("exact_match", ["1"], answer=[None]) != [0.0]  # None gold: unscorable (NaN), not wrong


@pytest.mark.parametrize("body,needle", [
    ("raise ValueError('boom')", "raised ValueError: boom"),
    ("return [1.0]", "returned 1 values for 2 completions"),
    ("return [1.0, float('nan')]", "returned nan for completion 1 of row f:2"),
    ("return [1.0, 'x']", "returned 'x' for completion 1 of row f:2"),
    ("return 3", "returned int"),
])
def test_bad_user_reward_stops_with_one_line(tmp_path, body, needle):
    path = tmp_path / "my_rewards.py"
    path.write_text(f"def bad(prompts, completions, **columns):\n    {body}\n", encoding="utf-8")
    (reward,) = R.build_rewards([f"{path}:bad"], None)
    with pytest.raises(R.RewardError) as err:
        R.score(reward, ["p", "p"], ["a", "b"], {}, ["f:1", "f:2"])
    message = str(err.value)
    assert needle in message and f"{path}:bad" in message and "\n" not in message


def test_user_function_gets_columns_and_none(tmp_path):
    path = tmp_path / "r.py"
    path.write_text("def f(prompts, completions, answer, **kw):\n"
                    "    return [None if a is None else float(c == a) for c, a in zip(completions, answer)]\n")
    (reward,) = R.build_rewards([f"{path}:f"], [2.0])
    assert reward.weight == 2.0
    got = R.score(reward, ["p"] * 3, ["1", "2", "3"], {"answer": ["1", "1", None]}, ["f:1"] * 3)
    assert got[:2] == [1.0, 0.0] and got[2] != got[2]  # NaN for None


def test_reward_entries_are_checked(tmp_path):
    with pytest.raises(ConfigError, match="unknown reward"):
        R.build_rewards(["acuracy"], None)
    with pytest.raises(ConfigError, match="no such file"):
        R.build_rewards([str(tmp_path / "nope.py") + ":f"], None)
    (tmp_path / "r.py").write_text("x = 1\n")
    with pytest.raises(ConfigError, match="defines no function 'f'"):
        R.build_rewards([str(tmp_path / "r.py") + ":f"], None)


def _grpo(data, **kw):
    return from_dict({"training_strategy": "grpo", "train_data": data, "seq_length": 256,
                      "max_completion_length": 32, **kw})


def test_grpo_config_keys(data):
    cfg = _grpo(data, reward_functions=["accuracy", "length:10"], reward_weights="1, 0.5")
    assert cfg.reward_weights == [1.0, 0.5] and cfg.metric_for_best_model == "eval_reward"
    assert cfg.grpo_loss_type == "dapo" and cfg.num_generations == 8 and cfg.grpo_beta == 0.0
    assert cfg.resolved_grpo_epsilon_high == 0.2
    with pytest.raises(ConfigError, match="needs reward_functions"):
        _grpo(data)
    with pytest.raises(ConfigError, match="no such file 'missing.py'"):
        _grpo(data, reward_functions=["missing.py:f"])
    with pytest.raises(ConfigError, match="reward_weights has 1 values for 2"):
        _grpo(data, reward_functions=["accuracy", "format"], reward_weights=[1.0])
    with pytest.raises(ConfigError, match="reward_weights"):
        _grpo(data, reward_functions=["accuracy"], reward_weights=["x"])
    with pytest.raises(ConfigError, match="use_vllm=true"):
        _grpo(data, reward_functions=["accuracy"], use_vllm=True)
    with pytest.raises(ConfigError, match="max_completion_length=32 must be below seq_length"):
        _grpo(data, reward_functions=["accuracy"], seq_length=32)
    with pytest.raises(ConfigError, match="grpo_loss_type"):
        _grpo(data, reward_functions=["accuracy"], grpo_loss_type="ppo")
    with pytest.raises(ConfigError, match="num_generations"):
        _grpo(data, reward_functions=["accuracy"], num_generations=1)
    with pytest.raises(ConfigError, match="eval_reward"):
        _grpo(data, reward_functions=["accuracy"], metric_for_best_model="eval_token_accuracy")


def test_prompt_data_formats_and_columns(tmp_path, toy_tokenizer):
    rows = [{"prompt": "What is 1 + 1?", "answer": "2"},
            {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"},
                          {"role": "user", "content": "2 + 2?"}], "answer": "4"},
            {"instruction": "Add", "input": "3 and 3", "answer": "6", "tests": ["t"]}]
    path = tmp_path / "p.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    data = build_prompt_data(_grpo(str(path), reward_functions=["accuracy"]), toy_tokenizer)
    got = data.train.rows
    assert [r.text for r in got] == ["What is 1 + 1?", "2 + 2?", "Add\n3 and 3"]
    assert [r.columns for r in got] == [{"answer": "2"}, {"answer": "4"}, {"answer": "6", "tests": ["t"]}]
    assert got[1].where == f"{path}:2" and all(r.ids for r in got)


def test_prompt_data_without_a_prompt_field(tmp_path, toy_tokenizer):
    path = tmp_path / "p.jsonl"
    path.write_text('{"prompt": "ok"}\n{"question": "2+2", "answer": "4"}\n')
    with pytest.raises(DataError, match=r"p.jsonl, line 2: no prompt: a GRPO row needs one of the fields"):
        build_prompt_data(_grpo(str(path), reward_functions=["accuracy"]), toy_tokenizer)


def test_prompt_data_mixing_weights(tmp_path, toy_tokenizer):
    a = tmp_path / "a.jsonl"
    b = tmp_path / "b.jsonl"
    a.write_text("".join(json.dumps({"prompt": f"a{i}"}) + "\n" for i in range(4)))
    b.write_text("".join(json.dumps({"prompt": f"b{i}"}) + "\n" for i in range(4)))
    cfg = _grpo([{"path": str(a), "weight": 2}, {"path": str(b), "weight": 0.5}], reward_functions=["length"])
    texts = [r.text for r in build_prompt_data(cfg, toy_tokenizer).train.rows]
    assert sorted(t for t in texts if t.startswith("a")) == sorted([f"a{i}" for i in range(4)] * 2)
    assert len([t for t in texts if t.startswith("b")]) == 2
