"""`tuneforge eval` on a GRPO run (issue 31): the mean reward of its answers to a prompt file, in total and per
function, with the reward functions named on the command line only."""
from __future__ import annotations

import json

import pytest

from tuneforge.cli import main

REPO_EXAMPLES = __import__("pathlib").Path(__file__).resolve().parents[3] / "examples"


@pytest.fixture(scope="module")
def grpo_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("grpo") / "run"
    assert main(["train", str(REPO_EXAMPLES / "configs" / "grpo_lora.yaml"), f"output_dir={out}", "max_steps=2",
                 "--no-progress"]) == 0
    return out


def test_mean_reward_per_function_on_a_prompt_file(grpo_run, tmp_path, capsys):
    prompts = tmp_path / "prompts.jsonl"
    rows = [{"prompt": "What is 2 + 3?", "answer": "5"}, {"prompt": "What is 4 + 4?", "answer": "8"}]
    prompts.write_text("".join(json.dumps(r) + "\n" for r in rows))
    # an answer-independent reward makes the figure checkable: every answer scores 1.0 under it
    always = tmp_path / "always.py"
    always.write_text("def one(prompts, completions, **columns):\n    return [1.0] * len(completions)\n")
    capsys.readouterr()
    assert main(["eval", str(grpo_run), "--data", str(prompts), "--reward-functions", f"accuracy,{always}:one",
                 "--json", "--output", str(tmp_path / "out")]) == 0
    results = json.loads(capsys.readouterr().out)
    tuned = results["metrics"]["tuned"]
    assert results["counts"]["rows"] == 2 and results["data"]["format"] == "prompts"
    assert tuned["reward/one"] == 1.0 and 0.0 <= tuned["reward/accuracy"] <= 1.0
    assert tuned["reward"] == pytest.approx(tuned["reward/one"] + tuned["reward/accuracy"])  # weights 1 each
    assert (tmp_path / "out" / "eval_results.json").is_file()


def test_reward_functions_come_from_the_command_line_only(grpo_run, tmp_path, capsys):
    prompts = tmp_path / "p.jsonl"
    prompts.write_text(json.dumps({"prompt": "What is 1 + 1?", "answer": "2"}) + "\n")
    assert main(["eval", str(grpo_run), "--data", str(prompts)]) == 2
    assert "--reward-functions" in capsys.readouterr().err
