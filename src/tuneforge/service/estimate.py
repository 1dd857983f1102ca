"""The memory estimate shown while a task is being written (POST /api/tasks/validate): the engine's own
``tuneforge.models.memory.estimate`` on the model's architecture numbers, without loading any weights."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ..config import TrainConfig
from . import preimport


def _model_config(name: str) -> Any | None:
    if name.startswith("builtin:"):
        from ..models.builtin import toy_config, toy_tokenizer

        return toy_config(len(toy_tokenizer()))
    try:
        from ..gallery import find

        entry = find(name)
        if entry is not None:
            return entry.hf_config()
    except ImportError:
        pass
    if (Path(name) / "config.json").is_file():
        from transformers import AutoConfig

        return AutoConfig.from_pretrained(name, local_files_only=True)
    return None  # a hub id not in the gallery: no download just for an estimate


def memory_estimate(cfg: TrainConfig, gpus: int) -> dict[str, Any] | None:
    """GiB per part and in total for one device, or None when the model's shape is not known here."""
    try:
        preimport.ensure()  # a first estimate racing a first preview must not see half-imported modules
        from ..models.memory import ModelShape, estimate

        model_config = _model_config(cfg.model)
        if model_config is None:
            return None
        device = "cuda" if gpus > 0 else "cpu"
        mixed = "no" if device == "cpu" or cfg.mixed_precision == "no" else (
            "fp16" if cfg.mixed_precision == "fp16" else "bf16")
        result = estimate(cfg, ModelShape.from_config(model_config), device, mixed)
        return {"device": device, "mixed_precision": mixed, "unit": "GiB", **result.parts_gib()}
    except Exception:  # an estimate is a convenience: a model it cannot read must not refuse the task
        return None
