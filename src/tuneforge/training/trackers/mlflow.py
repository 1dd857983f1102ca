"""MLflow: the resolved config as parameters, every record's numbers as metrics at their step, the summary,
and the output directory as a reference (the weights too with ``tracker_log_model: true``).

Where to: ``MLFLOW_TRACKING_URI`` when set (a server, a database), otherwise a local SQLite store in the
run directory (``mlflow.db``, artifacts in ``mlflow-artifacts/``): nothing leaves the machine unless the
user configured it. The experiment is ``tracker_project``, else ``MLFLOW_EXPERIMENT_NAME``, else
'tuneforge'. MLflow's file store is not used: MLflow 3 refuses it by default.
"""
from __future__ import annotations

import importlib.util
import logging
import os
import posixpath
import time
from pathlib import Path
from typing import Any

from ...errors import ConfigError
from ...rundir import MLFLOW_ARTIFACTS, MLFLOW_STORE
from .base import Tracker, TrackerRun, flat_params, metrics_of, model_files, sanitize

LOCAL_STORE, LOCAL_ARTIFACTS = MLFLOW_STORE, MLFLOW_ARTIFACTS  # in the run directory
MAX_PARAM_LENGTH = 6000  # MLflow's limit on one parameter value
BATCH = 100  # log_batch takes at most 100 parameters (and 1000 metrics) per call
OUTPUT_REFERENCE = "tuneforge_output.json"


def mlflow_name(key: str) -> str:
    """The record's field name, unless MLflow refuses it: characters outside letters, digits, ``_ - . / :`` and
    space become '_', and a name that reads as a different path ('a//b', './a') loses its slashes."""
    name = sanitize(key)
    return name.replace("/", "_") if posixpath.normpath(name) != name or name.startswith("/") else name


def _uri_from_env() -> str | None:
    return os.environ.get("MLFLOW_TRACKING_URI") or None


class MlflowTracker(Tracker):
    name, package, extra = "mlflow", "mlflow", "mlflow"

    @classmethod
    def check(cls, cfg) -> None:
        super().check(cfg)
        if _uri_from_env() is None and any(importlib.util.find_spec(m) is None for m in ("sqlalchemy", "alembic")):
            raise ConfigError("report_to: mlflow without MLFLOW_TRACKING_URI writes a local SQLite store, which needs "
                              f"sqlalchemy and alembic. Install them with: {cls.pip_command()}")

    def start(self, config: dict[str, Any], resume_id: str | None) -> TrackerRun:
        from mlflow.tracking import MlflowClient

        logging.getLogger("mlflow.store.db.utils").setLevel(logging.WARNING)  # 'creating tables' on every new store
        logging.getLogger("alembic").setLevel(logging.WARNING)
        local = _uri_from_env() is None
        self.uri = _uri_from_env() or f"sqlite:///{self.run_dir / LOCAL_STORE}"
        self.client = client = MlflowClient(tracking_uri=self.uri)
        name = self.project("MLFLOW_EXPERIMENT_NAME")
        experiment = client.get_experiment_by_name(name)
        if experiment is not None:
            experiment_id = experiment.experiment_id
        else:
            artifacts = (self.run_dir / LOCAL_ARTIFACTS).as_uri() if local else None
            experiment_id = client.create_experiment(name, artifact_location=artifacts)
        params = flat_params(config)
        resume_id = resume_id or getattr(self, "run_id", None)  # a start that failed after creating the run
        if resume_id is not None:
            run = client.get_run(resume_id)
            client.update_run(resume_id, status="RUNNING")
            # Parameters cannot change in MLflow: only those the earlier run did not log are added.
            params = {k: v for k, v in params.items() if k not in run.data.params}
        else:
            run = client.create_run(experiment_id, run_name=self.run_name(),
                                    tags={"tuneforge.output_dir": str(self.run_dir)})
        self.run_id = run.info.run_id
        self._log_params(params)
        url = f"{self.uri.rstrip('/')}/#/experiments/{experiment_id}/runs/{self.run_id}" \
            if self.uri.startswith(("http://", "https://")) else None
        return TrackerRun(id=self.run_id, name=run.info.run_name, project=name, url=url, location=self.uri,
                          view=None if url else f"mlflow ui --backend-store-uri {self.uri}",
                          extra={"experiment_id": experiment_id})

    def _log_params(self, params: dict[str, str]) -> None:
        from mlflow.entities import Param

        items = [Param(k, v[:MAX_PARAM_LENGTH]) for k, v in params.items()]
        for i in range(0, len(items), BATCH):
            self.client.log_batch(self.run_id, params=items[i:i + BATCH])

    def log(self, record: dict[str, Any], step: int) -> None:
        from mlflow.entities import Metric

        stamp = int(1000 * float(record.get("time") or time.time()))
        metrics = [Metric(mlflow_name(k), v, stamp, step) for k, v in metrics_of(record).items()]
        for i in range(0, len(metrics), 10 * BATCH):
            self.client.log_batch(self.run_id, metrics=metrics[i:i + 10 * BATCH])

    def finish(self, summary: dict[str, Any], output_dir: Path) -> None:
        step = int(summary.get("steps") or 0)
        self.log({f"summary/{k}": v for k, v in summary.items()}, step)
        files = sorted(p.name for p in output_dir.iterdir() if p.is_file() and not p.name.startswith("."))
        self.client.set_tag(self.run_id, "tuneforge.output_dir", str(output_dir))
        self.client.log_dict(self.run_id, {"output_dir": str(output_dir), "files": files}, OUTPUT_REFERENCE)
        if self.cfg.tracker_log_model:
            for path in model_files(output_dir):
                self.client.log_artifact(self.run_id, str(path), "model")
        self.client.set_terminated(self.run_id, "FINISHED")

    def close(self) -> None:
        if getattr(self, "run_id", None):
            self.client.set_terminated(self.run_id, "KILLED")


TRACKER = MlflowTracker
