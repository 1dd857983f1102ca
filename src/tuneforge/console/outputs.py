"""What a task's run directory offers for download, and safe resolution of a requested file inside it."""
from __future__ import annotations

import os
from pathlib import Path

# Files a user comes for first (the trained weights and how to load them), listed before the rest.
_FIRST = ("adapter_model.safetensors", "adapter_config.json", "model.safetensors", "config.json")
_DESCRIPTIONS = {
    "adapter_model.safetensors": "LoRA adapter weights (load with peft.PeftModel.from_pretrained)",
    "adapter_config.json": "LoRA adapter configuration",
    "model.safetensors": "model weights (load with AutoModelForCausalLM.from_pretrained)",
    "config.json": "model configuration",
    "tokenizer.json": "tokenizer", "tokenizer_config.json": "tokenizer configuration, with the chat template",
    "chat_template.jinja": "chat template",
    "metrics.jsonl": "metrics, one JSON object per logging event",
    "resources.jsonl": "host and GPU memory samples",
    "train.log": "the training log",
    "tuneforge_config.yaml": "the resolved config (written when training finished)",
    "tuneforge_task.yaml": "the submitted task config",
}


def list_outputs(run_dir: str | os.PathLike | None) -> list[dict]:
    """Top-level files of the run directory (name, size in bytes, what it is); folders such as checkpoints are
    listed without a size and are not downloadable as one file."""
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
        if is_dir and child.name.startswith("export-gguf-"):  # a verified GGUF export: its files, downloadable
            out += _export_files(child)
    rank = {name: i for i, name in enumerate(_FIRST)}
    out.sort(key=lambda f: (f["is_dir"], rank.get(f["name"], len(rank)), f["name"]))
    return out


def _export_files(folder: Path) -> list[dict]:
    described = {".gguf": "GGUF model for llama.cpp, Ollama, LM Studio (verified by reading it back)",
                 "Modelfile": "Ollama Modelfile (ollama create NAME -f Modelfile)", ".md": "how to run it",
                 ".json": "the verification: logits of the file against the run's model"}
    files = []
    for f in sorted(folder.iterdir()):
        if f.is_file() and not f.name.startswith("."):
            what = described.get(f.suffix) or described.get(f.name, "")
            files.append({"name": f"{folder.name}/{f.name}", "is_dir": False, "size_bytes": f.stat().st_size,
                          "description": what})
    return files


def resolve_output(run_dir: str | os.PathLike, relative: str) -> Path | None:
    """The file ``relative`` inside ``run_dir``, or None when it is not a regular file strictly inside it
    (``..``, absolute paths and symlinks leading out are refused)."""
    root = Path(run_dir).resolve()
    try:
        target = (root / relative).resolve()
    except (OSError, RuntimeError):
        return None
    if root not in target.parents or not target.is_file():
        return None
    return target
