"""The config a task runs, handed over once, as the file its run will record.

The service validates the submitted keys once (``TaskService.checked_config``: types, paths, the machine),
then writes every key of the validated config, defaults included, to ``RUN_DIR/tuneforge_task.yaml`` with
``output_dir`` = the run directory. The task's process trains from that file (``train_command``), and the run
records the same keys in ``tuneforge_config.yaml`` when it finishes (plus its ``_run`` block), so the file the
task reads is the config the run records. The task row in SQLite keeps the submitted keys for the pages,
``clone`` and ``resume``; it is not read to start the task. Written when the task is queued (submit, a sweep's
trials) and again when it is resumed; the worker only checks that it is there.
"""
from __future__ import annotations

import os
from pathlib import Path

import yaml

from ..config import TrainConfig
from ..rundir import TASK_CONFIG_FILE


def task_config_text(cfg: TrainConfig, run_dir: Path) -> str:
    """Every key of ``cfg`` in declaration order, as training records it (``outputs.save_config``'s YAML)."""
    return yaml.safe_dump({**cfg.to_dict(), "output_dir": str(run_dir)}, allow_unicode=True, sort_keys=False)


def write_task_config(run_dir: Path, cfg: TrainConfig) -> Path:
    """Write ``RUN_DIR/tuneforge_task.yaml`` through a temporary file (a reader never sees half of it)."""
    path = Path(run_dir) / TASK_CONFIG_FILE
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(task_config_text(cfg, Path(run_dir)), encoding="utf-8")
    os.replace(tmp, path)
    return path


def missing_task_config(run_dir: Path) -> str | None:
    """Why the task cannot start from ``run_dir`` (its config file is gone), or None."""
    if (Path(run_dir) / TASK_CONFIG_FILE).is_file():
        return None
    return f"{TASK_CONFIG_FILE} is missing from {run_dir}; resume the task to write it again"
