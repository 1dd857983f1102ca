"""What every experiment tracker implements, and the helpers they share.

A tracker is a class registered under its ``report_to`` name. ``check(cfg)`` runs at config time (before
anything loads) and refuses a missing package or an unsafe setting with the fix; ``start``, ``log`` and
``finish`` run on rank 0 only, and may raise: ``manager.TrackerSet`` turns a failure into one warning and
retries later, so a tracker never stops training.

This module imports no tracker library and nothing of tuneforge but its errors: ``preflight`` reaches it
from the config.
"""
from __future__ import annotations

import importlib.util
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...errors import ConfigError

if TYPE_CHECKING:
    from ...config import TrainConfig

# Record fields that are not metrics: the step is the x axis, the time the timestamp.
NOT_METRICS = ("step", "time")
DEFAULT_PROJECT = "tuneforge"


@dataclass
class TrackerRun:
    """Where a tracker put the run: its id (to continue it on resume), a URL when it has one, the store it
    wrote to and the command that shows it. Saved in the run directory's ``trackers.json``."""

    id: str
    name: str
    project: str
    url: str | None = None
    location: str | None = None
    view: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class Tracker:
    """One experiment tracker. Subclasses set ``name``, ``package`` (the module imported) and ``extra`` (the
    ``tuneforge[...]`` extra that installs it), and implement ``start``, ``log`` and ``finish``."""

    name = ""
    package = ""
    extra = ""

    def __init__(self, cfg: TrainConfig, run_dir: Path):
        self.cfg, self.run_dir = cfg, Path(run_dir).resolve()

    # -- config time -------------------------------------------------------------------------
    @classmethod
    def pip_command(cls) -> str:
        return f"pip install 'tuneforge[{cls.extra}]'"

    @classmethod
    def check(cls, cfg: TrainConfig) -> None:
        """Refuse the config when this tracker cannot run here (missing package, nothing configured)."""
        if importlib.util.find_spec(cls.package) is None:
            raise ConfigError(f"report_to: {cls.name} needs the {cls.package} package, which is not installed. "
                              f"Install it with: {cls.pip_command()}  (or remove {cls.name} from report_to).")

    # -- rank 0, during the run --------------------------------------------------------------
    def start(self, config: dict[str, Any], resume_id: str | None) -> TrackerRun:
        """Open (or, with ``resume_id``, continue) the tracker's run and log the resolved config."""
        raise NotImplementedError

    def log(self, record: dict[str, Any], step: int) -> None:
        """One metrics.jsonl record: every numeric field under its own name."""
        raise NotImplementedError

    def finish(self, summary: dict[str, Any], output_dir: Path) -> None:
        """The run's summary and the output directory (as a reference; the weights with tracker_log_model)."""
        raise NotImplementedError

    def close(self) -> None:
        """The run stopped without ``finish`` (an error or a signal): release what ``start`` opened."""

    # -- shared by the trackers --------------------------------------------------------------
    def project(self, env_var: str | None = None) -> str:
        """tracker_project, else the tracker's own environment variable, else 'tuneforge'."""
        return self.cfg.tracker_project or (os.environ.get(env_var) if env_var else None) or DEFAULT_PROJECT

    def run_name(self) -> str:
        """run_name, else the output directory's name."""
        return self.cfg.run_name or self.run_dir.name


def metrics_of(record: dict[str, Any]) -> dict[str, float]:
    """The numeric fields of a record (booleans as 0/1; strings, lists and nulls are not metrics)."""
    found = {}
    for key, value in record.items():
        if key in NOT_METRICS or value is None:
            continue
        if isinstance(value, bool):
            found[key] = float(value)
        elif isinstance(value, (int, float)):
            found[key] = float(value)
    return found


def flat_params(config: dict[str, Any]) -> dict[str, str]:
    """The resolved config as flat string parameters (lists and mappings as compact JSON-like text)."""
    import json

    return {key: value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
            for key, value in config.items()}


def sanitize(name: str, allowed: str = r"[^\w./\- :]") -> str:
    """A metric name the tracker accepts: characters outside ``allowed`` become '_'."""
    return re.sub(allowed, "_", name)


def model_files(output_dir: Path) -> list[Path]:
    """What ``tracker_log_model`` uploads: the run's weights, tokenizer, configs and card, no checkpoints."""
    from ...rundir import RUN_FILES, SHARDED_WEIGHTS

    return [output_dir / name for name in RUN_FILES if (output_dir / name).is_file()] \
        + sorted(output_dir.glob(SHARDED_WEIGHTS))
