"""The run configuration: one typed field per key, its help text doubles as CLI help.

Keys use the names of the cloud fine-tuning service the project follows (``learning_rate``,
``lora_dim``, ``seq_length`` ...), so users can paste their hyperparameters unchanged.
Everything is validated here, before any model or data is loaded.
"""
from __future__ import annotations

import dataclasses
import difflib
import json
import math
import os
import reprlib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional, Union

import yaml

from . import preflight
from .errors import ConfigError
from .grpo_config import GRPO_BEST_METRICS, reward_paths_relative_to, validate_grpo
from .pathtext import path_text_problem, text_problem
from .preference_losses import PREFERENCE_LOSSES

BUILTIN_MODEL = "builtin:toy"
# dpo_loss_type's allowed values: the registered preference losses (preference_losses.py).
PreferenceLossName = Literal[tuple(PREFERENCE_LOSSES)]

# Upper bounds of keys whose field declares none: beyond them a value is a typo or hostile, and would end in
# an overflow deep inside a library or a run without end. Any other integer key is capped at INT_MAX.
UPPER_BOUNDS: dict[str, float] = {
    "per_device_train_batch_size": 65536, "gradient_accumulation_steps": 65536, "effective_batch_size": 1 << 24,
    "seq_length": 1 << 20, "max_steps": 10 ** 9, "seed": 2 ** 32 - 1, "lora_alpha": 1e5, "max_grad_norm": 1e6,
    "simpo_gamma": 100.0, "logging_steps": 10 ** 9, "eval_steps": 10 ** 9, "save_steps": 10 ** 9,
    "save_total_limit": 10 ** 6, "early_stopping_patience": 10 ** 6, "max_consecutive_nonfinite_steps": 10 ** 6,
    "data_num_workers": 1024,
}
INT_MAX = 2 ** 31 - 1

# Values in error messages are shortened: a YAML alias "bomb" (a few lines that reference each other into
# billions of elements) must be refused without being expanded into text.
_SHORT = reprlib.Repr()
_SHORT.maxlevel, _SHORT.maxlist, _SHORT.maxdict, _SHORT.maxstring, _SHORT.maxother = 2, 4, 4, 80, 80


def show(value: Any) -> str:
    """A bounded repr of a config value, for messages."""
    return _SHORT.repr(value)

_UNSET = object()


def config_key(default: Any, help: str, *, lo: float | None = None, hi: float | None = None,
               lo_open: bool = False) -> Any:
    """A config field with its help text and optional numeric bounds (lo inclusive unless lo_open)."""
    meta = {"help": help, "lo": lo, "hi": hi, "lo_open": lo_open}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=meta)
    return field(default=default, metadata=meta)


# metric_for_best_model's allowed values per strategy (others: the preference metrics below in validate()).
BEST_METRICS: dict[str, set[str]] = {
    "sft": {"eval_loss", "eval_token_accuracy"},
    "pretrain": {"eval_loss", "eval_token_accuracy"},
    "kto": {"eval_loss", "eval_rewards/desirable", "eval_rewards/margins"},
    "reward": {"eval_loss", "eval_accuracy", "eval_margin"},
    "grpo": GRPO_BEST_METRICS,
}


