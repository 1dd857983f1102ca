"""TrackerSet without a tracker library: failures cost one warning per outage, the backlog is sent in order when
the tracker works again, a start that fails is retried, a tracker that hangs never holds up the caller,
trackers.json records the run and resume reads it."""
from __future__ import annotations

import json
import sys

import pytest

from tuneforge.errors import ConfigError
from tuneforge.training.trackers import check_names, tracker_names
from tuneforge.training.trackers.base import Tracker, TrackerRun, metrics_of
from tuneforge.rundir import TRACKERS_FILE
from tuneforge.training.trackers.manager import TrackerSet


class Flaky(Tracker):
    """Fails while ``down`` is true; remembers what it was given."""

    name = "flaky"

    def __init__(self, run_dir, down_start=0):
        self.run_dir, self.down, self.down_start = run_dir, False, down_start
        self.logged, self.starts, self.finished, self.closed = [], [], None, False

    def start(self, config, resume_id):
        if self.down_start > 0:
            self.down_start -= 1
            raise OSError("no space left on device")
        self.starts.append(resume_id)
        return TrackerRun(id=resume_id or "run-1", name="n", project="p")

    def log(self, record, step):
        if self.down:
            raise ConnectionError("server down")
        self.logged.append(step)

    def finish(self, summary, output_dir):
        self.finished = summary

    def close(self):
        self.closed = True


def test_one_warning_per_outage_and_the_backlog_in_order(tmp_path):
    said = []
    tracker = Flaky(tmp_path)
    trackers = TrackerSet([tracker], tmp_path, said.append)
    trackers.start({"lr": 1}, resumed=False)
    trackers.log({"step": 1, "loss": 1.0})
    assert trackers.flush(10)
    tracker.down = True
    for step in (2, 3, 4):
        trackers.log({"step": step, "loss": 1.0})
    assert trackers.flush(10)
    assert len(said) == 1 and "flaky failed at step 2 (ConnectionError: server down)" in said[0]
    tracker.down = False
    trackers.log({"step": 5, "loss": 1.0})
    assert trackers.flush(10)
    assert tracker.logged == [1, 2, 3, 4, 5] and "working again" in said[-1] and len(said) == 2
    trackers.finish({"steps": 5}, tmp_path)
    trackers.close()
    assert tracker.finished == {"steps": 5} and not tracker.closed  # finished runs are not closed again


def test_a_failed_start_is_retried_and_trackers_json_lets_a_resume_continue(tmp_path):
    said = []
    tracker = Flaky(tmp_path, down_start=2)
    trackers = TrackerSet([tracker], tmp_path, said.append)
    trackers.start({}, resumed=False)          # fails (1)
    trackers.log({"step": 1, "loss": 2.0})     # fails (2), no second warning
    trackers.log({"step": 2, "loss": 2.0})     # starts, sends both
    assert trackers.flush(10)
    assert len([s for s in said if s.startswith("warning")]) == 1 and tracker.logged == [1, 2]
    assert json.loads((tmp_path / TRACKERS_FILE).read_text())["flaky"]["id"] == "run-1"
    trackers.close()
    assert tracker.closed  # stopped without finish: released

    again = Flaky(tmp_path)
    resumed = TrackerSet([again], tmp_path, said.append)
    resumed.start({}, resumed=True)
    assert resumed.flush(10) and again.starts == ["run-1"]
    resumed.close()


def test_a_hanging_tracker_never_blocks_the_caller(tmp_path, monkeypatch):
    import threading
    import time

    from tuneforge.training.trackers import manager

    release = threading.Event()

    class Hanging(Flaky):
        def log(self, record, step):
            release.wait(30)  # a server that does not answer
            super().log(record, step)

    monkeypatch.setattr(manager, "FINISH_TIMEOUT_S", 0.5)
    said, tracker = [], Hanging(tmp_path)
    trackers = TrackerSet([tracker], tmp_path, said.append)
    trackers.start({}, resumed=False)
    begin = time.monotonic()
    for step in range(1, 50):
        trackers.log({"step": step, "loss": 1.0})
    trackers.finish({"steps": 49}, tmp_path)
    assert time.monotonic() - begin < 5 and "still busy after 0.5 s" in said[-1]
    release.set()


def test_report_to_names():
    assert tracker_names("none") == [] and tracker_names(["mlflow", "wandb"]) == ["mlflow", "wandb"]
    assert tracker_names("mlflow, trackio") == ["mlflow", "trackio"]
    with pytest.raises(ConfigError, match="did you mean 'mlflow'"):
        check_names(["mlfow"])
    with pytest.raises(ConfigError, match="'none' together"):
        check_names(["none", "wandb"])


def test_metrics_of_keeps_numbers_under_their_names():
    record = {"step": 3, "time": 1.0, "event": "end", "loss": 0.5, "rewards/chosen": 1, "ok": True, "x": None}
    assert metrics_of(record) == {"loss": 0.5, "rewards/chosen": 1.0, "ok": 1.0}


def test_mlflow_names_stay_the_records_names_unless_mlflow_refuses_them():
    from tuneforge.training.trackers.mlflow import mlflow_name

    for name in ("loss", "rewards/chosen", "clip_ratio/low", "reward/tools.py:score", "eval_rewards/accuracies"):
        assert mlflow_name(name) == name
    assert mlflow_name("reward/a*b") == "reward/a_b" and mlflow_name("reward//x") == "reward__x"


@pytest.mark.parametrize("name,module", [("tensorboard", "torch.utils.tensorboard"), ("mlflow", "mlflow"),
                                         ("wandb", "wandb"), ("trackio", "trackio")])
def test_a_missing_tracker_package_is_refused_with_its_pip_command(name, module, monkeypatch):
    from types import SimpleNamespace

    from tuneforge.training.trackers import check_config

    monkeypatch.setitem(sys.modules, module, None)  # as on a machine without it
    monkeypatch.setenv("WANDB_MODE", "offline")
    with pytest.raises(ConfigError, match=rf"pip install 'tuneforge\[{name}\]'"):
        check_config(SimpleNamespace(report_to=[name], tracker_project=None, run_name=None))
