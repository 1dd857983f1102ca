"""Load a trained model for inference: a run directory (adapter or full), a merged directory, or a base
model plus an adapter. Shared by ``tuneforge merge``, ``chat`` and ``generate``.

Inference never loads quantized weights: an adapter trained on a 4/8-bit base is applied to the base
loaded in 16/32 bit, which is what the adapter approximates (merging into quantized weights would
round the update away).
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch
import yaml
from torch import nn

from ..data.formats import Message
from ..data.templates import encode_prompt, with_system_prompt
from ..errors import ConfigError
from ..rundir import CONFIG_FILE
from . import builtin
from .load import first_line, is_builtin

ADAPTER_CONFIG = "adapter_config.json"
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass
class ModelSource:
    """Where the weights, the adapter, the tokenizer and the run's settings come from."""

    base: str  # model directory, hub id or builtin:toy
    adapter: str | None = None  # PEFT adapter directory
    tokenizer_from: str = ""
    run_config: dict[str, Any] = field(default_factory=dict)  # tuneforge_config.yaml of the run, {} if none
    # Only the user's own flag, never the run directory's saved config: a downloaded run must not be able to
    # make us import its model's code.
    trust_remote_code: bool = False
    allow_pickle_weights: bool = False  # likewise: pickle files can run code when loaded

    @property
    def quantized_training(self) -> str | None:
        """'4-bit' / '8-bit' when the adapter was trained on a quantized base."""
        if self.run_config.get("load_in_4bit"):
            return "4-bit"
        if self.run_config.get("load_in_8bit"):
            return "8-bit"
        return None

    def uses_chat_template(self, tokenizer) -> bool:
        """The run's setting; without a run config, whether the tokenizer has a template at all."""
        return bool(self.run_config.get("apply_chat_template", bool(getattr(tokenizer, "chat_template", None))))

    @property
    def system_prompt(self) -> str | None:
        return self.run_config.get("system_prompt")


def _read_run_config(directory: Path) -> dict[str, Any]:
    path = directory / CONFIG_FILE
    if not path.is_file():
        return {}
    data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    return data if isinstance(data, dict) else {}


def _has_tokenizer(directory: Path) -> bool:
    return (directory / "tokenizer_config.json").is_file() or (directory / "tokenizer.json").is_file()