@dataclass
class TrainConfig:
    # --- what to train -------------------------------------------------------------------------
    training_strategy: Literal["sft", "dpo", "kto", "pretrain", "reward", "grpo"] = config_key("sft", "Training stage: 'sft' (supervised fine-tuning), 'dpo' (preference optimization), 'kto' (thumbs-up/down feedback: prompt, completion, label), 'pretrain' (continued pre-training on raw text), 'reward' (a reward model: the base with a scalar head, Bradley-Terry on preference pairs), 'grpo' (online RL: sampled completions scored by reward_functions).")
    model: str = config_key(BUILTIN_MODEL, "Base model: a local Hugging Face model directory, a hub id, or 'builtin:toy' (a tiny random-init toy model for trying the pipeline offline; it learns nothing useful).")
    adapter_name_or_path: Optional[str] = config_key(None, "Start from this LoRA adapter (e.g. an SFT run's output_dir). For DPO the adapter is also the frozen reference.")
    train_data: Optional[Union[str, list[str]]] = config_key(None, "Training data: a file (JSON array, JSONL, CSV, Parquet), a directory of such shards or a saved Hugging Face dataset; or a list of them to mix, each a path or {path, weight, max_rows} (weight: rows taken per epoch as a multiple of the source's rows, e.g. 0.3 or 2; max_rows: only its first rows). Row formats are detected per file.")
    validation_data: Optional[str] = config_key(None, "Validation data file (same formats). Alternative to validation_split.")
    validation_split: float = config_key(0.0, "Fraction of train_data held out for validation when validation_data is not given (0 = none).", lo=0.0, hi=0.5)
    output_dir: str = config_key("runs/tuneforge-run", "Where the adapter/model, tokenizer, resolved config, metrics.jsonl and checkpoints are written.")
    overwrite_output_dir: bool = config_key(False, "Start over in output_dir: remove what an earlier tuneforge run wrote there. Without it an unfinished run in output_dir is resumed and a finished one refused; a directory that is not a tuneforge run is always refused (docs/reliability.md).")
    # --- the service's hyperparameters ----------------------------------------------------------
    learning_rate: float = config_key(1e-4, "Peak learning rate of AdamW.", lo=0.0, hi=1.0, lo_open=True)
    num_train_epochs: float = config_key(3.0, "Passes over the training data (2-10 is the usual range for fine-tuning; stop when validation stops improving).", lo=0.0, lo_open=True, hi=1000)
    per_device_train_batch_size: Union[int, Literal["auto"]] = config_key(4, "Rows per device per micro-batch, or 'auto': the largest that fits memory, found by trying a forward+backward on the longest rows (halving from 64), with gradient_accumulation_steps adjusted to keep effective_batch_size.", lo=1)
    gradient_accumulation_steps: int = config_key(1, "Micro-batches per optimizer step: effective batch = batch size x this x processes.", lo=1)
    effective_batch_size: Optional[int] = config_key(None, "Rows per optimizer step over all processes. When set, gradient_accumulation_steps is derived from it (= this / (batch size x processes)). Default: per_device_train_batch_size x gradient_accumulation_steps x processes.", lo=1)
    seq_length: int = config_key(1024, "Maximum tokens of one sample (SFT: system+instruction+output; DPO: each of prompt+chosen and prompt+rejected). Longer rows are truncated.", lo=8)
    lora_dim: int = config_key(32, "LoRA rank. 0 = full-parameter training.", lo=0, hi=4096)
    lora_alpha: Optional[float] = config_key(None, "LoRA scaling alpha (typically 0.5-2x lora_dim). Default: 2 x lora_dim.", lo=0.0, lo_open=True)
    dpo_beta: float = config_key(0.1, "DPO beta: higher keeps the policy closer to the reference. Ignored for SFT.", lo=0.0, lo_open=True, hi=100.0)
    load_in_4bit: bool = config_key(False, "QLoRA: load the base model in 4-bit NF4 (double quantization) through bitsandbytes.")
    load_in_8bit: bool = config_key(False, "QLoRA: load the base model in 8-bit through bitsandbytes.")
    apply_chat_template: bool = config_key(True, "true: render rows with the tokenizer's chat template; false: plain concatenation, the data carries its own special tokens.")
    system_prompt: Optional[str] = config_key(None, "System message for rows that have none; replaces a chat template's built-in default system prompt.")
    # --- optimisation ---------------------------------------------------------------------------
    lr_scheduler_type: Literal["cosine", "linear", "constant"] = config_key("cosine", "Learning-rate decay after warmup.")
    warmup_ratio: float = config_key(0.03, "Fraction of optimizer steps spent warming the learning rate up linearly from 0.", lo=0.0, hi=0.5)
    weight_decay: float = config_key(0.0, "AdamW weight decay (not applied to biases and norms).", lo=0.0, hi=1.0)
    adam_beta1: float = config_key(0.9, "AdamW beta1.", lo=0.0, hi=1.0)
    adam_beta2: float = config_key(0.999, "AdamW beta2.", lo=0.0, hi=1.0)
    max_grad_norm: float = config_key(1.0, "Clip the global gradient norm to this (0 = no clipping).", lo=0.0)
    max_steps: int = config_key(-1, "Stop after this many optimizer steps (-1 = run num_train_epochs).", lo=-1)
    seed: int = config_key(42, "Random seed for initialisation, data order and dropout.", lo=0)
    # --- LoRA -----------------------------------------------------------------------------------
    lora_dropout: float = config_key(0.05, "Dropout on the LoRA input.", lo=0.0, hi=0.9)
    lora_target_modules: list[str] = config_key(["q_proj", "k_proj", "v_proj", "o_proj"], "Modules that get LoRA adapters (default: the 4 attention projections; 'all-linear' for every linear layer).")
    disable_dropout: Optional[bool] = config_key(None, "Turn every dropout (LoRA's included) off while training. Default: on for DPO and KTO, as the DPO authors and TRL do (the policy's log-probs are compared with the dropout-free reference's, so dropout would only add noise to the loss); off for SFT.")
    # --- DPO ------------------------------------------------------------------------------------
    dpo_loss_type: PreferenceLossName = config_key("sigmoid", "Preference loss: sigmoid (the DPO paper's loss), ipo, hinge, or the reference-free simpo and orpo.")
    dpo_reference: Literal["precompute", "copy"] = config_key("precompute", "Full-parameter DPO reference: log-probs precomputed in one pass before training, or a frozen model copy.")
    simpo_gamma: float = config_key(0.5, "SimPO target reward margin (gamma/beta ratio x beta).", lo=0.0)
    # --- KTO ------------------------------------------------------------------------------------
    kto_beta: float = config_key(0.1, "KTO beta: scales the implied reward log(policy/reference); higher keeps the policy closer to the reference.", lo=0.0, lo_open=True, hi=100.0)
    kto_desirable_weight: float = config_key(1.0, "KTO weight of the desirable (label true) rows' loss. With more undesirable than desirable rows, raise it so weight x desirable rows is 1 to 1.33 x undesirable weight x undesirable rows (the KTO paper's range; a warning gives the numbers).", lo=0.0, lo_open=True, hi=100.0)
    kto_undesirable_weight: float = config_key(1.0, "KTO weight of the undesirable (label false) rows' loss (see kto_desirable_weight).", lo=0.0, lo_open=True, hi=100.0)
    # --- reward model ---------------------------------------------------------------------------
    reward_center_coefficient: Optional[float] = config_key(None, "Reward model: add this x (chosen reward + rejected reward)^2 to each pair's loss, keeping rewards centred on 0 (Eisenstein et al. 2023; 0.01 is usual). null = off.", lo=0.0, hi=100.0)
    # --- GRPO (README: GRPO; defaults as TRL 1.16's GRPOConfig) ----------------------------------
    grpo_beta: float = config_key(0.0, "GRPO KL coefficient to the reference (LoRA: the adapter switched off; full: a frozen copy). 0 = no reference pass (TRL's default; DeepSeek-R1 used 0.001).", lo=0.0, hi=100.0)
    grpo_epsilon: float = config_key(0.2, "GRPO lower clipping bound of the importance ratio (1 - epsilon).", lo=0.0, lo_open=True, hi=1.0)
    grpo_epsilon_high: Optional[float] = config_key(None, "GRPO upper clipping bound (1 + epsilon_high; DAPO's clip-higher recommends 0.28). Default: grpo_epsilon.", lo=0.0, lo_open=True, hi=10.0)
    grpo_loss_type: Literal["grpo", "bnpo", "dr_grpo", "dapo"] = config_key("dapo", "GRPO loss normalisation: grpo (per-completion mean, then mean), bnpo (token mean per micro-batch), dr_grpo (sum / (completions x max_completion_length)), dapo (token mean over the step).")
    grpo_scale_rewards: Literal["group", "batch", "none"] = config_key("group", "Advantage = reward - group mean, divided by the group's std (group), the step's std (batch) or not at all (none, Dr. GRPO).")
    grpo_num_iterations: int = config_key(1, "Optimizer steps per batch of rollouts (mu): later steps reuse the completions with their sampling-time log-probs.", lo=1, hi=64)
    num_generations: int = config_key(8, "Completions sampled per prompt (the group size G); per_device_train_batch_size counts prompts.", lo=2, hi=1024)
    max_completion_length: int = config_key(512, "Most tokens sampled per completion (GRPO); prompts keep their last seq_length - this tokens.", lo=1, hi=1 << 20)
    temperature: float = config_key(1.0, "Sampling temperature of the rollouts (the log-probs are taken at the same temperature).", lo=0.0, lo_open=True, hi=100.0)
    top_p: float = config_key(1.0, "Nucleus sampling of the rollouts: keep the most likely tokens up to this probability mass.", lo=0.0, lo_open=True, hi=1.0)
    top_k: int = config_key(0, "Sample the rollouts from the k most likely tokens only (0 = all).", lo=0, hi=1 << 24)
    generation_batch_size: Optional[int] = config_key(None, "Completions sampled together (rows of the key/value-cache sampler). Default: a whole micro-batch (prompts x num_generations).", lo=1, hi=1 << 20)
    use_vllm: bool = config_key(False, "Sample the rollouts with vLLM (GPU). Not available yet: refused with a message.")
    mask_truncated_completions: bool = config_key(False, "Leave completions that hit max_completion_length without ending out of the loss (DAPO).")
    reward_functions: list[str] = config_key([], "GRPO rewards, summed with reward_weights: accuracy (final answer vs the 'answer'/'solution' column), format[:REGEX], exact_match[:COLUMN], length[:CHARS], or path/to/file.py:function_name (your function(prompts, completions, **columns) -> list of float or None).")
    reward_weights: Optional[list[float]] = config_key(None, "One weight per reward function (default: 1 each).")
    # --- evaluation, logging, saving ------------------------------------------------------------
    logging_steps: int = config_key(10, "Log training metrics every this many optimizer steps.", lo=1)
    eval_steps: int = config_key(50, "Evaluate every this many optimizer steps (0 = only at each epoch end).", lo=0)
    save_steps: int = config_key(0, "Save a resumable checkpoint every this many optimizer steps (0 = only at epoch ends; -1 = never: the run cannot be resumed, its final output and best model are still saved).", lo=-1)
    save_total_limit: int = config_key(2, "Checkpoints kept besides the best one.", lo=1)
    early_stopping_patience: int = config_key(0, "Stop after this many evaluations without improvement of metric_for_best_model (0 = never).", lo=0)
    metric_for_best_model: str = config_key("eval_loss", "Metric that picks the best checkpoint and drives early stopping: eval_loss, eval_token_accuracy (SFT, pretrain), eval_rewards/accuracies (DPO), eval_rewards/desirable (KTO) or eval_reward / eval_reward_sampled (GRPO; eval_loss there means eval_reward).")
    eval_after_training: bool = config_key(False, "After the run: greedy answers to the validation set scored with exact match, BLEU, ROUGE-L and chrF (as 'tuneforge eval' does), written to output_dir/eval/validation/ next to metrics.jsonl.")
    eval_generation_steps: int = config_key(0, "Every this many optimizer steps and at the last one (0 = never): greedy answers (at most max_completion_length new tokens) to the first eval_generation_rows validation prompts, scored against their references; logged to metrics.jsonl as eval_generation_bleu and eval_generation_rouge_l, the answers to generations.jsonl. SFT and DPO; one process.", lo=0)
    eval_generation_rows: int = config_key(4, "How many validation rows eval_generation_steps answers (the first ones of the validation set).", lo=1, hi=10000)
    # --- runtime --------------------------------------------------------------------------------
    mixed_precision: Literal["auto", "bf16", "fp16", "no"] = config_key("auto", "auto = bf16 on GPUs that support it, fp32 on CPU.")
    memory_check: bool = config_key(True, "Refuse to start when the memory estimate (every row seq_length tokens long) exceeds the device's total memory (one GPU's, or host RAM on a CPU), naming the ways that fit; false starts anyway.")
    gradient_checkpointing: Union[bool, Literal["auto"]] = config_key(False, "Recompute activations in the backward pass: less memory, ~30% slower. 'auto' = on only when the memory estimate says the run would not fit without it.")
    packing: bool = config_key(False, "Concatenate the rows of a micro-batch (SFT rows; DPO chosen and rejected rows) into one sequence without padding (attention never crosses rows). Off by default: with SDPA the packed rows need a dense block mask, which measured slower on CPU than length-grouped padded batches; worth it on GPU with attn_implementation flash_attention_2 or flex_attention.")
    group_by_length: bool = config_key(True, "Without packing: fill each step with rows of similar length (seeded megabatches sorted by length), so little compute goes to padding.")
    trust_remote_code: bool = config_key(False, "Allow model code shipped with the model repository to run.")
    attn_implementation: Literal["sdpa", "eager", "flash_attention_2", "flex_attention"] = config_key("sdpa", "Attention kernel passed to transformers.")
    on_bad_rows: Literal["error", "skip"] = config_key("error", "A malformed data row stops the run before training (error) or is dropped and counted (skip).")
    data_cache_dir: Optional[str] = config_key(None, "Directory of the tokenized data cache (default: $TUNEFORGE_DATA_CACHE, else ~/.cache/tuneforge/data). Rows are tokenized once per data content and encoding settings, then memory-mapped by every run and process; 'tuneforge cache ls|clear' manages it.")
    data_num_workers: Optional[int] = config_key(None, "Processes that tokenize the data when its cache entry is built (default: the CPU cores available). The result is identical for any number.", lo=1)
    resume_from_checkpoint: Optional[str] = config_key(None, "'auto' = continue from the last complete checkpoint in output_dir (start fresh when there is none); or a checkpoint path. Unset, an unfinished run in output_dir is resumed too: rerun the same command after a crash or Ctrl-C to continue exactly where the run stopped.")
    resume_ignore_config_changes: bool = config_key(False, "Resume even when keys that define the run (model, lora_dim, seq_length, data, batch geometry ...) differ from the checkpoint's. The continued run is then not the same run.")
    max_consecutive_nonfinite_steps: int = config_key(5, "A step whose loss or gradient norm is NaN/inf is skipped (weights and optimizer untouched); this many in a row stop the run (exit code 3).", lo=1)
    report_to: list[str] = config_key(["none"], "Experiment trackers that get the run besides metrics.jsonl: a list of tensorboard, mlflow, wandb, trackio, or none. Each needs its extra (pip install 'tuneforge[mlflow]' ...); settings come from the tracker's own environment variables (MLFLOW_TRACKING_URI, WANDB_MODE, WANDB_PROJECT, TRACKIO_DIR ...). Nothing is sent anywhere you did not configure: MLflow defaults to a local store in output_dir, W&B needs WANDB_MODE=offline or your credentials, trackio is local (README: Experiment trackers).")
    run_name: Optional[str] = config_key(None, "The run's name in the trackers (default: the output directory's name).")
    tracker_project: Optional[str] = config_key(None, "The trackers' project (MLflow experiment, W&B / trackio project). Default: MLFLOW_EXPERIMENT_NAME, WANDB_PROJECT or TRACKIO_PROJECT when set, else 'tuneforge'.")
    tracker_log_model: bool = config_key(False, "Also upload the trained weights (adapter or model, tokenizer, config) to the trackers that store files (MLflow, W&B); otherwise only a reference to output_dir is logged.")
    allow_pickle_weights: bool = config_key(False, "Allow loading pickle (.bin) weights. Off: only safetensors are loaded.")
    # --- multi-device (README: Training on several devices) ------------------------------------------------
    fsdp: Optional[Literal["full_shard"]] = config_key(None, "Shard parameters, gradients and optimizer state over the processes with PyTorch FSDP: 'full_shard' (LoRA and full). Default with more than one process: DDP (a full replica per process).")
    deepspeed: Optional[str] = config_key(None, "Train through DeepSpeed ZeRO: 'zero2', 'zero3' (shipped configs) or a path to a DeepSpeed JSON config ('auto' values are filled from this config). Needs pip install deepspeed.")

    # ------------------------------------------------------------------------------------------
    @property
    def is_full(self) -> bool:
        """Full-parameter training (lora_dim: 0): every weight is trained."""
        return self.lora_dim == 0

    @property
    def is_lora(self) -> bool:
        """LoRA adapters are trained (lora_dim > 0), on a 16/32-bit or a quantized base (QLoRA)."""
        return self.lora_dim > 0

    @property
    def quantized(self) -> bool:
        """The base model loads in 4 or 8 bit (QLoRA)."""
        return self.load_in_4bit or self.load_in_8bit

    @property
    def method(self) -> str:
        if self.is_full:
            return "full"
        if self.load_in_4bit:
            return "qlora-4bit"
        if self.load_in_8bit:
            return "qlora-8bit"
        return "lora"

    @property
    def resolved_lora_alpha(self) -> float:
        return self.lora_alpha if self.lora_alpha is not None else 2.0 * self.lora_dim

    @property
    def resolved_grpo_epsilon_high(self) -> float:
        return self.grpo_epsilon_high if self.grpo_epsilon_high is not None else self.grpo_epsilon

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

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
            validate_grpo(self)  # grpo_config.py; it also picks eval_reward for the default metric_for_best_model
        allowed_best = BEST_METRICS.get(self.training_strategy, {
            "eval_loss", "eval_rewards/accuracies", "eval_rewards/margins"})
        if self.metric_for_best_model not in allowed_best:
            raise ConfigError(
                f"metric_for_best_model={self.metric_for_best_model!r}: for training_strategy={self.training_strategy!r} "
                f"use one of {sorted(allowed_best)}.")
        if self.eval_generation_steps and self.training_strategy not in ("sft", "dpo"):
            raise ConfigError(f"eval_generation_steps={self.eval_generation_steps}: answers are scored against the "
                              f"references of SFT or DPO rows, not training_strategy={self.training_strategy!r}.")
        if self.eval_generation_steps and not (self.validation_data or self.validation_split):
            raise ConfigError(f"eval_generation_steps={self.eval_generation_steps} needs a validation set: set "
                              "validation_data or validation_split.")
        if self.training_strategy == "reward" and self.adapter_name_or_path:
            raise ConfigError("adapter_name_or_path with training_strategy='reward': a reward model is trained from a "
                              "model directory; merge the adapter first (tuneforge merge RUN --out DIR) and set model: DIR.")
        if self.training_strategy == "reward" and self.packing:
            raise ConfigError("packing=true with training_strategy='reward': a reward model scores each sequence at its "
                              "last token, so rows cannot share a sequence; set packing: false.")
        if not self.lora_target_modules:
            raise ConfigError("lora_target_modules is empty: name at least one module, or 'all-linear'.")
        return self


