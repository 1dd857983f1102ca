"""The run directory's one reader of metrics records and its one best-metric rule."""
import json

from tuneforge.config.eval import BEST_METRICS, PREFERENCE_BEST_METRICS
from tuneforge.evaluation.results import metric_unit
from tuneforge.rundir import best_of, improves, lower_is_better, read_evaluations, read_jsonl, read_metrics
from tuneforge.service.runfiles import TaskSummary


def test_read_metrics_keeps_complete_records_and_skips_a_torn_line(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text(json.dumps({"step": 1, "loss": 2.0}) + "\nnot json\n" + json.dumps({"step": 2, "eval_loss": 1.5})
                    + "\n" + '{"step": 3, "lo', encoding="utf-8")
    assert read_metrics(path) == [{"step": 1, "loss": 2.0}, {"step": 2, "eval_loss": 1.5}]
    assert read_evaluations(path) == [{"step": 2, "eval_loss": 1.5}]
    assert read_jsonl(path)[1] == {"unreadable_line": "not json"}  # the service shows where a line was unreadable
    assert read_metrics(tmp_path / "none.jsonl") == [] and read_evaluations(tmp_path / "none.jsonl") == []


def test_one_direction_per_metric_for_training_the_task_list_and_evaluation():
    allowed = set().union(*BEST_METRICS.values(), PREFERENCE_BEST_METRICS)  # metric_for_best_model's choices
    assert {m for m in allowed if lower_is_better(m)} == {"eval_loss"}  # every other choice is a score
    assert lower_is_better("perplexity") and lower_is_better("dpo_loss") and not lower_is_better("bleu")
    assert metric_unit("eval_loss")[1] is False and metric_unit("rewards/accuracies")[1] is True
    assert improves(0.5, None, "eval_loss") and improves(0.4, 0.5, "eval_loss") and not improves(0.5, 0.5, "eval_loss")
    assert improves(0.9, 0.8, "eval_token_accuracy") and best_of(0.8, 0.7, "eval_token_accuracy") == 0.8
    summary = TaskSummary(metric_name="eval_loss")
    for value in (2.0, 1.0, 1.5):
        summary.add_metric({"step": 1, "eval_loss": value})
    assert summary.best_metric == 1.0
