"""A tracker that fails mid-run never harms training: one warning with the reason, metrics.jsonl complete, and
the records it missed sent once it works again (MLflow, its client made to fail as a server that went down)."""
from __future__ import annotations

import json

import pytest

import tuneforge
from tuneforge.training.trackers import mlflow as mlflow_tracker

pytest.importorskip("mlflow", reason="the mlflow extra (pip install 'tuneforge[mlflow]') is not installed")
from mlflow.tracking import MlflowClient  # noqa: E402


def test_mlflow_down_for_two_records_costs_one_warning_and_loses_nothing(tmp_path, run_keys, monkeypatch, capsys,
                                                                        helpers):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    original_log, calls = mlflow_tracker.MlflowTracker.log, {"n": 0}

    def flaky_log(self, record, step):
        calls["n"] += 1
        if 2 <= calls["n"] <= 3:  # the start record goes through, the next two attempts fail
            raise ConnectionError("tracking server unreachable (test)")
        original_log(self, record, step)

    monkeypatch.setattr(mlflow_tracker.MlflowTracker, "log", flaky_log)
    out = tmp_path / "run"
    summary = tuneforge.train({**run_keys, "output_dir": str(out), "report_to": "mlflow"}, progress=False)
    printed = capsys.readouterr().out

    assert summary.steps == 3 and (out / "tuneforge_config.yaml").is_file()
    warnings = [line for line in printed.splitlines() if line.startswith("warning: tracker mlflow")]
    assert len(warnings) == 1 and "ConnectionError: tracking server unreachable (test)" in warnings[0]
    assert "tracker mlflow: working again" in printed
    records = helpers.read_records(out)
    assert records[0]["event"] == "start" and records[-1]["event"] == "end"

    saved = json.loads((out / "trackers.json").read_text())["mlflow"]
    client = MlflowClient(tracking_uri=saved["location"])
    for record in records:  # the missed records arrived late, at their own steps
        for key, value in helpers.numeric_fields(record).items():
            history = {(m.step, m.value) for m in client.get_metric_history(saved["id"], key)}
            assert any(s == record["step"] and v == pytest.approx(value) for s, v in history), (key, record["step"])
    assert client.get_run(saved["id"]).info.status == "FINISHED"
