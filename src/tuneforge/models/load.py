"""Load the tokenizer and the model: dtype, device, quantization (bitsandbytes), LoRA (peft)."""
from __future__ import annotations

import math
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..config import BUILTIN_MODEL, TrainConfig
from ..errors import ConfigError
from . import builtin


@dataclass
class Precision:
    """How weights are stored and how the forward pass computes."""

    load_dtype: torch.dtype  # dtype of the (frozen) base weights
    mixed_precision: str  # accelerate's setting: 'no' | 'bf16' | 'fp16'
    compute_dtype: torch.dtype  # bitsandbytes compute dtype


def resolve_precision(cfg: TrainConfig, device: torch.device) -> Precision:
    mode = cfg.mixed_precision
    if mode == "auto":
        mode = "bf16" if device.type == "cuda" and torch.cuda.is_bf16_supported() else "no"
    if mode != "no" and device.type != "cuda":
        raise ConfigError(f"mixed_precision={cfg.mixed_precision!r}: needs a GPU; this run is on {device.type}. Use "
                          "'auto' or 'no'.")
    half = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(mode)
    # Frozen base weights can live in 16 bit; trained full-parameter weights stay fp32 masters
    # (AdamW updates on bf16 weights lose most small steps).
    load_dtype = half if (half is not None and cfg.is_lora) else torch.float32
    return Precision(load_dtype, mode, half or torch.float32)


def is_builtin(name: str) -> bool:
    return name == BUILTIN_MODEL or name.startswith("builtin:")


def resolve_model_name(name: str) -> str:
    """What ``model`` names: a local directory (always wins), the built-in toy, a gallery id (e.g.
    'qwen2.5-7b-instruct' -> its hub id, see 'tuneforge models list') or a hub id, returned as is."""
    if is_builtin(name) or os.path.exists(name):
        return name
    from .catalog import find

    entry = find(name)
    return entry.hub_id if entry is not None else name


def load_tokenizer(name: str, trust_remote_code: bool = False):
    name = resolve_model_name(name)
    if is_builtin(name):
        if name != BUILTIN_MODEL:
            raise ConfigError(f"model={name!r}: the only built-in model is {BUILTIN_MODEL!r}.")
        tok = builtin.toy_tokenizer()
    else:
        from transformers import AutoTokenizer

        try:
            tok = AutoTokenizer.from_pretrained(name, trust_remote_code=trust_remote_code)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"model={name!r}: cannot load its tokenizer ({first_line(exc)}). "
                              "Give a local model directory, or a hub id with network access.") from None
    if tok.pad_token is None:
        # Only used to fill padding; labels mark the trained tokens by position, so an EOS used as
        # pad is still trained where it ends an answer.
        tok.pad_token = tok.eos_token
    return tok


def first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else exc.__class__.__name__


def _quantization_config(cfg: TrainConfig, precision: Precision):
    if not cfg.quantized:
        return None
    try:
        from transformers import BitsAndBytesConfig
        import bitsandbytes  # noqa: F401
    except ImportError:
        raise ConfigError("load_in_4bit/load_in_8bit need bitsandbytes: pip install bitsandbytes") from None
    if cfg.load_in_4bit:
        return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                  bnb_4bit_compute_dtype=precision.compute_dtype,
                                  bnb_4bit_quant_storage=precision.compute_dtype)
    return BitsAndBytesConfig(load_in_8bit=True)


@dataclass(frozen=True)
class ModelHead:
    """What a strategy trains on top of the base: the transformers auto class, its extra loading arguments, the
    peft task type and the modules trained whole (not through LoRA) beside the adapter."""

    auto_class: str
    kwargs: tuple[tuple[str, object], ...]
    task_type: str
    modules_to_save: tuple[str, ...] | None
    toy: str  # the built-in toy's builder in models/builtin.py


CAUSAL_LM = ModelHead("AutoModelForCausalLM", (), "CAUSAL_LM", None, "toy_model")
# Strategies whose model is not a causal LM. The reward model's scalar head ('score' in transformers'
# *ForSequenceClassification) starts untrained, so with LoRA it is trained whole.
MODEL_HEADS: dict[str, ModelHead] = {
    "reward": ModelHead("AutoModelForSequenceClassification", (("num_labels", 1),), "SEQ_CLS", ("score",),
                        "toy_reward_model"),
}


def model_head(cfg: TrainConfig) -> ModelHead:
    return MODEL_HEADS.get(cfg.training_strategy, CAUSAL_LM)


