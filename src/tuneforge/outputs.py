"""What a run leaves behind: the adapter or full model, the tokenizer, the resolved config."""
from __future__ import annotations

from pathlib import Path

import torch
import yaml
from safetensors.torch import load_file, save_file
from torch import nn

from .config import TrainConfig

CONFIG_FILE = "tuneforge_config.yaml"


def is_peft(model: nn.Module) -> bool:
    return hasattr(model, "peft_config")


def save_model(model: nn.Module, tokenizer, directory: Path) -> None:
    """A PEFT adapter directory (LoRA/QLoRA) or a full Hugging Face model directory, plus the tokenizer."""
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(directory), safe_serialization=True)
    tokenizer.save_pretrained(str(directory))


def save_config(cfg: TrainConfig, directory: Path, extra: dict | None = None) -> None:
    data = cfg.to_dict()
    if extra:
        data["_run"] = extra
    (directory / CONFIG_FILE).write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")


def trainable_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().to("cpu", copy=True).contiguous() for n, p in model.named_parameters() if p.requires_grad}


def save_trainable(model: nn.Module, path: Path) -> None:
    """The trained parameters only (small for LoRA), for the best-model snapshot and checkpoints."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    save_file(trainable_state(model), str(tmp))
    tmp.replace(path)


def load_trainable(model: nn.Module, path: Path) -> None:
    state = load_file(str(path))
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, value in state.items():
            params[name].copy_(value.to(params[name].device, params[name].dtype))
