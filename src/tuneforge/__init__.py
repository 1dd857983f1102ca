"""tuneforge: supervised fine-tuning and DPO for causal language models (full, LoRA, QLoRA)."""
from __future__ import annotations

from typing import Any

__version__ = "0.1.0"


def run_config(config: Any = None, overrides: list[str] | None = None, *, progress: bool = True, **kwargs: Any):
    """Run one training job, exactly as ``tuneforge train`` does; returns a ``RunSummary``.

    ``config`` is a YAML/JSON path, a mapping of keys, a ``TrainConfig``, or None (keys as kwargs);
    ``overrides`` (``key=value`` strings) and then kwargs change its keys.
    """
    from .config import TrainConfig, from_dict, load_config, parse_override
    from .train_command import run_and_evaluate  # the run and its after-training hook, as the command runs them

    if isinstance(config, (TrainConfig, dict)):
        raw = config.to_dict() if isinstance(config, TrainConfig) else dict(config)
        raw.update(parse_override(item) for item in overrides or [])
        cfg = config if isinstance(config, TrainConfig) and not (overrides or kwargs) else from_dict({**raw, **kwargs})
    else:
        cfg = load_config(config, overrides, **kwargs)
    return run_and_evaluate(cfg, progress=progress, keep_model=True)  # summary.model: the trained model


train = run_config  # the documented name

__all__ = ["train", "run_config", "__version__"]