def load_base_model(cfg: TrainConfig, tokenizer, device: torch.device, precision: Precision,
                    base_dir: Path | None = None) -> tuple[nn.Module, str]:
    """The base causal LM and the path an adapter should name as its base.

    The built-in toy is written to ``base_dir`` (inside the run's output_dir) when an adapter will
    be saved against it, or loaded quantized, so the run directory is self-contained.
    """
    import transformers

    head = model_head(cfg)
    name = resolve_model_name(cfg.model)
    quant = _quantization_config(cfg, precision)
    if is_builtin(name):
        if quant is None and base_dir is None:
            return getattr(builtin, head.toy)(tokenizer, dtype=precision.load_dtype).to(device), name
        assert base_dir is not None
        if not toy_copy_complete(base_dir):
            save_toy_atomically(base_dir)
        name = str(base_dir.resolve())
    kwargs = dict(dtype=precision.load_dtype, trust_remote_code=cfg.trust_remote_code,
                  attn_implementation=cfg.attn_implementation)
    if not cfg.allow_pickle_weights:
        kwargs["use_safetensors"] = True
    if quant is not None:
        kwargs["quantization_config"] = quant
        kwargs["device_map"] = {"": device.index if device.type == "cuda" else "cpu"}
    try:
        model = getattr(transformers, head.auto_class).from_pretrained(name, **dict(head.kwargs), **kwargs)
    except (OSError, ValueError, ImportError) as exc:
        msg = first_line(exc)
        if "safetensors" in msg.lower() and not cfg.allow_pickle_weights:
            msg += (" (only safetensors weights are loaded; "
                    "set allow_pickle_weights: true to accept pickle .bin files you trust)")
        raise ConfigError(f"model={cfg.model!r}: cannot load it ({msg}).") from None
    if head is not CAUSAL_LM and model.config.pad_token_id is None:
        model.config.pad_token_id = tokenizer.pad_token_id  # sequence classification pools at the last non-pad token
    if quant is None:
        model.to(device)
    elif device.type == "cpu":
        keep_cpu_4bit_layout(model)
    return model, name


def keep_cpu_4bit_layout(model: nn.Module) -> None:
    """bitsandbytes (0.50) repacks 4-bit weights into an inference layout on CPU the first time a layer
    runs in eval mode without gradients; the repacked path then fails on layers with a bias (Qwen2's
    q/k/v: "a view of a leaf Variable ... in-place"), and evaluation would run another kernel than
    training. Keep the training layout throughout."""
    for module in model.modules():
        if hasattr(module, "support_avx512bf16_for_cpu"):
            module.support_avx512bf16_for_cpu = False


def linear_module_names(model: nn.Module) -> list[str]:
    names = set()
    for full, module in model.named_modules():
        if isinstance(module, nn.Linear) or module.__class__.__name__ in ("Linear4bit", "Linear8bitLt"):
            names.add(full.split(".")[-1])
    return sorted(names)


def attach_lora(model: nn.Module, cfg: TrainConfig) -> nn.Module:
    """Wrap ``model`` with a trainable LoRA adapter (new, or continued from ``adapter_name_or_path``)."""
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    if cfg.quantized:
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=cfg.gradient_checkpointing is True,
                                                gradient_checkpointing_kwargs={"use_reentrant": False})
    if cfg.adapter_name_or_path:
        return _continue_adapter(model, cfg)
    targets: list[str] | str = cfg.lora_target_modules
    if targets == ["all-linear"]:
        targets = "all-linear"
    else:
        available = linear_module_names(model)
        missing = [t for t in targets if t not in available]
        if missing:
            raise ConfigError(f"lora_target_modules={cfg.lora_target_modules}: {missing} not found in {cfg.model}; "
                              f"its linear layers are {available} (or use 'all-linear').")
    lora = LoraConfig(r=cfg.lora_dim, lora_alpha=cfg.resolved_lora_alpha, lora_dropout=cfg.lora_dropout,
                      target_modules=targets, task_type=model_head(cfg).task_type, bias="none",
                      modules_to_save=list(model_head(cfg).modules_to_save or []) or None)
    return get_peft_model(model, lora)


def adapter_conflicts(saved, cfg: TrainConfig) -> list[str]:
    """Where a saved adapter's shape (rank, alpha, target modules) differs from the config's keys."""
    out = []
    if saved.r != cfg.lora_dim:
        out.append(f"rank {saved.r} (config lora_dim={cfg.lora_dim})")
    if float(saved.lora_alpha) != float(cfg.resolved_lora_alpha):
        out.append(f"alpha {saved.lora_alpha:g} (config lora_alpha={cfg.resolved_lora_alpha:g})")
    saved_targets = saved.target_modules if isinstance(saved.target_modules, str) else sorted(saved.target_modules)
    wanted = "all-linear" if cfg.lora_target_modules == ["all-linear"] else sorted(cfg.lora_target_modules)
    if saved_targets != wanted:
        out.append(f"target modules {saved_targets} (config lora_target_modules={wanted})")
    return out


