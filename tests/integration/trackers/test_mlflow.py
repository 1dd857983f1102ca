"""report_to: mlflow — the local SQLite store read back with MLflow's own client: every metrics.jsonl field at
its step, every resolved config key as a parameter, the summary and the output reference; a resumed run
continues the same MLflow run; a missing package is a config error naming the pip command."""
from __future__ import annotations

import json
import sys

import pytest

import tuneforge
from tuneforge.errors import ConfigError
from tuneforge.training import checkpoint as ck

mlflow = pytest.importorskip("mlflow", reason="the mlflow extra (pip install 'tuneforge[mlflow]') is not installed")
from mlflow.tracking import MlflowClient  # noqa: E402


def _client_and_run(out):
    saved = json.loads((out / "trackers.json").read_text())["mlflow"]
    client = MlflowClient(tracking_uri=saved["location"])
    return client, client.get_run(saved["id"]), saved


def _assert_every_record_logged(client, run_id, records, numeric_fields):
    """Each numeric field of each record is in the run's history at the record's step, and no other step."""
    expected: dict[str, dict[int, set[float]]] = {}
    for record in records:
        for key, value in numeric_fields(record).items():
            expected.setdefault(key, {}).setdefault(record["step"], set()).add(value)
    assert {"loss", "eval_loss", "learning_rate", "host_rss_gib", "trainable_params", "wall_time_s"} <= expected.keys()
    for key, by_step in expected.items():
        history = client.get_metric_history(run_id, key)
        logged: dict[int, list[float]] = {}
        for metric in history:
            logged.setdefault(metric.step, []).append(metric.value)
        assert logged.keys() == by_step.keys(), key
        for step, values in by_step.items():
            for value in values:
                assert any(v == pytest.approx(value, rel=1e-9, abs=1e-12) for v in logged[step]), (key, step)


def test_local_store_has_every_metric_param_summary_and_output_reference(tmp_path, run_keys, monkeypatch, helpers):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    out = tmp_path / "run"
    keys = {**run_keys, "output_dir": str(out), "report_to": ["mlflow"], "run_name": "first try",
            "tracker_project": "toy-experiments"}
    summary = tuneforge.train(keys, progress=False)

    client, run, saved = _client_and_run(out)
    assert saved["location"] == f"sqlite:///{out.resolve()}/mlflow.db" and saved["url"] is None
    assert run.info.status == "FINISHED" and run.info.run_name == "first try"
    assert client.get_experiment(run.info.experiment_id).name == "toy-experiments"
    records = helpers.read_records(out)
    _assert_every_record_logged(client, run.info.run_id, records, helpers.numeric_fields)

    params = run.data.params
    resolved = tuneforge.config.load_config(**{k: v for k, v in keys.items()}).to_dict()
    for key, value in resolved.items():
        assert params[key] == (value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)), key
    assert params["method"] == "lora" and params["report_to"] == '["mlflow"]'

    metrics = run.data.metrics  # the latest value of each metric
    assert metrics["summary/steps"] == 3 and metrics["summary/train_loss"] == pytest.approx(summary.train_loss)
    assert metrics["summary/best_metric"] == pytest.approx(summary.best_metric)
    assert run.data.tags["tuneforge.output_dir"] == str(out.resolve())
    reference = json.loads(open(mlflow.artifacts.download_artifacts(run_id=run.info.run_id,
                                                                   artifact_path="tuneforge_output.json",
                                                                   tracking_uri=saved["location"],
                                                                   dst_path=str(tmp_path / "dl"))).read())
    assert reference["output_dir"] == str(out.resolve()) and "adapter_model.safetensors" in reference["files"]
    # Without tracker_log_model no weights are copied into the store.
    assert not list((out / "mlflow-artifacts").rglob("*.safetensors"))


class _Crash(Exception):
    pass


def test_resumed_run_continues_the_same_mlflow_run(tmp_path, run_keys, monkeypatch, helpers):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    out = tmp_path / "run"
    # 3 steps per epoch: checkpoints at 2, 3 (epoch end) and 4; the crash at 5 makes the resume redo step 5.
    keys = {**run_keys, "output_dir": str(out), "report_to": "mlflow", "max_steps": 6, "save_steps": 2,
            "tracker_log_model": True}
    original_call = ck.Checkpointer.__call__

    def call(self, loop):
        original_call(self, loop)
        if loop.state.global_step == 5:
            raise _Crash()

    monkeypatch.setattr(ck.Checkpointer, "__call__", call)
    with pytest.raises(_Crash):
        tuneforge.train(keys, progress=False)
    monkeypatch.setattr(ck.Checkpointer, "__call__", original_call)
    client, run, saved = _client_and_run(out)
    first_id = run.info.run_id
    assert run.info.status == "KILLED"  # the interrupted run is closed, not left RUNNING

    tuneforge.train({**keys, "resume_from_checkpoint": "auto"}, progress=False)
    client, run, saved = _client_and_run(out)
    assert run.info.run_id == first_id and run.info.status == "FINISHED"
    assert len(client.search_runs([run.info.experiment_id])) == 1
    records = helpers.read_records(out)
    assert [(r["step"], r.get("event")) for r in records if r.get("event") == "resume"] == [(4, "resume")]
    _assert_every_record_logged(client, first_id, records, helpers.numeric_fields)
    assert [m.step for m in client.get_metric_history(first_id, "loss")].count(5) == 2  # redone: logged twice
    # tracker_log_model: the adapter itself is in the run's artifacts.
    assert "model/adapter_model.safetensors" in [a.path for a in client.list_artifacts(first_id, "model")]


def test_missing_package_is_a_config_error_with_the_pip_command(tmp_path, run_keys, monkeypatch, helpers):
    monkeypatch.setitem(sys.modules, "mlflow", None)  # as on a machine without it
    with pytest.raises(ConfigError, match=r"pip install 'tuneforge\[mlflow\]'"):
        tuneforge.train({**run_keys, "output_dir": str(tmp_path / "o"), "report_to": "mlflow"}, progress=False)
    assert not (tmp_path / "o").exists()