FIELDS: dict[str, dataclasses.Field] = {f.name: f for f in dataclasses.fields(TrainConfig)}
_HINTS = typing.get_type_hints(TrainConfig)


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in typing.get_args(tp))
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        return " or ".join(_type_name(a) for a in args if a is not type(None)) + (" or null" if type(None) in args else "")
    if origin is list:
        return "list of numbers" if typing.get_args(tp) == (float,) else "list of strings"
    return {bool: "boolean", int: "integer", float: "number", str: "string"}.get(tp, str(tp))


def _number(value: Any, kind: type, bad: ConfigError) -> Any:
    """An int or float from a YAML number or a command-line string; booleans are not numbers here."""
    if isinstance(value, bool):
        raise bad
    if kind is int and isinstance(value, float):
        if not value.is_integer():
            raise bad
        return int(value)
    if isinstance(value, (int, float)):
        return kind(value)
    if isinstance(value, str):
        try:
            return kind(value)
        except ValueError:
            raise bad from None
    raise bad


def _coerce(key: str, value: Any, tp: Any) -> Any:
    """Check ``value`` against the annotation ``tp``; strings from the command line are parsed first."""
    origin = typing.get_origin(tp)
    bad = ConfigError(f"{key}={show(value)}: expected {_type_name(tp)}.")
    if origin in (Union, types.UnionType):
        nullable = type(None) in typing.get_args(tp)
        if nullable and (value is None or (isinstance(value, str) and value.lower() in ("null", "none", "~"))):
            return None
        inner = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(inner) == 1:
            return _coerce(key, value, inner[0])
        for arm in inner:  # e.g. an integer or 'auto': the first arm that accepts the value wins
            try:
                return _coerce(key, value, arm)
            except ConfigError:
                continue
        raise bad
    if origin is Literal:
        choices = typing.get_args(tp)
        if isinstance(value, (str, int, float, bool)) and value in choices:
            return value
        hint = difflib.get_close_matches(value, [str(c) for c in choices], n=1) if isinstance(value, str) else []
        raise ConfigError(f"{key}={show(value)}: expected one of {', '.join(map(repr, choices))}"
                          + (f" (did you mean {hint[0]!r}?)" if hint else "") + ".")
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
            return value.lower() in ("true", "yes", "1")
        raise bad
    if tp in (int, float):
        return _number(value, tp, bad)
    if tp is str:
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        raise bad
    if origin is list:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if typing.get_args(tp) == (float,) and isinstance(value, list):  # reward_weights: numbers
            return [_number(v, float, bad) for v in value]
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return value
        raise bad
    raise bad  # pragma: no cover - every annotation above is handled


