"""Pruning decisions on recorded metrics (no service): the median rule, ASHA's rungs, grace steps, too few
trials to judge, and the Pruner following metrics.jsonl files (a resumed run rewriting its file)."""
from __future__ import annotations

import json

from tuneforge.service.pruning import History, Pruner, asha_decision, asha_rungs, median_decision


def hist(*points, metric="eval_loss"):
    return History(metric, [(s, v) for s, v in points])


def test_median_rule_stops_a_trial_worse_than_the_median_at_its_step():
    others = [hist((2, 3.0), (4, 2.0)), hist((2, 3.2), (4, 2.2)), hist((2, 2.8), (4, 2.6))]
    bad = hist((2, 3.1), (4, 2.9))
    assert median_decision(bad, others, "min", 0) == "pruned at step 4, eval_loss 2.9 > median 2.2"
    good = hist((2, 3.1), (4, 2.1))
    assert median_decision(good, others, "min", 0) is None
    equal = hist((2, 3.1), (4, 2.2))  # at the median is not worse than it
    assert median_decision(equal, others, "min", 0) is None


def test_median_uses_the_best_so_far_and_only_trials_that_reached_the_step():
    others = [hist((2, 3.0), (4, 2.0)), hist((2, 3.0), (4, 2.5)), hist((2, 1.0))]  # the third stopped at step 2
    # at step 4 only two others reached it: median of 2.0 and 2.5 = 2.25; this trial's best so far is 2.2 (step 2)
    assert median_decision(hist((2, 2.2), (4, 2.4)), others, "min", 0) is None
    assert median_decision(hist((2, 2.3), (4, 2.4)), others, "min", 0).endswith("2.3 > median 2.25")


def test_median_waits_for_grace_steps_and_for_two_other_trials():
    others = [hist((2, 1.0), (4, 1.0)), hist((2, 1.0), (4, 1.0))]
    bad = hist((2, 5.0))
    assert median_decision(bad, others, "min", 3) is None  # step 2 < grace 3
    assert median_decision(bad, others, "min", 2) is not None
    assert median_decision(bad, others[:1], "min", 0) is None  # one other trial is not a median to judge by
    assert median_decision(bad, others[:1], "min", 0, min_others=1) == "pruned at step 2, eval_loss 5 > median 1"
    assert median_decision(hist((0, 9.0)), others, "min", 0) is None  # step 0: nothing trained yet


def test_median_rule_in_max_mode():
    others = [hist((5, 0.5), metric="eval_token_accuracy"), hist((5, 0.7), metric="eval_token_accuracy")]
    low = hist((5, 0.4), metric="eval_token_accuracy")
    assert median_decision(low, others, "max", 0) == "pruned at step 5, eval_token_accuracy 0.4 < median 0.6"
    assert median_decision(hist((5, 0.65), metric="eval_token_accuracy"), others, "max", 0) is None


def test_asha_keeps_the_top_third_at_each_rung():
    assert asha_rungs(2, 20) == [2, 6, 18]
    others = [hist((2, 1.0), (6, 0.8)), hist((2, 1.1), (6, 0.9)), hist((2, 1.2), (6, 1.0)),
              hist((2, 1.3), (6, 1.1)), hist((2, 1.4), (6, 1.2))]
    # at rung 1 (step 6) six trials: the best 6 // 3 = 2 continue (cutoff 0.85 with this trial among them)
    assert asha_decision(hist((2, 1.05), (6, 0.85)), others, "min", 2) is None
    assert asha_decision(hist((2, 1.05), (6, 0.95)), others, "min", 2) == \
        "pruned at step 6, eval_loss 0.95 > ASHA rung 1 (step 6) cutoff 0.9"
    # a trial between rungs is judged at the last rung it passed
    assert asha_decision(hist((2, 1.35), (4, 1.3)), others, "min", 2) == \
        "pruned at step 4, eval_loss 1.35 > ASHA rung 0 (step 2) cutoff 1.1"
    assert asha_decision(hist((1, 1.35)), others, "min", 2) is None  # before the first rung


def write_metrics(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


class FakeStore:
    def __init__(self, tasks, sweep):
        self.tasks, self.sweep = {t["id"]: t for t in tasks}, sweep

    def list_tasks(self, status=None):
        return [t for t in self.tasks.values() if status in (None, t["status"])]

    def get_sweep(self, sweep_id):
        return self.sweep

    def sweep_tasks(self, sweep_id):
        return list(self.tasks.values())

    def get_task(self, task_id):
        return self.tasks[task_id]

    def update_task(self, task_id, where_status=None, **values):
        if where_status and self.tasks[task_id]["status"] not in where_status:
            return False
        self.tasks[task_id].update(values)
        return True


def test_pruner_follows_the_files_and_stops_the_loser_once(tmp_path):
    tasks = []
    for i, losses in enumerate(([3.0, 2.0], [3.0, 2.1], [3.0, 2.9]), 1):
        run = tmp_path / f"task-{i}"
        run.mkdir()
        write_metrics(run / "metrics.jsonl", [{"step": 0, "eval_loss": 3.5}, {"step": 5, "loss": 9.0}] +
                      [{"step": 5 * k, "eval_loss": v} for k, v in enumerate(losses, 1)])
        tasks.append({"id": i, "run_dir": str(run), "status": "succeeded" if i < 3 else "running", "sweep_id": 1})
    store = FakeStore(tasks, {"id": 1, "early_stop": "median", "metric": "eval_loss", "mode": "min", "grace_steps": 5})
    stopped = []
    pruner = Pruner(store, request_stop=lambda task: stopped.append(task["id"]), notify=lambda: None)
    store.tasks[3]["progress"] = {"step": 10, "total_steps": 10}
    pruner.check()
    assert stopped == []  # its evaluation at step 10 is its last: it has finished, nothing to save by stopping it
    store.tasks[3]["progress"] = {"step": 10, "total_steps": 40}
    pruner.check()
    assert stopped == [3] and store.tasks[3]["stop_reason"] == "pruned at step 10, eval_loss 2.9 > median 2.05"
    pruner.check()
    assert stopped == [3]  # decided once; a stop is under way
    # resumed by hand: it runs on with its recorded reason and is not judged again
    store.tasks[3].update(stop_requested=0)
    pruner.check()
    assert stopped == [3]


def test_pruner_forgets_rows_a_resume_dropped(tmp_path):
    run = tmp_path / "task-1"
    run.mkdir()
    write_metrics(run / "metrics.jsonl", [{"step": 2, "eval_loss": 1.0}, {"step": 4, "eval_loss": 0.9}])
    task = {"id": 1, "run_dir": str(run)}
    pruner = Pruner(None, request_stop=lambda task: None, notify=lambda: None)
    assert pruner.history(task, "eval_loss").points == [(2, 1.0), (4, 0.9)]
    write_metrics(run / "metrics.jsonl", [{"step": 2, "eval_loss": 1.0}])  # shorter: rewritten from a checkpoint
    assert pruner.history(task, "eval_loss").points == [(2, 1.0)]
