"""Reading run directories: growing JSONL files, byte-offset logs, the task summary."""
from __future__ import annotations

import json

from tuneforge.rundir import JsonlTail, read_jsonl, read_log
from tuneforge.service.runfiles import TaskSummary


def test_jsonl_tail_returns_whole_rows_only_and_notices_a_rewrite(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text('{"step": 1}\n{"step": 2}\n{"step": 3')  # the last row is still being written
    tail = JsonlTail(path)
    assert [r["step"] for r in tail.poll()] == [1, 2] and tail.rows == 2
    with open(path, "a") as fh:
        fh.write("}\n")
    assert [r["step"] for r in tail.poll()] == [3] and not tail.reset
    path.write_text('{"step": 1}\n')  # a resume trimmed the rows after its checkpoint
    assert [r["step"] for r in tail.poll()] == [1] and tail.reset and tail.rows == 1
    other = JsonlTail(path)
    other.skip_to(1)
    assert other.poll() == [] and other.rows == 1
    assert read_jsonl(path, after=0) == [{"step": 1}] and read_jsonl(tmp_path / "none.jsonl") == []


def test_log_chunks_never_split_a_character(tmp_path):
    path = tmp_path / "train.log"
    path.write_bytes("ab本草堂\n".encode())
    first = read_log(path, 0, 4)  # 'a', 'b' and 2 of the 3 bytes of '本'
    assert first["text"] == "ab" and first["next_offset"] == 2
    rest = read_log(path, first["next_offset"], 100)
    assert rest["text"] == "本草堂\n" and rest["next_offset"] == rest["size"]
    assert read_log(tmp_path / "missing.log")["text"] == ""


def test_summary_folds_progress_best_metric_and_peaks():
    summary = TaskSummary(metric_name="eval_loss")
    for row in ({"event": "start", "step": 0, "total_steps": 10}, {"step": 5, "epoch": 0.5, "loss": 2.0},
                {"step": 5, "eval_loss": 1.5}, {"step": 10, "eval_loss": 1.7}):
        summary.add_metric(row)
    summary.add_resource({"time": 1, "host_rss_gib": 0.5, "gpu0_used_gib": 3.0, "gpu0_task_gib": 2.0})
    summary.add_resource({"time": 2, "host_rss_gib": 0.4, "gpu0_used_gib": 4.0, "gpu0_task_gib": 2.5})
    cols = summary.columns()
    assert cols["progress"] == {"step": 10, "total_steps": 10, "epoch": 0.5, "fraction": 1.0, "step_seconds": None,
                                "eta_s": None}
    assert cols["best_metric"] == 1.5 and cols["peak_host_gib"] == 0.5 and cols["peak_gpu_gib"] == 2.5
    accuracy = TaskSummary(metric_name="eval_rewards/accuracies")
    for value in (0.5, 0.75, 0.6):
        accuracy.add_metric({"eval_rewards/accuracies": value})
    assert accuracy.best_metric == 0.75  # higher is better for accuracies
    json.dumps(cols)



def test_live_progress_file_gives_the_step_and_an_eta_from_the_measured_step_time():
    summary = TaskSummary()
    summary.add_metric({"event": "start", "step": 0, "total_steps": 100})
    summary.add_metric({"step": 10, "loss": 1.0, "epoch": 0.1})  # the last logging step
    summary.add_live({"step": 14, "total_steps": 100, "epoch": 0.14, "step_seconds": 0.5})
    progress = summary.progress()
    assert progress["step"] == 14 and progress["fraction"] == 0.14 and progress["eta_s"] == 43.0
    summary.add_live({"step": 12, "total_steps": 100, "step_seconds": 0.5})  # an older file never moves it back
    assert summary.progress()["step"] == 14
    summary.checkpoint_step = 10
    assert summary.progress()["checkpoint_step"] == 10
