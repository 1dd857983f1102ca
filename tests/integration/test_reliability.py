"""Never delete or corrupt what the user has (issue 11): an interrupted run is resumed, not wiped; a foreign
directory is refused untouched; a second run is locked out; a full disk is one message; signals in any phase
give one line and a documented exit code; what a resumed run records is what ran."""
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch
import yaml
from safetensors.torch import load_file

from tuneforge.cli import main
from tuneforge.training import checkpoint as ck
from tuneforge import rundir
from tuneforge.training import faults

ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def data_file(tmp_path_factory):
    d = tmp_path_factory.mktemp("data") / "d.jsonl"
    rows = [{"instruction": f"Question {i}: what is {i} plus {i}?", "output": f"It is {2 * i}."} for i in range(10)]
    d.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return d


@pytest.fixture
def keys(data_file):
    return {"train_data": str(data_file), "per_device_train_batch_size": 2, "seq_length": 64, "lora_dim": 4,
            "max_steps": 6, "logging_steps": 1, "save_steps": 2, "learning_rate": 1e-2, "lora_dropout": 0.0}


def _args(keys, out, *extra):
    return ["train", *[f"{k}={v}" for k, v in keys.items()], f"output_dir={out}", "--no-progress", *extra]


def _at_step(monkeypatch, target: int, action):
    """Run ``action`` at the end of optimizer step ``target`` (the checkpoint hook's fault point)."""
    original = faults.point

    def point(name, step=None):
        original(name, step)
        if name == "after_best_snapshot" and step == target:
            action()

    monkeypatch.setattr(faults, "point", point)


def _records(out):
    return [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]


def test_ctrl_c_saves_a_checkpoint_and_the_same_command_resumes_exactly(tmp_path, keys, monkeypatch, capsys):
    keys = {**keys, "validation_split": 0.2, "eval_steps": 100}  # evaluated at the start, epoch end and end
    ref = tmp_path / "ref"
    assert main(_args(keys, ref)) == 0
    out = tmp_path / "run"
    _at_step(monkeypatch, 3, lambda: os.kill(os.getpid(), signal.SIGINT))
    assert main(_args(keys, out)) == 130
    err = capsys.readouterr().err
    assert "interrupted at step 3; the last checkpoint is checkpoint-3. Run the same command again" in err
    assert ck.verify(out / "checkpoint-3") is None and (out / "checkpoint-2").is_dir()
    monkeypatch.undo()
    assert main(_args(keys, out)) == 0  # the same command: resumed, nothing wiped
    text = capsys.readouterr().out
    assert "holds an unfinished run: resuming it from checkpoint-3" in text
    assert "steps 4-6, resumed" in text and "eval_loss:" in text and "at start" in text
    train = lambda o: [(r["step"], r["loss"]) for r in _records(o) if "loss" in r]  # noqa: E731
    assert train(out) == train(ref)
    a, b = load_file(str(ref / "adapter_model.safetensors")), load_file(str(out / "adapter_model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    # one base reference per run, and a real model card
    adapter_base = json.loads((out / "adapter_config.json").read_text())["base_model_name_or_path"]
    assert adapter_base == yaml.safe_load((out / "tuneforge_config.yaml").read_text())["_run"]["base_model"]
    card = (out / "README.md").read_text()
    assert "More Information Needed" not in card and "lora" in card and "AutoPeftModelForCausalLM" in card


def test_overwrite_output_dir_is_the_only_way_to_start_an_unfinished_run_over(tmp_path, keys, monkeypatch, capsys):
    out = tmp_path / "run"

    def crash():
        raise KeyboardInterrupt  # a second Ctrl-C: stops at once, the periodic checkpoint stays

    _at_step(monkeypatch, 3, crash)
    assert main(_args({**keys, "max_steps": 4}, out)) == 130
    assert "interrupted at step 3; the last checkpoint is checkpoint-2" in capsys.readouterr().err
    monkeypatch.undo()
    (out / "notes.txt").write_text("the user's own file")
    assert main(_args({**keys, "max_steps": 4}, out, "overwrite_output_dir=true")) == 0
    assert "resum" not in capsys.readouterr().out
    assert [r.get("event") for r in _records(out)].count("start") == 1  # started over
    assert (out / "notes.txt").read_text() == "the user's own file"


def test_a_directory_that_is_not_a_run_is_refused_and_untouched(tmp_path, keys, capsys):
    foreign = tmp_path / "V"
    (foreign / "checkpoint-important").mkdir(parents=True)
    (foreign / "checkpoint-important" / "data.txt").write_text("x")
    (foreign / "README.md").write_text("my notes")
    for extra in ([], ["overwrite_output_dir=true"]):
        assert main(_args(keys, foreign, *extra)) == 2
        assert "not a tuneforge run directory" in capsys.readouterr().err
    assert sorted(p.name for p in foreign.rglob("*")) == ["README.md", "checkpoint-important", "data.txt"]
    assert (foreign / "README.md").read_text() == "my notes"


def test_a_second_run_into_a_locked_directory_is_refused(tmp_path, keys, capsys):
    out = tmp_path / "run"
    lock = rundir.claim(out)  # stands for a live run of another process
    try:
        for extra in ([], ["overwrite_output_dir=true"], ["resume_from_checkpoint=auto"]):
            assert main(_args(keys, out, *extra)) == 2
            assert f"in use by another tuneforge run (pid {os.getpid()})" in capsys.readouterr().err
        assert not (out / "metrics.jsonl").exists()
    finally:
        lock.release()


def test_a_full_disk_is_one_message_and_leaves_nothing_that_blocks_the_next_run(tmp_path, keys, monkeypatch, capsys):
    from tuneforge.models import builtin

    def half_written(directory):
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "config.json").write_text("{}")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(builtin, "save_toy", half_written)
    out = tmp_path / "run"
    assert main(_args(keys, out)) == 4
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no space left on the device" in err[0] and "base_model" in err[0] and "free" in err[0]
    assert not (out / "base_model").exists() and not (out / "base_model.tmp").exists()
    monkeypatch.undo()

    def disk_full_at_second_checkpoint():
        raise OSError(28, "No space left on device")

    calls = {"n": 0}
    original_save = ck.Checkpointer._write_main_files

    def write(self, loop, tmp):
        calls["n"] += 1
        original_save(self, loop, tmp)
        if calls["n"] == 2:
            disk_full_at_second_checkpoint()

    monkeypatch.setattr(ck.Checkpointer, "_write_main_files", write)
    assert main(_args(keys, out)) == 4
    assert "checkpoint-4.tmp" in capsys.readouterr().err
    monkeypatch.undo()
    assert main(_args(keys, out)) == 0  # resumed from checkpoint-2; the half-written .tmp was no obstacle
    assert "resuming it from checkpoint-2" in capsys.readouterr().out


def test_resume_records_what_actually_runs(tmp_path, keys, monkeypatch):
    keys = {**keys, "lr_scheduler_type": "constant", "warmup_ratio": 0.0, "max_steps": 4}
    out = tmp_path / "run"

    def crash():
        raise RuntimeError("power cut")

    _at_step(monkeypatch, 3, crash)
    with pytest.raises(RuntimeError, match="power cut"):
        main(_args(keys, out))
    monkeypatch.undo()
    assert main(_args({**keys, "learning_rate": 5e-3}, out)) == 0
    assert yaml.safe_load((out / "tuneforge_config.yaml").read_text())["learning_rate"] == 5e-3
    lrs = {r["step"]: r["learning_rate"] for r in _records(out) if "learning_rate" in r}
    assert lrs[1] == lrs[2] == 1e-2 and lrs[3] == lrs[4] == 5e-3


def _handles(pid: int, sig: int) -> bool:
    """Whether the process has installed its own handler for ``sig`` (Linux: SigCgt in /proc)."""
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) >> (sig - 1) & 1)
    return False


