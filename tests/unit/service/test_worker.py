"""How a finished task's status is decided, and how event positions parse."""
from __future__ import annotations

import signal

import pytest

from tuneforge.service.events import parse_position
from tuneforge.service.executors import Exit
from tuneforge.service.worker import final_status


@pytest.fixture
def task(tmp_path):
    (tmp_path / "train.log").write_text("loading\ntuneforge: error: data.jsonl, line 3: bad\n")
    return {"run_dir": str(tmp_path), "stop_requested": 0}


def test_final_status(task, tmp_path):
    assert final_status(task, Exit(0)) == ("succeeded", None)
    assert final_status(task, Exit(2)) == ("failed", "tuneforge: error: data.jsonl, line 3: bad")
    assert final_status({**task, "stop_requested": 1}, Exit(143)) == ("stopped", None)
    assert final_status(task, Exit(143))[0] == "interrupted"  # SIGTERM from someone else: resumable
    status, error = final_status(task, Exit(-signal.SIGKILL))
    assert status == "failed" and "SIGKILL" in error
    assert final_status(task, Exit(None))[0] == "interrupted"
    (tmp_path / "tuneforge_config.yaml").write_text("finished: yes\n")
    assert final_status(task, Exit(None))[0] == "succeeded"


def test_event_positions():
    assert parse_position(None) is None and parse_position("3-14-1500") == (3, 14, 1500)
    with pytest.raises(ValueError, match="M-R-L"):
        parse_position("3-x")
