"""A LoRA adapter folded into its base, saved as a standalone Hugging Face model directory (safetensors) with
the tokenizer and the run's settings: ``tuneforge merge`` (tools/merge.py) and vLLM serving (serving/vllm.py).
"""
from __future__ import annotations

import shutil
from pathlib import Path

import torch
import yaml

from ..errors import ConfigError
from ..rundir import CONFIG_FILE
from . import inference


def merge(run_dir: str, output: str, *, dtype: str = "auto", overwrite: bool = False, say=print,
          trust_remote_code: bool = False, allow_pickle_weights: bool = False) -> Path:
    """Write the merged model to ``output`` and return it."""
    if not Path(run_dir).is_dir():
        raise ConfigError(f"{run_dir!r}: no such run directory.")
    source = inference.resolve_source(run_dir, trust_remote_code=trust_remote_code)
    source.allow_pickle_weights = allow_pickle_weights
    if source.adapter is None:
        raise ConfigError(f"{run_dir!r} holds no LoRA adapter ({inference.ADAPTER_CONFIG}): a full-parameter run is "
                          "already a standalone model directory; nothing to merge.")
    out = Path(output)
    if out.resolve() == Path(run_dir).resolve():
        raise ConfigError("--output must differ from the run directory.")
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise ConfigError(f"--output {output!r} exists and is not empty; choose another directory or pass --overwrite.")
    device = torch.device("cpu")  # merging is a one-off; host memory is the larger pool
    torch_dtype = inference.pick_dtype(dtype, device, inference.base_dtype(source))
    dtype_name = str(torch_dtype).replace("torch.", "")
    if source.quantized_training:
        say(f"note: this adapter was trained on a {source.quantized_training} quantized base; it is merged into the "
            f"base loaded in {dtype_name} (never into quantized weights).")
    say(f"merging adapter {source.adapter} into {source.base} ({dtype_name}) ...")
    tokenizer = inference.load_tokenizer_for(source)
    model = inference.load_model(source, tokenizer, dtype=torch_dtype, device=device, merge=True)
    if out.exists() and overwrite:
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out), safe_serialization=True)
    tokenizer.save_pretrained(str(out))
    # Keep the run's template/system-prompt settings so chat and generate behave as with the run directory.
    settings = dict(source.run_config)
    settings.update(load_in_4bit=False, load_in_8bit=False, lora_dim=0, adapter_name_or_path=None)
    settings["_merged"] = {"from_run": str(Path(run_dir).resolve()), "base": source.base, "dtype": dtype_name,
                           "trained_on_quantized_base": source.quantized_training}
    (out / CONFIG_FILE).write_text(yaml.safe_dump(settings, allow_unicode=True, sort_keys=False), encoding="utf-8")
    say(f"merged model written to {out} (load it with AutoModelForCausalLM.from_pretrained)")
    return out
