"""Load the tokenizer and the model: dtype, device, quantization (bitsandbytes), LoRA (peft)."""
from __future__ import annotations

import os
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
        raise ConfigError(f"mixed_precision={cfg.mixed_precision!r}: needs a GPU; this run is on {device.type}. Use 'auto' or 'no'.")
    half = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(mode)
    # Frozen base weights can live in 16 bit; trained full-parameter weights stay fp32 masters
    # (AdamW updates on bf16 weights lose most small steps).
    load_dtype = half if (half is not None and cfg.lora_dim > 0) else torch.float32
    return Precision(load_dtype, mode, half or torch.float32)


def is_builtin(name: str) -> bool:
    return name == BUILTIN_MODEL or name.startswith("builtin:")


def load_tokenizer(name: str, trust_remote_code: bool = False):
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
    if not (cfg.load_in_4bit or cfg.load_in_8bit):
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


def load_base_model(cfg: TrainConfig, tokenizer, device: torch.device, precision: Precision,
                    base_dir: Path | None = None) -> tuple[nn.Module, str]:
    """The base causal LM and the path an adapter should name as its base.

    The built-in toy is written to ``base_dir`` (inside the run's output_dir) when an adapter will
    be saved against it, or loaded quantized, so the run directory is self-contained.
    """
    from transformers import AutoModelForCausalLM

    name = cfg.model
    quant = _quantization_config(cfg, precision)
    if is_builtin(name):
        if quant is None and base_dir is None:
            return builtin.toy_model(tokenizer, dtype=precision.load_dtype).to(device), name
        assert base_dir is not None
        if not (base_dir / "config.json").is_file():
            builtin.save_toy(base_dir)
        name = str(base_dir.resolve())
    kwargs = dict(dtype=precision.load_dtype, trust_remote_code=cfg.trust_remote_code,
                  attn_implementation=cfg.attn_implementation)
    if not cfg.allow_pickle_weights:
        kwargs["use_safetensors"] = True
    if quant is not None:
        kwargs["quantization_config"] = quant
        kwargs["device_map"] = {"": device.index if device.type == "cuda" else "cpu"}
    try:
        model = AutoModelForCausalLM.from_pretrained(name, **kwargs)
    except (OSError, ValueError, ImportError) as exc:
        msg = first_line(exc)
        if "safetensors" in msg.lower() and not cfg.allow_pickle_weights:
            msg += " (only safetensors weights are loaded; set allow_pickle_weights: true to accept pickle .bin files you trust)"
        raise ConfigError(f"model={cfg.model!r}: cannot load it ({msg}).") from None
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
    from peft import LoraConfig, PeftModel, get_peft_model, prepare_model_for_kbit_training

    if cfg.load_in_4bit or cfg.load_in_8bit:
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=cfg.gradient_checkpointing is True,
                                                gradient_checkpointing_kwargs={"use_reentrant": False})
    if cfg.adapter_name_or_path:
        return PeftModel.from_pretrained(model, cfg.adapter_name_or_path, is_trainable=True)
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
                      target_modules=targets, task_type="CAUSAL_LM", bias="none")
    return get_peft_model(model, lora)


def _base_dir(cfg: TrainConfig, output_dir: Path) -> Path | None:
    """Where the built-in model's base weights are written (LoRA outputs name them as their base)."""
    return output_dir / "base_model" if cfg.lora_dim > 0 else None


def write_shared_base(cfg: TrainConfig, output_dir: Path) -> None:
    """Write the built-in base model's files once (rank 0, before the other processes load them)."""
    base_dir = _base_dir(cfg, output_dir)
    if is_builtin(cfg.model) and base_dir is not None and not (base_dir / "config.json").is_file():
        builtin.save_toy(base_dir)


def prepare_model(cfg: TrainConfig, tokenizer, device: torch.device, precision: Precision,
                  output_dir: Path) -> tuple[nn.Module, str]:
    """Base model + LoRA/QLoRA wrapping + gradient checkpointing, ready to train."""
    model, base_name = load_base_model(cfg, tokenizer, device, precision, base_dir=_base_dir(cfg, output_dir))
    model.config.use_cache = False
    if cfg.gradient_checkpointing is True and not (cfg.load_in_4bit or cfg.load_in_8bit):
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if cfg.lora_dim > 0:
        model = attach_lora(model, cfg)
    return model, base_name


def count_parameters(model: nn.Module) -> tuple[int, int]:
    trainable = total = 0
    for p in model.parameters():
        n = getattr(p, "ds_numel", None) or p.numel()  # ZeRO-3 leaves an empty placeholder on each process
        if p.__class__.__name__ == "Params4bit":  # packed: two 4-bit values per byte
            n *= 2
        total += n
        if p.requires_grad:
            trainable += n
    return trainable, total


def default_device() -> torch.device:
    if torch.cuda.is_available():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return torch.device("cpu")
