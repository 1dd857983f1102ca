"""Run directories → the models a server holds in memory.

A run is a tuneforge output directory (a LoRA/QLoRA adapter with its base, or a full model) or a plain
Hugging Face model directory. Runs whose adapters sit on the same base share one copy of the base:
each adapter is loaded into one ``PeftModel`` under its own name and chosen per batch row. The model id
of a run is its directory name, or the name given with ``NAME=PATH`` / ``--name``.

Settings that execute code (``trust_remote_code``, pickle weights) come from the person starting the
server, never from a run directory's saved config: a run directory may come from someone else.
"""
from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..config import BUILTIN_MODEL
from ..errors import ConfigError
from ..models import inference

BASE_ONLY = "__base__"  # peft's name for "no adapter" in a mixed-adapter batch
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,127}$")


@dataclass(frozen=True)
class RunSpec:
    """One RUN argument: the model id it is served as, and its directory."""

    name: str
    path: str


@dataclass(frozen=True)
class TrustSettings:
    """Code-executing load options; only the user sets them (command-line flags)."""

    trust_remote_code: bool = False
    allow_pickle_weights: bool = False


@dataclass
class Backbone:
    """One model in memory: a base with zero or more named adapters, or a full model."""

    key: str
    model: nn.Module
    device: torch.device
    context_limit: int
    adapters: dict[str, str] = field(default_factory=dict)  # peft adapter name -> adapter directory

    @property
    def has_adapters(self) -> bool:
        return bool(self.adapters)


@dataclass
class ServedModel:
    """What a request names by ``model``: a backbone, which adapter of it, and how to render prompts."""

    name: str
    path: str
    source: inference.ModelSource
    tokenizer: Any
    backbone: Backbone
    adapter_name: str | None  # peft adapter name; None for a full model, BASE_ONLY for a bare base
    stop_ids: list[int]
    created: int  # seconds since the epoch (the directory's modification time), for /v1/models

    @property
    def context_limit(self) -> int:
        return self.backbone.context_limit

    @property
    def kind(self) -> str:
        if self.source.adapter:
            return "qlora-adapter" if self.source.quantized_training else "lora-adapter"
        return "model"


def parse_specs(runs: list[str], names: list[str] | None) -> list[RunSpec]:
    """``RUN`` or ``NAME=RUN`` arguments, plus ``--name`` given once per RUN in order."""
    names = list(names or [])
    if names and len(names) != len(runs):
        raise ConfigError(f"--name was given {len(names)} time(s) for {len(runs)} run(s): give it once per RUN, "
                          "in order, or write RUN as NAME=PATH.")
    specs = []
    for i, arg in enumerate(runs):
        name, path = (arg.split("=", 1) if "=" in arg and not Path(arg).exists() else ("", arg))
        name = names[i] if names else name or Path(os.path.abspath(path)).name
        if not NAME_PATTERN.match(name):
            raise ConfigError(f"model name {name!r} (for {path}): use letters, digits and . _ : / - (at most 128).")
        if not Path(path).is_dir():
            raise ConfigError(f"RUN {path!r}: no such directory.")
        specs.append(RunSpec(name, path))
    seen: dict[str, str] = {}
    for spec in specs:
        if spec.name in seen:
            raise ConfigError(f"model name {spec.name!r} is used by both {seen[spec.name]} and {spec.path}; "
                              "name them with NAME=PATH or --name.")
        seen[spec.name] = spec.path
    return specs


def resolve(spec: RunSpec, trust: TrustSettings) -> inference.ModelSource:
    """The run's base, adapter and settings; the code-executing options are the user's, whatever the run says."""
    source = inference.resolve_source(spec.path, trust_remote_code=trust.trust_remote_code)
    return dataclasses.replace(source, allow_pickle_weights=trust.allow_pickle_weights)


def backbone_key(source: inference.ModelSource) -> str:
    """Runs with equal keys share one model in memory.

    A run trained on the built-in toy saves its own copy of the toy's weights (``base_model/``); those
    copies are all the same deterministic model, so they share. Otherwise the key is the base's real path
    (or hub id), so symlinked or relative spellings of one directory share too.
    """
    if source.adapter and source.run_config.get("model") == BUILTIN_MODEL:
        return BUILTIN_MODEL
    return os.path.realpath(source.base) if Path(source.base).is_dir() else source.base


def _context_limit(model: nn.Module, tokenizer, override: int | None) -> int:
    config = getattr(model, "config", None)
    found = [v for v in (getattr(config, "max_position_embeddings", None), getattr(tokenizer, "model_max_length", None))
             if isinstance(v, int) and 0 < v < 10_000_000]
    limit = min(found) if found else 2048
    if override is not None:
        if override < 1:
            raise ConfigError(f"--max-model-len={override}: must be >= 1.")
        limit = min(limit, override)
    return limit


def _load_base(source: inference.ModelSource, tokenizer, dtype_name: str, device: torch.device) -> nn.Module:
    base_source = dataclasses.replace(source, adapter=None)
    # The same choice as `tuneforge generate`, so a greedy answer is the same from both.
    dtype = inference.pick_dtype(dtype_name, device)
    return inference.load_model(base_source, tokenizer, dtype=dtype, device=device)


def _attach_adapters(model: nn.Module, adapters: dict[str, str]) -> nn.Module:
    from peft import PeftModel

    names = list(adapters)
    model = PeftModel.from_pretrained(model, adapters[names[0]], adapter_name=names[0], is_trainable=False)
    for name in names[1:]:
        try:
            model.load_adapter(adapters[name], adapter_name=name, is_trainable=False)
        except (ValueError, RuntimeError, KeyError) as exc:
            raise ConfigError(f"adapter {adapters[name]}: cannot load it next to {adapters[names[0]]} on the same "
                              f"base ({inference.first_line(exc)}).") from None
    model.eval()
    return model


def load_models(specs: list[RunSpec], *, trust: TrustSettings, dtype: str = "auto", device: torch.device | None = None,
                max_model_len: int | None = None, log=print) -> list[ServedModel]:
    """Load every run; runs that share a base share one backbone."""
    device = device or inference.default_device()
    sources = [resolve(spec, trust) for spec in specs]
    tokenizers = [inference.load_tokenizer_for(source) for source in sources]
    groups: dict[str, list[int]] = {}
    for i, source in enumerate(sources):
        groups.setdefault(backbone_key(source), []).append(i)
    served: list[ServedModel | None] = [None] * len(specs)
    for key, members in groups.items():
        first = sources[members[0]]
        model = _load_base(first, tokenizers[members[0]], dtype, device)
        adapters = {f"run{i}": sources[i].adapter for i in members if sources[i].adapter}
        if adapters:
            model = _attach_adapters(model, adapters)  # type: ignore[arg-type]
        backbone = Backbone(key, model, device, _context_limit(model, tokenizers[members[0]], max_model_len),
                            adapters)  # type: ignore[arg-type]
        for i in members:
            adapter = f"run{i}" if sources[i].adapter else (BASE_ONLY if adapters else None)
            served[i] = ServedModel(specs[i].name, specs[i].path, sources[i], tokenizers[i], backbone, adapter,
                                    inference.stop_token_ids(model, tokenizers[i]),
                                    int(Path(specs[i].path).stat().st_mtime))
        log(f"loaded {', '.join(specs[i].name for i in members)} on {key if len(key) < 80 else '...' + key[-77:]} "
            f"({device.type}, context {backbone.context_limit} tokens)")
    return [s for s in served if s is not None]
