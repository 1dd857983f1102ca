"""The config's groups: each a dataclass of its own keys in a module of its own; ``TrainConfig`` is all of them.

A key belongs to exactly one group. Users never see the groups as nesting: YAML files, ``key=value`` overrides,
``cfg.<key>`` and saved configs are flat; the groups order the CLI help, the README table and the console's form.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from .data import DataArgs
from .distributed import DistributedArgs
from .dpo import DpoArgs
from .eval import EvalArgs
from .grpo import GrpoArgs
from .kto import KtoArgs
from .method import MethodArgs
from .model import ModelArgs
from .optimisation import OptimisationArgs
from .output import OutputArgs
from .reward import RewardArgs
from .tracking import TrackingArgs


@dataclass(frozen=True)
class Group:
    """One group: its name (console, tests), its dataclass; title and keys come from the dataclass."""
    name: str
    args: type

    @property
    def title(self) -> str:
        return (self.args.__doc__ or self.name).strip().splitlines()[0]

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(self.args))


# In the order of the CLI help and the README table: the strategy decides what the other keys mean.
GROUPS: tuple[Group, ...] = (
    Group("method", MethodArgs), Group("model", ModelArgs), Group("data", DataArgs),
    Group("optimisation", OptimisationArgs), Group("dpo", DpoArgs), Group("kto", KtoArgs), Group("reward", RewardArgs),
    Group("grpo", GrpoArgs), Group("evaluation", EvalArgs), Group("output", OutputArgs),
    Group("tracking", TrackingArgs), Group("distributed", DistributedArgs),
)

# The order keys are saved in (tuneforge_config.yaml, checkpoint manifests): the one flat class's order before the
# config was grouped, kept so a saved config reads, and compares line by line, as before. A key added later needs
# no entry here: it is saved after these, in group order.
SAVED_KEY_ORDER: tuple[str, ...] = (
    "training_strategy", "model", "adapter_name_or_path", "train_data", "validation_data", "validation_split",
    "output_dir", "overwrite_output_dir", "learning_rate", "num_train_epochs", "per_device_train_batch_size",
    "gradient_accumulation_steps", "effective_batch_size", "seq_length", "lora_dim", "lora_alpha", "dpo_beta",
    "load_in_4bit", "load_in_8bit", "apply_chat_template", "system_prompt", "lr_scheduler_type", "warmup_ratio",
    "weight_decay", "adam_beta1", "adam_beta2", "max_grad_norm", "max_steps", "seed", "lora_dropout",
    "lora_target_modules", "disable_dropout", "dpo_loss_type", "dpo_reference", "simpo_gamma", "kto_beta",
    "kto_desirable_weight", "kto_undesirable_weight", "reward_center_coefficient", "grpo_beta", "grpo_epsilon",
    "grpo_epsilon_high", "grpo_loss_type", "grpo_scale_rewards", "grpo_num_iterations", "num_generations",
    "max_completion_length", "temperature", "top_p", "top_k", "generation_batch_size", "use_vllm",
    "mask_truncated_completions", "reward_functions", "reward_weights", "logging_steps", "eval_steps", "save_steps",
    "save_total_limit", "early_stopping_patience", "metric_for_best_model", "eval_after_training",
    "eval_generation_steps", "eval_generation_rows", "mixed_precision", "memory_check", "gradient_checkpointing",
    "packing", "group_by_length", "trust_remote_code", "attn_implementation", "on_bad_rows", "data_cache_dir",
    "data_num_workers", "resume_from_checkpoint", "resume_ignore_config_changes", "max_consecutive_nonfinite_steps",
    "report_to", "run_name", "tracker_project", "tracker_log_model", "allow_pickle_weights", "fsdp", "deepspeed",
)


def group_of(key: str) -> Group:
    """The group a key belongs to (KeyError for an unknown key)."""
    for group in GROUPS:
        if key in group.keys:
            return group
    raise KeyError(key)
