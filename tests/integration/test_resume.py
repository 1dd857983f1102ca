"""Exact resume: a run stopped at any point and rerun with resume_from_checkpoint=auto logs the same per-step
losses and ends with the same weights as a run never stopped (CPU, same seed)."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

import tuneforge
from tuneforge.cli import main
from tuneforge.training import checkpoint as ck


def _losses(out):
    recs = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    return [(r["step"], r["loss"], r["learning_rate"]) for r in recs if "loss" in r]


def _weights(out):
    return load_file(str(out / "adapter_model.safetensors"))


def _assert_same_run(a, b):
    assert _losses(a) == _losses(b)
    wa, wb = _weights(a), _weights(b)
    assert wa.keys() == wb.keys()
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], atol=1e-6, rtol=0, msg=k)


@pytest.fixture
def keys(tmp_path, write_jsonl):
    rows = [{"instruction": f"Question {i}: what is {i} plus {i}?", "output": f"It is {2 * i}."} for i in range(10)]
    data = write_jsonl(tmp_path / "d.jsonl", rows)
    # 10 rows / 2 per step = 5 steps per epoch; 6 steps cross an epoch end. Logging every 2 steps and
    # saving every 3 means a checkpoint falls inside a logging window (the window must be saved too).
    return {"train_data": str(data), "per_device_train_batch_size": 2, "seq_length": 64, "lora_dim": 4,
            "max_steps": 6, "logging_steps": 2, "save_steps": 3, "lora_dropout": 0.1, "learning_rate": 1e-2}


class _Crash(Exception):
    pass


def test_crash_after_a_checkpoint_then_resume_matches_an_uninterrupted_run(tmp_path, keys, monkeypatch):
    tuneforge.train({**keys, "output_dir": str(tmp_path / "ref")}, progress=False)

    original_call = ck.Checkpointer.__call__

    def call(self, loop):
        original_call(self, loop)
        if loop.state.global_step == 4:  # two steps past checkpoint-3, mid logging window
            raise _Crash()

    monkeypatch.setattr(ck.Checkpointer, "__call__", call)
    with pytest.raises(_Crash):
        tuneforge.train({**keys, "output_dir": str(tmp_path / "b")}, progress=False)
    monkeypatch.setattr(ck.Checkpointer, "__call__", original_call)
    assert [s for s, _ in ck.list_checkpoints(tmp_path / "b")] == [3]
    summary = tuneforge.train({**keys, "output_dir": str(tmp_path / "b"), "resume_from_checkpoint": "auto"},
                              progress=False)
    assert summary.steps == 6
    _assert_same_run(tmp_path / "ref", tmp_path / "b")
    events = [json.loads(x).get("event") for x in (tmp_path / "b" / "metrics.jsonl").read_text().splitlines()]
    assert events[0] == "start" and events.count("resume") == 1 and events[-1] == "end"


def test_corrupt_newest_checkpoint_falls_back_to_the_previous_one(tmp_path, keys, capsys):
    out = tmp_path / "b"
    tuneforge.train({**keys, "output_dir": str(out), "save_total_limit": 3}, progress=False)
    (out / "tuneforge_config.yaml").unlink()  # pretend it died before finishing
    assert [s for s, _ in ck.list_checkpoints(out)] == [3, 5, 6]
    w = out / "checkpoint-6" / ck.WEIGHTS
    w.write_bytes(w.read_bytes()[:-10])
    code = main(["train", *[f"{k}={v}" for k, v in keys.items()], f"output_dir={out}",
                 "resume_from_checkpoint=auto", "--no-progress"])
    text = capsys.readouterr().out
    assert code == 0
    assert "skipping checkpoint-6" in text and "truncated" in text
    assert "resumed from" in text and "checkpoint-5" in text


def test_resume_with_changed_config_is_refused_unless_overridden(tmp_path, keys, capsys):
    out = tmp_path / "b"
    tuneforge.train({**keys, "output_dir": str(out), "max_steps": 3}, progress=False)
    (out / "tuneforge_config.yaml").unlink()
    args = ["train", *[f"{k}={v}" for k, v in keys.items()], f"output_dir={out}", "max_steps=4",
            "resume_from_checkpoint=auto", "--no-progress"]
    code = main(args + ["seq_length=48"])
    err = capsys.readouterr().err
    assert code == 2 and "seq_length: 64 -> 48" in err and "resume_ignore_config_changes" in err
    assert main(args + ["seq_length=48", "resume_ignore_config_changes=true"]) == 0


def test_auto_on_a_finished_run_is_refused(tmp_path, keys, capsys):
    out = tmp_path / "b"
    tuneforge.train({**keys, "output_dir": str(out), "max_steps": 1}, progress=False)
    code = main(["train", *[f"{k}={v}" for k, v in keys.items()], f"output_dir={out}", "max_steps=1",
                 "resume_from_checkpoint=auto", "--no-progress"])
    assert code == 2 and "finished run" in capsys.readouterr().err


def test_sigkill_mid_run_then_rerun_resumes_exactly(tmp_path, keys):
    """The real thing: `kill -9` a training process after its first checkpoint, rerun the same command."""
    keys = {**keys, "max_steps": 16, "save_steps": 4}
    tuneforge.train({**keys, "output_dir": str(tmp_path / "ref")}, progress=False)
    out = tmp_path / "b"
    cmd = [sys.executable, "-m", "tuneforge.cli", "train", *[f"{k}={v}" for k, v in keys.items()],
           f"output_dir={out}", "resume_from_checkpoint=auto", "--no-progress"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while not (out / "checkpoint-4" / ck.MANIFEST).exists():
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.time() < deadline
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (out / "tuneforge_config.yaml").exists(), "killed before it finished"
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "resumed from" in done.stdout
    _assert_same_run(tmp_path / "ref", out)