PATH_KEYS = frozenset({"model", "adapter_name_or_path", "train_data", "validation_data", "output_dir",
                       "resume_from_checkpoint", "deepspeed", "data_cache_dir"})


def check_text(key: str, value: Any) -> None:
    """Strings (also inside lists and train_data mappings) that no file name or C library can take: ConfigError."""
    if isinstance(value, list):
        for item in value:
            check_text(key, item)
    elif isinstance(value, dict):
        check_text(key, value.get("path"))
    elif isinstance(value, str):
        problem = path_text_problem(value) if key in PATH_KEYS else text_problem(value)
        if problem:
            raise ConfigError(f"{key}={show(value)}: {problem}.")


def _check_range(key: str, value: Any, meta: dict) -> None:
    check_text(key, value)
    if value is None or isinstance(value, (bool, str, list, dict)):
        return
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{key}={show(value)}: must be a finite number.")
    lo, hi = meta.get("lo"), meta.get("hi")
    if hi is None:
        hi = UPPER_BOUNDS.get(key, INT_MAX if isinstance(value, int) else None)
    if lo is not None and (value < lo or (meta.get("lo_open") and value == lo)):
        op = ">" if meta.get("lo_open") else ">="
        raise ConfigError(f"{key}={show(value)}: must be {op} {lo}.")
    if hi is not None and value > hi:
        raise ConfigError(f"{key}={show(value)}: must be <= {hi}.")


