"""The model gallery: known base models with their architecture numbers, chat template and recommended
hyperparameters (data: ``models.yaml``), and the memory planner built on ``tuneforge.models.memory``.

Stable API (the task service and the console call it): ``entries()``, ``get(id)``, ``GalleryEntry.to_dict()``,
``recommended_config(id, strategy, method)``, ``plan(...)`` (in ``planner``).
"""
from __future__ import annotations

from ..models.catalog import (METHODS, STRATEGIES, GalleryEntry, GalleryError, close_matches, entries, find, get,
                      recommended_config)

__all__ = ["METHODS", "STRATEGIES", "GalleryEntry", "GalleryError", "close_matches", "entries", "find", "get",
           "recommended_config", "plan"]


def plan(*args, **kwargs):
    """See ``tuneforge.gallery.planner.plan`` (imported on use: it pulls in torch)."""
    from .planner import plan as _plan

    return _plan(*args, **kwargs)