def _adapter_base(adapter_dir: Path) -> str:
    """The adapter's base model; a run directory that was moved still finds its own ``base_model/``."""
    try:
        declared = json.loads((adapter_dir / ADAPTER_CONFIG).read_text(encoding="utf-8")).get("base_model_name_or_path")
    except (OSError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{adapter_dir / ADAPTER_CONFIG}: cannot read it ({first_line(exc)}).") from None
    local = adapter_dir / "base_model"
    if declared and (Path(declared).is_dir() or is_builtin(declared)):
        return declared
    if (local / "config.json").is_file():
        return str(local)
    if not declared:
        raise ConfigError(f"{adapter_dir / ADAPTER_CONFIG}: names no base_model_name_or_path; give the base model "
                          "and pass this directory as --adapter.")
    return declared  # a hub id


def resolve_source(model: str, adapter: str | None = None, trust_remote_code: bool = False) -> ModelSource:
    """Work out base, adapter, tokenizer and run settings from what the user named.

    ``trust_remote_code`` is the user's own word (a command-line flag); a run whose saved config says its
    model needs custom code is refused without it.
    """
    path = Path(model)
    if adapter is None and (path / ADAPTER_CONFIG).is_file():
        adapter = model
        base = _adapter_base(path)
    elif path.is_dir() and not (path / "config.json").is_file():
        raise ConfigError(f"{model!r}: neither a model directory (config.json) nor an adapter ({ADAPTER_CONFIG}).")
    else:
        base = model
    if adapter is not None and not (Path(adapter) / ADAPTER_CONFIG).is_file():
        raise ConfigError(f"--adapter {adapter!r}: no {ADAPTER_CONFIG} there.")
    settings_dir = Path(adapter) if adapter else path
    run_config = _read_run_config(settings_dir) if settings_dir.is_dir() else {}
    tokenizer_from = next((str(d) for d in (Path(adapter) if adapter else None, path) if d is not None and d.is_dir()
                           and _has_tokenizer(d)), base)
    if run_config.get("trust_remote_code") is True and not trust_remote_code:
        raise ConfigError(f"{str(settings_dir)!r} was trained with trust_remote_code: true: its model {base!r} runs "
                          "Python code shipped with the model. It is not loaded unless you say so yourself: pass "
                          "--trust-remote-code if you trust that code.")
    return ModelSource(base, adapter, tokenizer_from, run_config, trust_remote_code)


def pick_dtype(name: str, device: torch.device, base_dtype: torch.dtype | None = None) -> torch.dtype:
    """'auto': the base's own 16/32-bit dtype when known (merge), else bf16 on a capable GPU, fp32 otherwise."""
    if name != "auto":
        return DTYPES[name]
    if base_dtype in DTYPES.values():
        return base_dtype  # type: ignore[return-value]
    return torch.bfloat16 if device.type == "cuda" and torch.cuda.is_bf16_supported() else torch.float32


def base_dtype(source: ModelSource) -> torch.dtype | None:
    """The dtype the base checkpoint stores (config.json), None for the built-in toy or unknown."""
    if is_builtin(source.base):
        return torch.float32
    try:
        from transformers import AutoConfig

        cfg = AutoConfig.from_pretrained(source.base, trust_remote_code=source.trust_remote_code)
    except (OSError, ValueError):
        return None
    if getattr(cfg, "quantization_config", None):
        raise ConfigError(f"base model {source.base!r} is a quantized checkpoint; merging and inference here need "
                          "its 16/32-bit weights. Point the adapter at the unquantized base.")
    dtype = getattr(cfg, "dtype", None) or getattr(cfg, "torch_dtype", None)
    if isinstance(dtype, str):
        dtype = DTYPES.get(dtype)
    return dtype if dtype in DTYPES.values() else None


def load_tokenizer_for(source: ModelSource):
    from .load import load_tokenizer

    return load_tokenizer(source.tokenizer_from, source.trust_remote_code)


def load_model(source: ModelSource, tokenizer, *, dtype: torch.dtype, device: torch.device,
               merge: bool = False) -> nn.Module:
    """The base in ``dtype`` (never quantized), with the adapter applied (and merged when ``merge``)."""
    if is_builtin(source.base):
        model = builtin.toy_model(tokenizer, dtype=dtype)
    else:
        from transformers import AutoModelForCausalLM

        kwargs: dict[str, Any] = dict(dtype=dtype, trust_remote_code=source.trust_remote_code)
        if not source.allow_pickle_weights:
            kwargs["use_safetensors"] = True
        try:
            model = AutoModelForCausalLM.from_pretrained(source.base, **kwargs)
        except (OSError, ValueError, ImportError) as exc:
            raise ConfigError(f"model {source.base!r}: cannot load it ({first_line(exc)}).") from None
    if source.adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, source.adapter, is_trainable=False)
        if merge:
            untie_adapted_head(model)
            model = model.merge_and_unload()
    model.to(device).eval()
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    base.config.use_cache = True
    return model


def untie_adapted_head(model: nn.Module) -> None:
    """A LoRA on the output head (e.g. ``lm_head`` in ``lora_target_modules``) of a model whose head shares the
    input embedding's weight: merging would fold the head's update into the embeddings as well. The head gets
    its own copy of the weight first, and the merged model is saved untied."""
    base = model.get_base_model()
    head, embeddings = base.get_output_embeddings(), base.get_input_embeddings()
    inner = getattr(head, "base_layer", None)
    shared = getattr(getattr(embeddings, "base_layer", embeddings), "weight", None)
    if inner is None or shared is None or inner.weight.data_ptr() != shared.data_ptr():
        return
    inner.weight = nn.Parameter(shared.detach().clone(), requires_grad=False)
    base.config.tie_word_embeddings = False
    text_config = getattr(base.config, "get_text_config", lambda: None)()
    if text_config is not None:
        text_config.tie_word_embeddings = False


def stop_token_ids(model: nn.Module, tokenizer) -> list[int]:
    """EOS of the tokenizer (the template's end of turn) plus any the model's generation config names."""
    ids: list[int] = []
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    for value in ([tokenizer.eos_token_id] + (configured if isinstance(configured, list) else [configured])):
        if value is not None and value not in ids:
            ids.append(int(value))
    return ids


def prompt_ids(tokenizer, source: ModelSource, messages: Sequence[Message],
               system_prompt: str | None = None) -> list[int]:
    """A conversation rendered for generation the way the run trained: its template and system prompt."""
    system = system_prompt if system_prompt is not None else source.system_prompt
    return encode_prompt(tokenizer, with_system_prompt(messages, system),
                         chat_template=source.uses_chat_template(tokenizer))


def default_device() -> torch.device:
    return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