def unknown_key_error(key: Any) -> ConfigError:
    hint = difflib.get_close_matches(key, list(FIELDS), n=1, cutoff=0.6) if isinstance(key, str) else []
    return ConfigError(f"unknown config key {show(key)}" + (f" (did you mean {hint[0]!r}?)" if hint else "")
                       + ". Run 'tuneforge train --help' for every key.")


DATA_SOURCE_KEYS = {"path": "a file or directory", "weight": "a number > 0", "max_rows": "an integer >= 1"}


def _data_source(key: str, item: Any) -> str | dict[str, Any]:
    """One train_data entry: a path, or a {path, weight, max_rows} mapping checked key by key."""
    if isinstance(item, str) and item:
        return item
    if not isinstance(item, dict):
        raise ConfigError(f"{key}: entry {show(item)}: expected a path or a mapping {{path, weight, max_rows}}.")
    for name in item:
        if name not in DATA_SOURCE_KEYS:
            hint = difflib.get_close_matches(str(name), list(DATA_SOURCE_KEYS), n=1)
            raise ConfigError(f"{key}: unknown key {show(name)} in {show(item)}" + (f" (did you mean {hint[0]!r}?)" if hint else "")
                              + f"; allowed: {', '.join(DATA_SOURCE_KEYS)}.")
    path, weight, max_rows = item.get("path"), item.get("weight", 1.0), item.get("max_rows")
    if not isinstance(path, str) or not path:
        raise ConfigError(f"{key}: entry {show(item)}: 'path' must be a file or directory.")
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not 0 < weight <= 1000:
        raise ConfigError(f"{key}: entry {show(item)}: weight={show(weight)} must be a number > 0 (at most 1000).")
    if max_rows is not None and (isinstance(max_rows, bool) or not isinstance(max_rows, int) or max_rows < 1):
        raise ConfigError(f"{key}: entry {show(item)}: max_rows={show(max_rows)} must be an integer >= 1.")
    return {"path": path, "weight": float(weight), "max_rows": max_rows}