def _wait_for(predicate, proc, timeout=180):
    deadline = time.time() + timeout
    while not predicate():
        assert proc.poll() is None, proc.communicate()[1]
        assert time.time() < deadline
        time.sleep(0.05)


@pytest.mark.parametrize("sig,code,word", [(signal.SIGINT, 130, "interrupted"), (signal.SIGTERM, 143, "terminated")])
def test_a_signal_during_start_up_is_one_line(tmp_path, keys, sig, code, word):
    proc = subprocess.Popen([sys.executable, "-m", "tuneforge.cli", *_args(keys, tmp_path / "run")], env=ENV,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for(lambda: _handles(proc.pid, signal.SIGTERM), proc)  # tuneforge's own code is running
    time.sleep(0.3)  # importing the libraries, loading data or the model
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err
    assert "Traceback" not in err and err.strip().splitlines()[-1].startswith(f"tuneforge: {word}")


@pytest.mark.slow  # a real process: ~20 s of start-up on 2 busy cores; the in-process SIGINT test covers the logic
def test_sigterm_while_training_stops_resumably(tmp_path, keys):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "tuneforge.cli", *_args({**keys, "max_steps": 400, "save_steps": 1000}, out)]
    proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    metrics = out / "metrics.jsonl"
    _wait_for(lambda: metrics.is_file() and '"loss"' in metrics.read_text(), proc)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert "Traceback" not in err and "terminated at step" in err and "Run the same command again" in err
    assert ck.latest_complete(out, print) is not None  # the stop saved a checkpoint (save_steps alone would not)


@pytest.mark.slow  # two launched processes: ~30 s of start-up
def test_a_data_error_under_nproc_2_is_reported_once(tmp_path, keys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"instruction": "q", "output": "a"}\n{"instruction": "q"}\n')
    cmd = [sys.executable, "-m", "tuneforge.cli", *_args({**keys, "train_data": str(bad)}, tmp_path / "run"),
           "--nproc", "2"]
    done = subprocess.run(cmd, env=ENV, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2, done.stderr
    lines = [x for x in done.stderr.splitlines() if x.strip()]
    assert len([x for x in lines if x.startswith("tuneforge: error:")]) == 1, done.stderr
    assert "line 2" in done.stderr and "ChildFailedError" not in done.stderr and "Traceback" not in done.stderr


@pytest.mark.slow  # two launched processes
def test_sigterm_to_the_process_group_under_nproc_2_is_one_line(tmp_path, keys):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "tuneforge.cli", *_args({**keys, "max_steps": 3000, "save_steps": 3}, out),
           "--nproc", "2"]
    proc = subprocess.Popen(cmd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)  # its own process group, as a task runner starts it
    _wait_for(lambda: (out / "checkpoint-3" / ck.MANIFEST).is_file(), proc)
    os.killpg(proc.pid, signal.SIGTERM)
    _, err = proc.communicate(timeout=180)
    assert proc.returncode == 143, err
    lines = [x for x in err.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("tuneforge: terminated at step"), err
    assert "Run the same command again" in lines[0]
