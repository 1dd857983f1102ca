"""A sweep of 4 tiny trials on builtin:toy through a real ``tuneforge console`` and ``tuneforge tasks sweep``:
the median rule prunes the trial that learns nothing, the reason's numbers are those of the trials' metrics
files, the console is killed in the middle and resumes the sweep, the decision survives the restart, and the
pruned trial resumed by hand runs to the end."""
from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # about 90 s on 2 CPU cores: four trainings, two console starts


def best_at(run_dir: str, step: int) -> float | None:
    rows = [json.loads(line) for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines() if line.strip()]
    evals = [(r["step"], r["eval_loss"]) for r in rows if "eval_loss" in r]
    if not evals or max(s for s, _ in evals) < step:
        return None
    return min(v for s, v in evals if s <= step)


def wait_sweep(svc, sweep_id: int, done, timeout: float = 240) -> dict:
    deadline = time.time() + timeout
    while time.time() < deadline:
        sweep = svc.get(f"/api/sweeps/{sweep_id}")
        if done(sweep):
            return sweep
        time.sleep(0.3)
    raise AssertionError(f"sweep {sweep_id} did not get there: {json.dumps(sweep)[:3000]}")


def test_a_sweep_prunes_the_loser_and_survives_a_restart(start_service, toy_data, toy_config, tmp_path):
    svc = start_service()
    config = tmp_path / "base.json"
    config.write_text(json.dumps(toy_config(toy_data["good"], max_steps=40, eval_steps=5, logging_steps=5,
                                            validation_split=0.25)))
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    out = subprocess.run(
        [sys.executable, "-m", "tuneforge.cli", "tasks", "sweep", str(config), "learning_rate=1e-2,2e-2,3e-2,1e-6",
         "--early-stop", "median", "--grace-steps", "5", "--name", "lr search", "--server", svc.url],
        capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    sweep_id = int(re.search(r"sweep (\d+) queued", out.stdout).group(1))
    assert "note: this console runs one task at a time" in out.stdout  # why weak trials that come first survive
    ids = [t["id"] for t in svc.get(f"/api/sweeps/{sweep_id}")["trials"]]
    assert len(ids) == 4

    # kill the console while the second trial runs: the running one is re-attached, the queued ones stay queued
    wait_sweep(svc, sweep_id, lambda s: s["trials"][1]["status"] == "running", 120)
    svc.kill()
    svc.start()
    after = svc.get(f"/api/sweeps/{sweep_id}")
    assert [t["status"] for t in after["trials"][2:]] in (["queued", "queued"], ["running", "queued"])

    sweep = wait_sweep(svc, sweep_id, lambda s: s["status"] == "finished")
    trials = {t["id"]: t for t in sweep["trials"]}
    loser = trials[ids[3]]  # learning_rate 1e-6 barely moves from the initial loss
    assert loser["status"] == "stopped", loser
    match = re.fullmatch(r"pruned at step (\d+), eval_loss ([\d.]+) > median ([\d.]+)", loser["error"])
    assert match, loser["error"]
    step, value, median = int(match.group(1)), float(match.group(2)), float(match.group(3))
    tasks = {i: svc.get(f"/api/tasks/{i}") for i in ids}
    assert step >= 5 and value == pytest.approx(best_at(tasks[ids[3]]["run_dir"], step), rel=1e-3)
    others = [best_at(tasks[i]["run_dir"], step) for i in ids[:3]]
    assert median == pytest.approx(statistics.median([v for v in others if v is not None]), rel=1e-3)
    assert tasks[ids[3]]["error"] == loser["error"]  # the task's own view says why it stopped

    scored = {i: t["best_metric"] for i, t in trials.items() if t["best_metric"] is not None}
    assert sweep["winner"]["id"] == min(scored, key=scored.get) and sweep["winner"]["id"] != ids[3]
    assert sweep["pruned"] >= 1 and trials[sweep["winner"]["id"]]["status"] == "succeeded"

    # the decision is the database's: a restart keeps it; a pruned trial resumed by hand is not pruned again
    svc.stop()
    svc.start()
    again = svc.get(f"/api/sweeps/{sweep_id}")
    assert {t["id"]: (t["status"], t["error"]) for t in again["trials"]} == \
        {t["id"]: (t["status"], t["error"]) for t in sweep["trials"]}
    shown = subprocess.run([sys.executable, "-m", "tuneforge.cli", "tasks", "sweep-show", str(sweep_id), "--server",
                            svc.url], capture_output=True, text=True, env=env, timeout=60)
    assert shown.returncode == 0 and "winner" in shown.stdout and loser["error"] in shown.stdout, shown
    svc.post(f"/api/tasks/{ids[3]}/resume")
    resumed = svc.wait(ids[3])
    assert resumed["status"] == "succeeded", resumed
    assert resumed["progress"]["step"] == 40