def _coerce_train_data(key: str, value: Any) -> Any:
    """``train_data``: one path, or a non-empty list of paths / {path, weight, max_rows} (data mixing)."""
    if not isinstance(value, list):
        # One path, as a string: not _HINTS[key], whose Union arms come in whatever order typing's cache first
        # saw them (after `import peft` list[str] is first, and a path became a one-item list).
        return _coerce(key, value, Optional[str])
    if not value:
        raise ConfigError(f"{key}=[]: give at least one data file.")
    return [_data_source(key, item) for item in value]


def check_value(key: Any, value: Any) -> Any:
    """One key's value, coerced to its type and checked against its own range (not against other keys)."""
    if not isinstance(key, str) or key not in FIELDS:
        raise unknown_key_error(key)
    value = _coerce_train_data(key, value) if key == "train_data" else _coerce(key, value, _HINTS[key])
    _check_range(key, value, FIELDS[key].metadata)
    return value


def value_errors(raw: dict[str, Any]) -> list[tuple[str, str]]:
    """(key, message) for every key whose value is wrong on its own, so a form can flag them all at once."""
    errors = []
    for key, value in raw.items():
        try:
            check_value(key, value)
        except ConfigError as exc:
            errors.append((str(key), str(exc)))
    return errors


def from_dict(raw: dict[str, Any]) -> TrainConfig:
    """Build and validate a config from a mapping (YAML/JSON contents plus overrides)."""
    values = {key: check_value(key, value) for key, value in raw.items()}
    return preflight.check(TrainConfig(**values).validate())


