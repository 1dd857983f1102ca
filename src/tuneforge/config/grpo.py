"""GRPO, online RL: its keys, and its cross-key checks called from ``TrainConfig.validate``."""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Optional

from ..errors import ConfigError
from ..rewards import check_entry
from .keys import config_key

GRPO_BEST_METRICS = {"eval_reward", "eval_reward_sampled"}


@dataclass
class GrpoArgs:
    """GRPO, online RL (training_strategy: grpo; the defaults are TRL 1.16's GRPOConfig's)."""

    grpo_beta: float = config_key(
        0.0, "GRPO KL coefficient to the reference (LoRA: the adapter switched off; full: a frozen copy). 0 = no "
        "reference pass (TRL's default; DeepSeek-R1 used 0.001).", lo=0.0, hi=100.0)
    grpo_epsilon: float = config_key(
        0.2, "GRPO lower clipping bound of the importance ratio (1 - epsilon).", lo=0.0, lo_open=True, hi=1.0)
    grpo_epsilon_high: Optional[float] = config_key(
        None, "GRPO upper clipping bound (1 + epsilon_high; DAPO's clip-higher recommends 0.28). Default: "
        "grpo_epsilon.", lo=0.0, lo_open=True, hi=10.0)
    grpo_loss_type: Literal["grpo", "bnpo", "dr_grpo", "dapo"] = config_key(
        "dapo", "GRPO loss normalisation: grpo (per-completion mean, then mean), bnpo (token mean per micro-batch), "
        "dr_grpo (sum / (completions x max_completion_length)), dapo (token mean over the step).")
    grpo_scale_rewards: Literal["group", "batch", "none"] = config_key(
        "group", "Advantage = reward - group mean, divided by the group's std (group), the step's std (batch) or not "
        "at all (none, Dr. GRPO).")
    grpo_num_iterations: int = config_key(
        1, "Optimizer steps per batch of rollouts (mu): later steps reuse the completions with their sampling-time "
        "log-probs.", lo=1, hi=64)
    num_generations: int = config_key(
        8, "Completions sampled per prompt (the group size G); per_device_train_batch_size counts prompts.",
        lo=2, hi=1024)
    max_completion_length: int = config_key(
        512, "Most tokens sampled per completion (GRPO); prompts keep their last seq_length - this tokens.",
        lo=1, hi=1 << 20)
    temperature: float = config_key(
        1.0, "Sampling temperature of the rollouts (the log-probs are taken at the same temperature).",
        lo=0.0, lo_open=True, hi=100.0)
    top_p: float = config_key(
        1.0, "Nucleus sampling of the rollouts: keep the most likely tokens up to this probability mass.",
        lo=0.0, lo_open=True, hi=1.0)
    top_k: int = config_key(0, "Sample the rollouts from the k most likely tokens only (0 = all).", lo=0, hi=1 << 24)
    generation_batch_size: Optional[int] = config_key(
        None, "Completions sampled together (rows of the key/value-cache sampler). Default: a whole micro-batch "
        "(prompts x num_generations).", lo=1, hi=1 << 20)
    use_vllm: bool = config_key(
        False, "Sample the rollouts with vLLM (GPU). Not available yet: refused with a message.")
    mask_truncated_completions: bool = config_key(
        False, "Leave completions that hit max_completion_length without ending out of the loss (DAPO).")
    reward_functions: list[str] = config_key(
        [], "GRPO rewards, summed with reward_weights: accuracy (final answer vs the 'answer'/'solution' column), "
        "format[:REGEX], exact_match[:COLUMN], length[:CHARS], or path/to/file.py:function_name (your "
        "function(prompts, completions, **columns) -> list of float or None).")
    reward_weights: Optional[list[float]] = config_key(None, "One weight per reward function (default: 1 each).")

    @property
    def resolved_grpo_epsilon_high(self) -> float:
        return self.grpo_epsilon_high if self.grpo_epsilon_high is not None else self.grpo_epsilon


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
