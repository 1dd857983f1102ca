"""The run directory's owner: its file names, who owns a directory, reading its records, its outputs listing.

Every module that names, reads or lists a file of a run directory goes through this package:

- ``names``: every file and folder name (``METRICS_FILE``, ``CONFIG_FILE``, ``LOG_FILE`` ...), and which of them
  a fresh run removes;
- ``ownership``: the marker and the lock (``claim``, ``init_run_dir``, ``lock_holder``), ``is_finished``,
  ``clear_run_files``;
- ``records``: the one reader of ``metrics.jsonl`` and other JSONL files (``read_jsonl``, ``read_metrics``,
  ``read_evaluations``), the one follower of a growing file (``JsonlTail``), the resume's ``trim_metrics``,
  ``read_progress``, ``read_log``, ``log_error_line``, ``read_exit_status``;
- ``checkpoints``: which ``checkpoint-N`` folders exist and the newest completed one (``latest_saved``);
- ``best``: the one rule of which way a metric improves (``lower_is_better``, ``improves``, ``best_of``);
- ``listing``: what a run offers for download (``list_outputs``) and ``resolve_output``.

The engine writes the files (``monitor``, ``training``, ``run_outputs``); the task service, console and
serving read them only through here. Nothing here imports torch.
"""
from __future__ import annotations

from .best import LOWER_IS_BETTER, best_of, improves, lower_is_better
from .checkpoints import checkpoint_step, latest_saved, list_checkpoints
from .listing import list_outputs, resolve_output
from .names import (BEST_DIR, CHECKPOINT_PREFIX, CONFIG_FILE, CURVES_FILE, EVAL_DIR, EVAL_LOG, EXIT_FILE, EXPORT_LOG,
                    EXPORT_PREFIX, EXPORT_README, EXPORT_REPORT, GENERATIONS_FILE, LOCK, LOG_FILE, MANIFEST, MARKER,
                    METRICS_FILE, MLFLOW_ARTIFACTS, MLFLOW_STORE, MODEL_CARD, MODEL_FILES, PROGRESS_FILE,
                    RESOURCES_FILE, RUN_FILES, RUN_PATTERNS, SERVE_LOG, SHARDED_WEIGHTS, TASK_CONFIG_FILE,
                    TENSORBOARD_DIR, TRACKERS_FILE, checkpoint_dir_name, export_dir_name)
from .ownership import RunLock, claim, clear_run_files, init_run_dir, is_finished, is_run_dir, lock_holder
from .records import (JsonlTail, log_error_line, read_evaluations, read_exit_status, read_jsonl, read_log,
                      read_metrics, read_progress, trim_metrics)

__all__ = [
    "BEST_DIR", "CHECKPOINT_PREFIX", "CONFIG_FILE", "CURVES_FILE", "EVAL_DIR", "EVAL_LOG", "EXIT_FILE", "EXPORT_LOG",
    "EXPORT_PREFIX", "EXPORT_README", "EXPORT_REPORT", "GENERATIONS_FILE", "LOCK", "LOG_FILE", "MANIFEST", "MARKER",
    "METRICS_FILE", "MLFLOW_ARTIFACTS", "MLFLOW_STORE", "MODEL_CARD", "MODEL_FILES", "PROGRESS_FILE",
    "RESOURCES_FILE", "RUN_FILES", "RUN_PATTERNS", "SERVE_LOG", "SHARDED_WEIGHTS", "TASK_CONFIG_FILE",
    "TENSORBOARD_DIR", "TRACKERS_FILE", "checkpoint_dir_name", "export_dir_name",
    "LOWER_IS_BETTER", "best_of", "improves", "lower_is_better",
    "checkpoint_step", "latest_saved", "list_checkpoints",
    "list_outputs", "resolve_output",
    "RunLock", "claim", "clear_run_files", "init_run_dir", "is_finished", "is_run_dir", "lock_holder",
    "JsonlTail", "log_error_line", "read_evaluations", "read_exit_status", "read_jsonl", "read_log", "read_metrics",
    "read_progress", "trim_metrics",
]
