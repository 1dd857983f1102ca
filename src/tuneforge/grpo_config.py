"""GRPO's cross-key checks, called from ``TrainConfig.validate`` (kept here so config.py stays small)."""
from __future__ import annotations

import math
import os

from .errors import ConfigError
from .rewards import check_entry

GRPO_BEST_METRICS = {"eval_reward", "eval_reward_sampled"}


def vllm_missing() -> bool:
    import importlib.util

    return importlib.util.find_spec("vllm") is None


def validate_grpo(cfg) -> None:
    """What a GRPO config must hold together; one ConfigError naming the key otherwise."""
    if not cfg.reward_functions:
        raise ConfigError("training_strategy=grpo needs reward_functions: e.g. [accuracy] (built in: accuracy, format, "
                          "exact_match, length; or path/to/file.py:function_name).")
    for entry in cfg.reward_functions:
        check_entry(entry)
        path = entry.rsplit(":", 1)[0]
        if ".py:" in entry and not os.path.isfile(path):  # imported only when the run starts; named here first
            raise ConfigError(f"reward_functions: {entry!r}: no such file {path!r}.")
    if cfg.reward_weights is not None and len(cfg.reward_weights) != len(cfg.reward_functions):
        raise ConfigError(f"reward_weights has {len(cfg.reward_weights)} values for {len(cfg.reward_functions)} "
                          "reward_functions: give one weight per function.")
    if cfg.reward_weights is not None and not all(math.isfinite(w) for w in cfg.reward_weights):
        raise ConfigError(f"reward_weights={cfg.reward_weights}: every weight must be a finite number.")
    if cfg.max_completion_length >= cfg.seq_length:
        raise ConfigError(f"max_completion_length={cfg.max_completion_length} must be below seq_length="
                          f"{cfg.seq_length} (prompt and completion share seq_length).")
    if cfg.use_vllm:
        raise ConfigError("use_vllm=true: " + ("vLLM is not installed (pip install vllm, on a GPU machine)."
                          if vllm_missing() else "rollouts through vLLM are not implemented yet; "
                          "the built-in key/value-cache sampler is used with use_vllm: false."))
    unsupported = {"per_device_train_batch_size": cfg.per_device_train_batch_size == "auto", "packing": cfg.packing,
                   "fsdp": bool(cfg.fsdp), "deepspeed": bool(cfg.deepspeed)}
    for key, bad in unsupported.items():
        if bad:
            raise ConfigError(f"{key}={getattr(cfg, key)!r} is not available with training_strategy=grpo yet "
                              "(rollouts sample from the unsharded model one micro-batch of prompts at a time).")
    if cfg.metric_for_best_model == "eval_loss":  # the shared default: GRPO has no validation loss
        cfg.metric_for_best_model = "eval_reward"
    if cfg.metric_for_best_model not in GRPO_BEST_METRICS:
        raise ConfigError(f"metric_for_best_model={cfg.metric_for_best_model!r}: for training_strategy='grpo' use one "
                          f"of {sorted(GRPO_BEST_METRICS)}.")


def reward_paths_relative_to(raw: dict, base) -> None:
    """``path/file.py:name`` entries of ``reward_functions`` written relative to the config file, as data paths
    are (an entry that exists from the working directory is left as it is)."""
    from pathlib import Path

    entries = raw.get("reward_functions")
    if not isinstance(entries, list):
        return
    fixed = []
    for entry in entries:
        if isinstance(entry, str) and ".py:" in entry:
            path, name = entry.rsplit(":", 1)
            if not Path(path).is_absolute() and not Path(path).exists() and (Path(base) / path).is_file():
                entry = f"{os.path.normpath(Path(base) / path)}:{name}"
        fixed.append(entry)
    raw["reward_functions"] = fixed
