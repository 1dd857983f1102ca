"""tuneforge: supervised fine-tuning and DPO for causal language models (full, LoRA, QLoRA)."""
from __future__ import annotations

import os
from typing import Any

__version__ = "0.1.0"


def run_config(config: Any = None, overrides: list[str] | None = None, *, progress: bool = True, **kwargs: Any):
    """Run one training job, exactly as ``tuneforge train`` does; returns a ``RunSummary``.

    ``config`` is a YAML/JSON path, a mapping of keys, a ``TrainConfig``, or None (keys as kwargs).
    """
    from .config import TrainConfig, from_dict, load_config
    from .training.run import run_training

    if isinstance(config, TrainConfig):
        cfg = config if not (overrides or kwargs) else from_dict({**config.to_dict(), **kwargs})
    elif isinstance(config, dict):
        cfg = from_dict({**config, **kwargs})
    else:
        cfg = load_config(config, overrides, **kwargs)
    from .evaluation.during_training import generation_hook  # eval_generation_steps (the engine never imports it)

    summary = run_training(cfg, progress=progress, step_hooks=[generation_hook])
    if cfg.eval_after_training and os.environ.get("RANK", "0") == "0":  # the command layer evaluates, not the engine
        from .evaluation.after_training import evaluate_after_training

        evaluate_after_training(cfg)  # results: output_dir/eval/validation/
    return summary


train = run_config  # the documented name

__all__ = ["train", "run_config", "__version__"]
