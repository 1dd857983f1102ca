"""Run directories: the marker says what is tuneforge's, the lock keeps a second run out (issue 11, cases 2-3)."""
import json
import os
import subprocess
import sys

import pytest

from tuneforge.errors import ConfigError
from tuneforge import rundir


def test_a_new_directory_is_marked_first_and_locked(tmp_path):
    out = tmp_path / "new" / "run"
    lock = rundir.claim(out)
    try:
        assert rundir.is_run_dir(out)
        assert json.loads((out / rundir.MARKER).read_text())["tuneforge_run"] == 1
        assert rundir.lock_holder(out) == os.getpid()
    finally:
        lock.release()
    assert rundir.lock_holder(out) is None  # released: nobody holds it, the file may stay


def test_a_foreign_directory_is_refused_and_left_untouched(tmp_path):
    foreign = tmp_path / "V"
    (foreign / "checkpoint-important").mkdir(parents=True)
    (foreign / "checkpoint-important" / "data.txt").write_text("x")
    (foreign / "README.md").write_text("mine")
    before = sorted(p.relative_to(foreign).as_posix() for p in foreign.rglob("*"))
    with pytest.raises(ConfigError, match="not a tuneforge run directory") as err:
        rundir.claim(foreign)
    assert "nothing in it was touched" in str(err.value)
    assert sorted(p.relative_to(foreign).as_posix() for p in foreign.rglob("*")) == before
    assert (foreign / "README.md").read_text() == "mine"
    with pytest.raises(ConfigError):
        rundir.clear_run_files(foreign)  # never removes anything from a directory without the marker


def test_a_second_claim_is_refused_naming_the_holder(tmp_path):
    out = tmp_path / "run"
    first = rundir.claim(out)
    try:
        with pytest.raises(ConfigError, match=f"in use by another tuneforge run \\(pid {os.getpid()}\\)"):
            rundir.claim(out)
    finally:
        first.release()
    rundir.claim(out).release()  # free again


def test_the_lock_dies_with_its_process(tmp_path):
    out = tmp_path / "run"
    code = ("import sys, time; from tuneforge import rundir; rundir.claim(sys.argv[1]); "
            "print('locked', flush=True); time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", code, str(out)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "locked"
        assert rundir.lock_holder(out) == proc.pid
        with pytest.raises(ConfigError, match=f"pid {proc.pid}"):
            rundir.claim(out)
    finally:
        proc.kill()
        proc.wait()
    assert rundir.lock_holder(out) is None  # killed: the OS released it, no stale lock
    rundir.claim(out).release()


def test_clearing_removes_only_what_a_run_writes(tmp_path):
    out = tmp_path / "run"
    rundir.claim(out).release()
    for name in ("metrics.jsonl", "tuneforge_config.yaml", "adapter_model.safetensors", "train.log", "notes.txt"):
        (out / name).write_text("x")
    (out / "checkpoint-3").mkdir()
    removed = rundir.clear_run_files(out)
    assert set(removed) == {"metrics.jsonl", "tuneforge_config.yaml", "adapter_model.safetensors", "checkpoint-3"}
    assert sorted(p.name for p in out.iterdir()) == sorted([rundir.MARKER, rundir.LOCK, "train.log", "notes.txt"])


def test_init_run_dir_for_a_task_runner(tmp_path):
    out = rundir.init_run_dir(tmp_path / "task-1")
    (out / "train.log").write_text("started\n")  # the runner's log may come before the run
    rundir.claim(out).release()  # the run accepts its own marked directory