def parse_override(text: str) -> tuple[str, Any]:
    """``key=value`` from the command line; the value is parsed as YAML (so 1e-4, true, [a, b] work)."""
    if "=" not in text:
        raise ConfigError(f"override {text!r}: expected key=value.")
    key, value = text.split("=", 1)
    key = key.strip()
    try:
        parsed = yaml.safe_load(value) if value.strip() else ""
    except yaml.YAMLError:
        parsed = value
    return key, parsed


def load_raw(path: str | Path) -> dict[str, Any]:
    """Read a YAML or JSON config file into a mapping, with clear errors."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r}: no such file.")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise ConfigError(f"config file {str(path)!r}: not UTF-8 text; save it as UTF-8.") from None
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        mark = getattr(exc, "problem_mark", None)
        line = getattr(exc, "lineno", None) or (mark.line + 1 if mark else "?")
        raise ConfigError(f"config file {str(path)!r}, line {line}: not valid {'JSON' if path.suffix == '.json' else 'YAML'} ({exc.__class__.__name__}).") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {str(path)!r}: the top level must be a mapping of key: value.")
    return data


def load_config(path: str | Path | None = None, overrides: list[str] | None = None, **kwargs: Any) -> TrainConfig:
    """Config from an optional file, then ``key=value`` overrides, then keyword arguments."""
    raw = load_raw(path) if path is not None else {}
    base = Path(path).parent if path is not None else None
    for item in overrides or []:
        key, value = parse_override(item)
        raw[key] = value
    raw.update(kwargs)
    # Data paths in a config file are relative to the file, so examples run from any directory.
    if base is not None:
        def relative_to_file(value: Any) -> Any:
            if isinstance(value, dict) and isinstance(value.get("path"), str):  # a train_data mixing entry
                return {**value, "path": relative_to_file(value["path"])}
            if isinstance(value, str) and value and not path_text_problem(value) and not Path(value).is_absolute() \
                    and not Path(value).exists() \
                    and (base / value).exists():
                return os.path.normpath(base / value)  # examples/configs/../data/x -> examples/data/x
            return value

        reward_paths_relative_to(raw, base)  # grpo_config.py: path/file.py:name entries
        for key in ("train_data", "validation_data"):
            value = raw.get(key)
            raw[key] = [relative_to_file(v) for v in value] if isinstance(value, list) else relative_to_file(value)
            if value is None:
                raw.pop(key)
    return from_dict(raw)


def help_lines() -> list[tuple[str, str, str, str]]:
    """(key, type, default, help) for every key, in declaration order."""
    rows = []
    for f in dataclasses.fields(TrainConfig):
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default  # type: ignore[misc]
        rows.append((f.name, _type_name(_HINTS[f.name]), json.dumps(default, ensure_ascii=False), f.metadata["help"]))
    return rows