def _continue_adapter(model: nn.Module, cfg: TrainConfig) -> nn.Module:
    """Load ``adapter_name_or_path`` for further training with the config's ``lora_dropout``.

    peft would restore every saved setting, dropout included; dropout is a training choice, so the
    config's value is used. Rank, alpha and targets are the adapter's shape and cannot change: when the
    config says otherwise the adapter's values are used and the difference is reported.
    """
    from peft import PeftConfig, PeftModel

    saved = PeftConfig.from_pretrained(cfg.adapter_name_or_path)
    conflicts = adapter_conflicts(saved, cfg)
    if conflicts and os.environ.get("RANK", "0") == "0":
        print(f"warning: adapter_name_or_path={cfg.adapter_name_or_path!r} keeps its own {'; '.join(conflicts)}: "
              "an adapter's shape cannot change while it is trained further (set these keys to the adapter's "
              "values to silence this).", file=sys.stderr, flush=True)
    saved.lora_dropout = cfg.lora_dropout
    saved.inference_mode = False
    return PeftModel.from_pretrained(model, cfg.adapter_name_or_path, is_trainable=True, config=saved)


def dropout_disabled(cfg: TrainConfig) -> bool:
    """``disable_dropout``, defaulting to on for DPO: the policy's log-probs must not be noisier than the
    dropout-free reference's (the DPO authors' setting; TRL's ``disable_dropout=True``)."""
    return cfg.disable_dropout if cfg.disable_dropout is not None else cfg.training_strategy in ("dpo", "kto", "grpo")


def disable_dropout(model: nn.Module) -> None:
    for module in model.modules():
        if isinstance(module, nn.Dropout):
            module.p = 0.0


def _base_dir(cfg: TrainConfig, output_dir: Path) -> Path | None:
    """Where the built-in model's base weights are written (LoRA outputs name them as their base)."""
    return output_dir / "base_model" if cfg.is_lora else None


def write_shared_base(cfg: TrainConfig, output_dir: Path) -> None:
    """Write the built-in base model's files once (rank 0, before the other processes load them)."""
    base_dir = _base_dir(cfg, output_dir)
    if is_builtin(cfg.model) and base_dir is not None and not toy_copy_complete(base_dir):
        save_toy_atomically(base_dir)


def toy_copy_complete(base_dir: Path) -> bool:
    return (base_dir / "config.json").is_file() and any(base_dir.glob("*.safetensors"))


def save_toy_atomically(base_dir: Path) -> None:
    """The toy base written to a temporary directory and renamed into place: a crash or a full disk never
    leaves a half-written ``base_model/`` that a later run would take for complete."""
    from ..storage import writing

    tmp = base_dir.with_name(base_dir.name + ".tmp")
    with writing(base_dir, 64 << 20):
        try:
            if tmp.exists():
                shutil.rmtree(tmp)
            builtin.save_toy(tmp)
            if base_dir.exists():  # an incomplete copy left by an older version
                shutil.rmtree(base_dir)
            tmp.rename(base_dir)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def prepare_model(cfg: TrainConfig, tokenizer, device: torch.device, precision: Precision,
                  output_dir: Path) -> tuple[nn.Module, str]:
    """Base model + LoRA/QLoRA wrapping + gradient checkpointing, ready to train."""
    model, base_name = load_base_model(cfg, tokenizer, device, precision, base_dir=_base_dir(cfg, output_dir))
    model.config.use_cache = False
    if cfg.gradient_checkpointing is True and not cfg.quantized:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if cfg.is_lora:
        model = attach_lora(model, cfg)
    if dropout_disabled(cfg):
        disable_dropout(model)
    return model, base_name


def count_parameters(model: nn.Module) -> tuple[int, int]:
    trainable = total = 0
    for p in model.parameters():
        n = getattr(p, "ds_numel", None) or p.numel()  # ZeRO-3 leaves an empty placeholder on each process
        quant_state = getattr(p, "quant_state", None)
        if p.__class__.__name__ == "Params4bit" and quant_state is not None:
            n = math.prod(quant_state.shape)  # packed storage: count the weights it stands for
        total += n
        if p.requires_grad:
            trainable += n
    return trainable, total
