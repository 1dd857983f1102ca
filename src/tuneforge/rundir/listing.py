"""What a run directory offers for download, and safe resolution of a requested file inside it.

``list_outputs`` is what the console's outputs table and the service's outputs route show.
"""
from __future__ import annotations

import os
from pathlib import Path

from ..pathtext import path_text_problem
from .names import (CONFIG_FILE, EXPORT_PREFIX, LOG_FILE, METRICS_FILE, RESOURCES_FILE, TASK_CONFIG_FILE)

# Files a user comes for first (the trained weights and how to load them), listed before the rest.
_FIRST = ("adapter_model.safetensors", "adapter_config.json", "model.safetensors", "config.json")
_DESCRIPTIONS = {
    "adapter_model.safetensors": "LoRA adapter weights (load with peft.PeftModel.from_pretrained)",
    "adapter_config.json": "LoRA adapter configuration",
    "model.safetensors": "model weights (load with AutoModelForCausalLM.from_pretrained)",
    "config.json": "model configuration",
    "tokenizer.json": "tokenizer", "tokenizer_config.json": "tokenizer configuration, with the chat template",
    "chat_template.jinja": "chat template",
    METRICS_FILE: "metrics, one JSON object per logging event",
    RESOURCES_FILE: "host and GPU memory samples",
    LOG_FILE: "the training log",
    CONFIG_FILE: "the resolved config (written when training finished)",
    TASK_CONFIG_FILE: "the submitted task config",
}
_EXPORT_DESCRIPTIONS = {
    ".gguf": "GGUF model for llama.cpp, Ollama, LM Studio (verified by reading it back)",
    "Modelfile": "Ollama Modelfile (ollama create NAME -f Modelfile)", ".md": "how to run it",
    ".json": "the verification: logits of the file against the run's model"}


def list_outputs(run_dir: str | os.PathLike | None) -> list[dict]:
    """Top-level files of the run directory: ``{"name", "is_dir", "size_bytes", "description"}`` each, the
    weights first. Folders such as checkpoints are listed without a size (not downloadable as one file); the
    files of a GGUF export (``export-gguf-*/``) are listed too, by their path inside the run directory."""
    if not run_dir:
        return []
    root = Path(run_dir)
    try:
        children = list(root.iterdir())
    except OSError:
        return []
    out = []
    for child in children:
        if child.name.startswith("."):
            continue
        is_dir = child.is_dir()
        try:
            size = None if is_dir else child.stat().st_size
        except OSError:
            continue
        out.append({"name": child.name, "is_dir": is_dir, "size_bytes": size,
                    "description": _DESCRIPTIONS.get(child.name, "folder" if is_dir else "")})
        if is_dir and child.name.startswith(EXPORT_PREFIX):  # a verified GGUF export: its files, downloadable
            out += _export_files(child)
    rank = {name: i for i, name in enumerate(_FIRST)}
    out.sort(key=lambda f: (f["is_dir"], rank.get(f["name"], len(rank)), f["name"]))
    return out


def _export_files(folder: Path) -> list[dict]:
    files = []
    for f in sorted(folder.iterdir()):
        if f.is_file() and not f.name.startswith("."):
            what = _EXPORT_DESCRIPTIONS.get(f.suffix) or _EXPORT_DESCRIPTIONS.get(f.name, "")
            files.append({"name": f"{folder.name}/{f.name}", "is_dir": False, "size_bytes": f.stat().st_size,
                          "description": what})
    return files


def resolve_output(run_dir: str | os.PathLike, relative: str) -> Path | None:
    """The file ``relative`` inside ``run_dir``, or None when it is not a regular file strictly inside it
    (``..``, absolute paths and symlinks leading out are refused)."""
    if path_text_problem(relative):  # a NUL byte or an over-long name: no such file, not a filesystem error
        return None
    root = Path(run_dir).resolve()
    try:
        target = (root / relative).resolve()
        if root not in target.parents or not target.is_file():
            return None
    except (OSError, RuntimeError, ValueError):
        return None
    return target
