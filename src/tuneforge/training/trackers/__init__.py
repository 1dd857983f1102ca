"""Experiment trackers: ``report_to: [tensorboard, mlflow, wandb, trackio]`` (or ``none``).

Each tracker is one module here registering a ``base.Tracker`` subclass in ``TRACKERS`` under its
``report_to`` name; ``manager.TrackerSet`` runs the configured ones on rank 0 and keeps their failures
away from training. To add a tracker: write ``<name>.py`` with a ``Tracker`` subclass, add it to
``_MODULES`` below and an optional extra of the same name to pyproject.toml.

Only this package's registry and checks are imported at config time; a tracker's library is imported
when its run starts.
"""
from __future__ import annotations

import difflib
import importlib
from typing import TYPE_CHECKING, Any

from ...errors import ConfigError
from .base import Tracker, TrackerRun

if TYPE_CHECKING:
    from ...config import TrainConfig

__all__ = ["TRACKERS", "Tracker", "TrackerRun", "check_config", "tracker_names", "tracker_class"]

# report_to name -> module in this package defining it (imported on use: each module is small, but its
# tracker's library is not, and is imported by the tracker only when a run starts).
_MODULES = {"tensorboard": "tensorboard", "mlflow": "mlflow", "wandb": "wandb", "trackio": "trackio"}
TRACKERS: tuple[str, ...] = tuple(_MODULES)
NONE = "none"


def tracker_class(name: str) -> type[Tracker]:
    """The registered ``Tracker`` subclass for a report_to name."""
    module = importlib.import_module(f"{__name__}.{_MODULES[name]}")
    return module.TRACKER


def tracker_names(report_to: Any) -> list[str]:
    """The trackers a report_to value names, in order, without 'none' (a string is one name or a
    comma-separated list, as on the command line)."""
    if report_to is None:
        return []
    items = [v.strip() for v in report_to.split(",")] if isinstance(report_to, str) else list(report_to)
    names: list[str] = []
    for item in items:
        if item and item != NONE and item not in names:
            names.append(item)
    return names


def check_names(report_to: Any) -> None:
    """Refuse an unknown tracker name, and 'none' together with a tracker."""
    items = [report_to] if isinstance(report_to, str) else list(report_to or [])
    items = [v.strip() for item in items for v in str(item).split(",") if v.strip()]
    for item in items:
        if item != NONE and item not in _MODULES:
            hint = difflib.get_close_matches(item, list(_MODULES) + [NONE], n=1)
            raise ConfigError(f"report_to: unknown tracker {item!r}" + (f" (did you mean {hint[0]!r}?)" if hint else "")
                              + f"; choose from {', '.join((NONE,) + TRACKERS)}.")
    if NONE in items and len(set(items)) > 1:
        raise ConfigError(f"report_to={items!r}: 'none' together with a tracker; give the trackers, or only none.")


def check_config(cfg: TrainConfig) -> None:
    """Config time: known names, each tracker's package installed and its settings safe (nothing is sent
    anywhere the user did not configure)."""
    check_names(cfg.report_to)
    for name in tracker_names(cfg.report_to):
        tracker_class(name).check(cfg)
