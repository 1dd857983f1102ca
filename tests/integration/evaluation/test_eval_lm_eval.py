"""``tuneforge eval --lm-eval-tasks`` on a task whose data is a local file (needs ``pip install lm-eval``)."""
from __future__ import annotations

import json

import pytest

from tuneforge.cli import main

TASK = """task: tea_quiz
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: multiple_choice
doc_to_text: "{{{{question}}}}"
doc_to_choice: "{{{{choices}}}}"
doc_to_target: "{{{{answer}}}}"
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
"""
ROWS = [{"question": "菊花茶怎么泡？", "choices": ["用热水冲泡3分钟。", "用冷水冲泡一天。"], "answer": 0},
        {"question": "How long do I steep rose tea?", "choices": ["Steep it for 3 minutes.", "Never."], "answer": 0},
        {"question": "红枣怎么泡？", "choices": ["不能泡。", "用热水冲泡6分钟。"], "answer": 1}]


@pytest.mark.slow
def test_local_lm_eval_task(tmp_path, capsys):
    pytest.importorskip("lm_eval")
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    data = tasks / "tea_quiz.jsonl"
    data.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in ROWS), encoding="utf-8")
    (tasks / "tea_quiz.yaml").write_text(TASK.format(data=data), encoding="utf-8")
    out = tmp_path / "out"
    assert main(["eval", "builtin:toy", "--lm-eval-tasks", "tea_quiz", "--lm-eval-include", str(tasks),
                 "--output", str(out)]) == 0
    assert "lm-eval tea_quiz: acc,none" in capsys.readouterr().out
    results = json.loads((out / "eval_results.json").read_text(encoding="utf-8"))["lm_eval"]
    acc = results["results"]["tea_quiz"]["acc,none"]
    assert acc in (0.0, 1 / 3, 2 / 3, 1.0)  # three two-way questions
    # an unknown task is refused before any model loads
    assert main(["eval", "builtin:toy", "--lm-eval-tasks", "nope_task", "--lm-eval-include", str(tasks),
                 "--output", str(tmp_path / "o2")]) == 2
    assert "unknown task" in capsys.readouterr().err
