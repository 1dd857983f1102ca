"""``TrainConfig``: every group's keys in one flat dataclass (``cfg.<key>``), and the checks across keys."""
from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError
from .data import DataArgs
from .distributed import DistributedArgs
from .dpo import DpoArgs
from .eval import BEST_METRICS, PREFERENCE_BEST_METRICS, EvalArgs
from .grpo import GrpoArgs, validate_grpo
from .groups import SAVED_KEY_ORDER
from .kto import KtoArgs
from .method import MethodArgs
from .model import BUILTIN_MODEL, ModelArgs
from .optimisation import OptimisationArgs
from .output import OutputArgs
from .reward import RewardArgs
from .tracking import TrackingArgs
from .values import KeyType, read_annotation, show


# A dataclass collects its fields base-most first, so the bases are the groups (groups.GROUPS) last to first:
# fields() lists the keys group by group. A test keeps the two orders the same.
@dataclass
class TrainConfig(DistributedArgs, TrackingArgs, OutputArgs, EvalArgs, GrpoArgs, RewardArgs, KtoArgs, DpoArgs,
                  OptimisationArgs, DataArgs, ModelArgs, MethodArgs):
    """The run configuration: one typed field per key, its help text doubles as CLI help.

    Keys use the names of the cloud fine-tuning service the project follows (``learning_rate``, ``lora_dim``,
    ``seq_length`` ...), so users can paste their hyperparameters unchanged. Each key is declared in its group's
    module (``config/groups.py``); derived values (``method``, ``resolved_lora_alpha`` ...) live with their group.
    """

    def to_dict(self) -> dict[str, Any]:
        """Every key and value, in the order configs are saved in (``groups.SAVED_KEY_ORDER``)."""
        values = dataclasses.asdict(self)
        return {**{k: values.pop(k) for k in SAVED_KEY_ORDER if k in values}, **values}

    def validate(self) -> "TrainConfig":
        """Cross-field checks; single-field types and ranges are checked when the config is built, the files
        and packages the config names by ``preflight.check`` after this (both run by ``from_dict``)."""
        if self.load_in_4bit and self.load_in_8bit:
            raise ConfigError("load_in_4bit=true and load_in_8bit=true: choose one quantization.")
        if self.quantized and self.is_full:
            raise ConfigError(
                "load_in_4bit/load_in_8bit with lora_dim=0: quantized weights cannot be trained directly. "
                "Set lora_dim > 0 (QLoRA) or turn quantization off for full-parameter training.")
        if self.validation_data and self.validation_split > 0:
            raise ConfigError("validation_data and validation_split are both set: use one.")
        if not self.train_data:
            raise ConfigError("train_data is not set: give a JSON/JSONL file of training rows.")
        if not self.model.strip():
            raise ConfigError(f"model={show(self.model)}: empty; give a model directory, a hub id, a gallery id "
                              f"or {BUILTIN_MODEL!r}.")
        if self.adapter_name_or_path and self.is_full:
            raise ConfigError("adapter_name_or_path needs lora_dim > 0 (the adapter is trained further).")
        if self.training_strategy == "grpo":
            validate_grpo(self)  # grpo.py; it also picks eval_reward for the default metric_for_best_model
        allowed_best = BEST_METRICS.get(self.training_strategy, PREFERENCE_BEST_METRICS)
        if self.metric_for_best_model not in allowed_best:
            raise ConfigError(
                f"metric_for_best_model={self.metric_for_best_model!r}: for "
                f"training_strategy={self.training_strategy!r} use one of {sorted(allowed_best)}.")
        if self.eval_generation_steps and self.training_strategy not in ("sft", "dpo"):
            raise ConfigError(f"eval_generation_steps={self.eval_generation_steps}: answers are scored against the "
                              f"references of SFT or DPO rows, not training_strategy={self.training_strategy!r}.")
        if self.eval_generation_steps and not (self.validation_data or self.validation_split):
            raise ConfigError(f"eval_generation_steps={self.eval_generation_steps} needs a validation set: set "
                              "validation_data or validation_split.")
        if self.training_strategy == "reward" and self.adapter_name_or_path:
            raise ConfigError("adapter_name_or_path with training_strategy='reward': a reward model is trained from "
                              "a model directory; merge the adapter first (tuneforge merge RUN --out DIR) and set "
                              "model: DIR.")
        if self.training_strategy == "reward" and self.packing:
            raise ConfigError("packing=true with training_strategy='reward': a reward model scores each sequence at "
                              "its last token, so rows cannot share a sequence; set packing: false.")
        if not self.lora_target_modules:
            raise ConfigError("lora_target_modules is empty: name at least one module, or 'all-linear'.")
        return self


FIELDS: dict[str, dataclasses.Field] = {f.name: f for f in dataclasses.fields(TrainConfig)}
KEY_TYPES: dict[str, KeyType] = {k: read_annotation(tp) for k, tp in typing.get_type_hints(TrainConfig).items()}
