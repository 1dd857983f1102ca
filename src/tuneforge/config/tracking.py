"""Logging and experiment trackers."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from .keys import config_key


@dataclass
class TrackingArgs:
    """Logging and experiment trackers."""

    logging_steps: int = config_key(10, "Log training metrics every this many optimizer steps.", lo=1, hi=10 ** 9)
    report_to: list[str] = config_key(
        ["none"], "Experiment trackers that get the run besides metrics.jsonl: a list of tensorboard, mlflow, wandb, "
        "trackio, or none. Each needs its extra (pip install 'tuneforge[mlflow]' ...); settings come from the "
        "tracker's own environment variables (MLFLOW_TRACKING_URI, WANDB_MODE, WANDB_PROJECT, TRACKIO_DIR ...). "
        "Nothing is sent anywhere you did not configure: MLflow defaults to a local store in output_dir, W&B needs "
        "WANDB_MODE=offline or your credentials, trackio is local (README: Experiment trackers).")
    run_name: Optional[str] = config_key(None, "The run's name in the trackers (default: the output directory's name).")
    tracker_project: Optional[str] = config_key(
        None, "The trackers' project (MLflow experiment, W&B / trackio project). Default: MLFLOW_EXPERIMENT_NAME, "
        "WANDB_PROJECT or TRACKIO_PROJECT when set, else 'tuneforge'.")
    tracker_log_model: bool = config_key(
        False, "Also upload the trained weights (adapter or model, tokenizer, config) to the trackers that store files "
        "(MLflow, W&B); otherwise only a reference to output_dir is logged.")
