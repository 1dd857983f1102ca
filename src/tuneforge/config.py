"""The run configuration: one typed field per key, its help text doubles as CLI help.

Keys use the names of the cloud fine-tuning service the project follows (``learning_rate``,
``lora_dim``, ``seq_length`` ...), so users can paste their hyperparameters unchanged.
Everything is validated here, before any model or data is loaded.
"""
from __future__ import annotations

import dataclasses
import difflib
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional, Union

import yaml

from .errors import ConfigError

BUILTIN_MODEL = "builtin:toy"

_UNSET = object()


def _f(default: Any, help: str, *, lo: float | None = None, hi: float | None = None,
       lo_open: bool = False) -> Any:
    """A config field with its help text and optional numeric bounds (lo inclusive unless lo_open)."""
    meta = {"help": help, "lo": lo, "hi": hi, "lo_open": lo_open}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class TrainConfig:
    # --- what to train -------------------------------------------------------------------------
    training_strategy: Literal["sft", "dpo"] = _f("sft", "Training stage: 'sft' (supervised fine-tuning) or 'dpo' (preference optimization).")
    model: str = _f(BUILTIN_MODEL, "Base model: a local Hugging Face model directory, a hub id, or 'builtin:toy' (a tiny random-init toy model for trying the pipeline offline; it learns nothing useful).")
    adapter_name_or_path: Optional[str] = _f(None, "Start from this LoRA adapter (e.g. an SFT run's output_dir). For DPO the adapter is also the frozen reference.")
    train_data: Optional[str] = _f(None, "Training data file: JSON array or JSONL (also .csv/.parquet). Row formats are detected per file.")
    validation_data: Optional[str] = _f(None, "Validation data file (same formats). Alternative to validation_split.")
    validation_split: float = _f(0.0, "Fraction of train_data held out for validation when validation_data is not given (0 = none).", lo=0.0, hi=0.5)
    output_dir: str = _f("runs/tuneforge-run", "Where the adapter/model, tokenizer, resolved config, metrics.jsonl and checkpoints are written.")
    overwrite_output_dir: bool = _f(False, "Replace a finished run already in output_dir (otherwise refused, so no run is lost by accident).")
    # --- the service's hyperparameters ----------------------------------------------------------
    learning_rate: float = _f(1e-4, "Peak learning rate of AdamW.", lo=0.0, hi=1.0, lo_open=True)
    num_train_epochs: float = _f(3.0, "Passes over the training data (2-10 is the usual range for fine-tuning; stop when validation stops improving).", lo=0.0, lo_open=True, hi=1000)
    per_device_train_batch_size: Union[int, Literal["auto"]] = _f(4, "Rows per device per micro-batch, or 'auto': the largest that fits memory, found by trying a forward+backward on the longest rows (halving from 64), with gradient_accumulation_steps adjusted to keep effective_batch_size.", lo=1)
    gradient_accumulation_steps: int = _f(1, "Micro-batches per optimizer step: effective batch = batch size x this x processes.", lo=1)
    effective_batch_size: Optional[int] = _f(None, "Rows per optimizer step over all processes. When set, gradient_accumulation_steps is derived from it (= this / (batch size x processes)). Default: per_device_train_batch_size x gradient_accumulation_steps x processes.", lo=1)
    seq_length: int = _f(1024, "Maximum tokens of one sample (SFT: system+instruction+output; DPO: each of prompt+chosen and prompt+rejected). Longer rows are truncated.", lo=8)
    lora_dim: int = _f(32, "LoRA rank. 0 = full-parameter training.", lo=0, hi=4096)
    lora_alpha: Optional[float] = _f(None, "LoRA scaling alpha (typically 0.5-2x lora_dim). Default: 2 x lora_dim.", lo=0.0, lo_open=True)
    dpo_beta: float = _f(0.1, "DPO beta: higher keeps the policy closer to the reference. Ignored for SFT.", lo=0.0, lo_open=True, hi=100.0)
    load_in_4bit: bool = _f(False, "QLoRA: load the base model in 4-bit NF4 (double quantization) through bitsandbytes.")
    load_in_8bit: bool = _f(False, "QLoRA: load the base model in 8-bit through bitsandbytes.")
    apply_chat_template: bool = _f(True, "true: render rows with the tokenizer's chat template; false: plain concatenation, the data carries its own special tokens.")
    system_prompt: Optional[str] = _f(None, "System message for rows that have none; replaces a chat template's built-in default system prompt.")
    # --- optimisation ---------------------------------------------------------------------------
    lr_scheduler_type: Literal["cosine", "linear", "constant"] = _f("cosine", "Learning-rate decay after warmup.")
    warmup_ratio: float = _f(0.03, "Fraction of optimizer steps spent warming the learning rate up linearly from 0.", lo=0.0, hi=0.5)
    weight_decay: float = _f(0.0, "AdamW weight decay (not applied to biases and norms).", lo=0.0, hi=1.0)
    adam_beta1: float = _f(0.9, "AdamW beta1.", lo=0.0, hi=1.0)
    adam_beta2: float = _f(0.999, "AdamW beta2.", lo=0.0, hi=1.0)
    max_grad_norm: float = _f(1.0, "Clip the global gradient norm to this (0 = no clipping).", lo=0.0)
    max_steps: int = _f(-1, "Stop after this many optimizer steps (-1 = run num_train_epochs).", lo=-1)
    seed: int = _f(42, "Random seed for initialisation, data order and dropout.", lo=0)
    # --- LoRA -----------------------------------------------------------------------------------
    lora_dropout: float = _f(0.05, "Dropout on the LoRA input.", lo=0.0, hi=0.9)
    lora_target_modules: list[str] = _f(["q_proj", "k_proj", "v_proj", "o_proj"], "Modules that get LoRA adapters (default: the 4 attention projections; 'all-linear' for every linear layer).")
    # --- DPO ------------------------------------------------------------------------------------
    dpo_loss_type: Literal["sigmoid", "ipo", "hinge", "simpo", "orpo"] = _f("sigmoid", "Preference loss: sigmoid (the DPO paper's loss), ipo, hinge, or the reference-free simpo and orpo.")
    dpo_reference: Literal["precompute", "copy"] = _f("precompute", "Full-parameter DPO reference: log-probs precomputed in one pass before training, or a frozen model copy.")
    simpo_gamma: float = _f(0.5, "SimPO target reward margin (gamma/beta ratio x beta).", lo=0.0)
    # --- evaluation, logging, saving ------------------------------------------------------------
    logging_steps: int = _f(10, "Log training metrics every this many optimizer steps.", lo=1)
    eval_steps: int = _f(50, "Evaluate every this many optimizer steps (0 = only at each epoch end).", lo=0)
    save_steps: int = _f(0, "Save a resumable checkpoint every this many optimizer steps (0 = only at epoch ends; -1 = never: the run cannot be resumed, its final output and best model are still saved).", lo=-1)
    save_total_limit: int = _f(2, "Checkpoints kept besides the best one.", lo=1)
    early_stopping_patience: int = _f(0, "Stop after this many evaluations without improvement of metric_for_best_model (0 = never).", lo=0)
    metric_for_best_model: str = _f("eval_loss", "Metric that picks the best checkpoint and drives early stopping: eval_loss, eval_token_accuracy (SFT) or eval_rewards/accuracies (DPO).")
    # --- runtime --------------------------------------------------------------------------------
    mixed_precision: Literal["auto", "bf16", "fp16", "no"] = _f("auto", "auto = bf16 on GPUs that support it, fp32 on CPU.")
    gradient_checkpointing: Union[bool, Literal["auto"]] = _f(False, "Recompute activations in the backward pass: less memory, ~30% slower. 'auto' = on only when the memory estimate says the run would not fit without it.")
    packing: bool = _f(False, "Concatenate the rows of a micro-batch (SFT rows; DPO chosen and rejected rows) into one sequence without padding (attention never crosses rows). Off by default: with SDPA the packed rows need a dense block mask, which measured slower on CPU than length-grouped padded batches; worth it on GPU with attn_implementation flash_attention_2 or flex_attention.")
    group_by_length: bool = _f(True, "Without packing: fill each step with rows of similar length (seeded megabatches sorted by length), so little compute goes to padding.")
    trust_remote_code: bool = _f(False, "Allow model code shipped with the model repository to run.")
    attn_implementation: Literal["sdpa", "eager", "flash_attention_2", "flex_attention"] = _f("sdpa", "Attention kernel passed to transformers.")
    on_bad_rows: Literal["error", "skip"] = _f("error", "A malformed data row stops the run before training (error) or is dropped and counted (skip).")
    resume_from_checkpoint: Optional[str] = _f(None, "'auto' = continue from the last complete checkpoint in output_dir (start fresh when there is none); or a checkpoint path. Rerun the same command after a crash to continue exactly where the run stopped.")
    resume_ignore_config_changes: bool = _f(False, "Resume even when keys that define the run (model, lora_dim, seq_length, data, batch geometry ...) differ from the checkpoint's. The continued run is then not the same run.")
    max_consecutive_nonfinite_steps: int = _f(5, "A step whose loss or gradient norm is NaN/inf is skipped (weights and optimizer untouched); this many in a row stop the run (exit code 3).", lo=1)
    report_to: Literal["none", "tensorboard"] = _f("none", "Extra metric sink besides metrics.jsonl.")
    allow_pickle_weights: bool = _f(False, "Allow loading pickle (.bin) weights. Off: only safetensors are loaded.")
    # --- multi-device (README: Training on several devices) ------------------------------------------------
    fsdp: Optional[Literal["full_shard"]] = _f(None, "Shard parameters, gradients and optimizer state over the processes with PyTorch FSDP: 'full_shard' (LoRA and full). Default with more than one process: DDP (a full replica per process).")
    deepspeed: Optional[str] = _f(None, "Train through DeepSpeed ZeRO: 'zero2', 'zero3' (shipped configs) or a path to a DeepSpeed JSON config ('auto' values are filled from this config). Needs pip install deepspeed.")

    # ------------------------------------------------------------------------------------------
    @property
    def method(self) -> str:
        if self.lora_dim == 0:
            return "full"
        if self.load_in_4bit:
            return "qlora-4bit"
        if self.load_in_8bit:
            return "qlora-8bit"
        return "lora"

    @property
    def resolved_lora_alpha(self) -> float:
        return self.lora_alpha if self.lora_alpha is not None else 2.0 * self.lora_dim

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def validate(self) -> "TrainConfig":
        """Cross-field checks; single-field types and ranges are checked when the config is built."""
        if self.load_in_4bit and self.load_in_8bit:
            raise ConfigError("load_in_4bit=true and load_in_8bit=true: choose one quantization.")
        if (self.load_in_4bit or self.load_in_8bit) and self.lora_dim == 0:
            raise ConfigError(
                "load_in_4bit/load_in_8bit with lora_dim=0: quantized weights cannot be trained directly. "
                "Set lora_dim > 0 (QLoRA) or turn quantization off for full-parameter training.")
        if self.validation_data and self.validation_split > 0:
            raise ConfigError("validation_data and validation_split are both set: use one.")
        if not self.train_data:
            raise ConfigError("train_data is not set: give a JSON/JSONL file of training rows.")
        for key in ("train_data", "validation_data"):
            value = getattr(self, key)
            if value and not Path(value).is_file():
                raise ConfigError(f"{key}={value!r}: no such file.")
        if self.adapter_name_or_path and self.lora_dim == 0:
            raise ConfigError("adapter_name_or_path needs lora_dim > 0 (the adapter is trained further).")
        if self.adapter_name_or_path and not (Path(self.adapter_name_or_path) / "adapter_config.json").is_file():
            raise ConfigError(f"adapter_name_or_path={self.adapter_name_or_path!r}: no adapter_config.json there.")
        allowed_best = {"eval_loss", "eval_token_accuracy"} if self.training_strategy == "sft" else {
            "eval_loss", "eval_rewards/accuracies", "eval_rewards/margins"}
        if self.metric_for_best_model not in allowed_best:
            raise ConfigError(
                f"metric_for_best_model={self.metric_for_best_model!r}: for training_strategy={self.training_strategy!r} "
                f"use one of {sorted(allowed_best)}.")
        if not self.lora_target_modules:
            raise ConfigError("lora_target_modules is empty: name at least one module, or 'all-linear'.")
        if self.fsdp or self.deepspeed:
            from .training.parallel import check_sharding_config

            check_sharding_config(self)
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
        return "list of strings"
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
    bad = ConfigError(f"{key}={value!r}: expected {_type_name(tp)}.")
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
        if value in choices:
            return value
        hint = difflib.get_close_matches(str(value), [str(c) for c in choices], n=1)
        raise ConfigError(f"{key}={value!r}: expected one of {', '.join(map(repr, choices))}"
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
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return value
        raise bad
    raise bad  # pragma: no cover - every annotation above is handled


def _check_range(key: str, value: Any, meta: dict) -> None:
    if value is None or isinstance(value, (bool, str, list)):
        return
    lo, hi = meta.get("lo"), meta.get("hi")
    if lo is not None and (value < lo or (meta.get("lo_open") and value == lo)):
        op = ">" if meta.get("lo_open") else ">="
        raise ConfigError(f"{key}={value!r}: must be {op} {lo}.")
    if hi is not None and value > hi:
        raise ConfigError(f"{key}={value!r}: must be <= {hi}.")


def unknown_key_error(key: str) -> ConfigError:
    hint = difflib.get_close_matches(key, list(FIELDS), n=1, cutoff=0.6)
    return ConfigError(f"unknown config key {key!r}" + (f" (did you mean {hint[0]!r}?)" if hint else "")
                       + ". Run 'tuneforge train --help' for every key.")


def from_dict(raw: dict[str, Any]) -> TrainConfig:
    """Build and validate a config from a mapping (YAML/JSON contents plus overrides)."""
    values = {}
    for key, value in raw.items():
        if key not in FIELDS:
            raise unknown_key_error(key)
        value = _coerce(key, value, _HINTS[key])
        _check_range(key, value, FIELDS[key].metadata)
        values[key] = value
    return TrainConfig(**values).validate()


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
        for key in ("train_data", "validation_data"):
            value = raw.get(key)
            if isinstance(value, str) and value and not Path(value).is_absolute() and not Path(value).exists() \
                    and (base / value).exists():
                raw[key] = str(base / value)
    return from_dict(raw)


def help_lines() -> list[tuple[str, str, str, str]]:
    """(key, type, default, help) for every key, in declaration order."""
    rows = []
    for f in dataclasses.fields(TrainConfig):
        default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default  # type: ignore[misc]
        rows.append((f.name, _type_name(_HINTS[f.name]), json.dumps(default, ensure_ascii=False), f.metadata["help"]))
    return rows
