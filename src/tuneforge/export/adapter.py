"""``--adapter-only``: a PEFT LoRA adapter as a llama.cpp LoRA adapter GGUF.

What llama.cpp reads (its convert_lora_to_gguf writes the same): ``general.type = adapter``,
``adapter.type = lora``, ``adapter.lora.alpha`` (float32; the runtime scales by alpha / rank), and per adapted
weight ``<base tensor name>.lora_a`` (PEFT's lora_A, rank x in) and ``.lora_b`` (lora_B, out x rank). In the
Llama graph Q/K rows are reordered (tensors.to_llama_rope_rows), so lora_b of q/k gets the same reordering.
transformers cannot load adapters; the file is verified by reading it back with gguf's own GGUFReader.
"""
from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..errors import ConfigError
from ..models import inference
from ..rundir import EXPORT_README
from . import archs, outdir, runtime_files, tensors
from .verify import ExportVerificationError

PEFT_PREFIX = "base_model.model."


def _adapter_config(adapter_dir: Path) -> dict:
    cfg = json.loads((adapter_dir / inference.ADAPTER_CONFIG).read_text(encoding="utf-8"))
    where = str(adapter_dir / inference.ADAPTER_CONFIG)
    for key, why in (("use_dora", "DoRA magnitudes have no llama.cpp adapter form"),
                     ("modules_to_save", "fully trained modules are not LoRA tensors"),
                     ("rank_pattern", "per-module ranks"), ("alpha_pattern", "per-module alphas")):
        if cfg.get(key):
            raise ConfigError(f"{where}: {key} is set ({why}); export the merged model instead (without "
                              "--adapter-only).")
    return cfg


def effective_alpha(cfg: dict) -> float:
    """llama.cpp scales by alpha / rank; rsLoRA scales by alpha / sqrt(rank), i.e. alpha * sqrt(rank) / rank."""
    alpha = float(cfg.get("lora_alpha", cfg.get("r", 8)))
    return alpha * math.sqrt(int(cfg["r"])) if cfg.get("use_rslora") else alpha


def plan_adapter(weights_file: Path, config, spec: archs.ArchSpec, dtype: str) -> list[tensors.TensorPlan]:
    import gguf
    from safetensors import safe_open

    arch = next(a for a, n in gguf.MODEL_ARCH_NAMES.items() if n == spec.gguf_arch)
    name_map = gguf.get_tensor_name_map(arch, config.num_hidden_layers)
    n_kv = getattr(config, "num_key_value_heads", None) or config.num_attention_heads
    plans = []
    with safe_open(str(weights_file), framework="pt") as f:
        for key in f.keys():
            stem, part = key.removeprefix(PEFT_PREFIX), None
            for marker, suffix in ((".lora_A.weight", "lora_a"), (".lora_B.weight", "lora_b")):
                if stem.endswith(marker):
                    stem, part = stem[: -len(marker)] + ".weight", suffix
            base = tensors.gguf_name(stem, name_map) if part else None
            if base is None:
                raise ConfigError(f"{weights_file}: tensor {key!r} is not a LoRA A/B matrix of a layer llama.cpp "
                                  "adapts; export the merged model instead.")
            heads = 0
            if spec.permute_qk and part == "lora_b" and base.endswith(("attn_q.weight", "attn_k.weight")):
                heads = config.num_attention_heads if "attn_q" in base else n_kv
            shape = tuple(f.get_slice(key).get_shape())
            plans.append(tensors.TensorPlan(key, f"{base}.{part}", shape, tensors.storage_for(shape, dtype), heads))
    return plans


def _encoded(weights_file: Path, plans: list[tensors.TensorPlan]):
    from safetensors import safe_open

    with safe_open(str(weights_file), framework="pt") as f:
        for plan in plans:  # one tensor read and converted at a time
            yield plan, tensors.encode(plan, f.get_tensor(plan.hf_name))


def read_back(path: Path, plans: list[tensors.TensorPlan], weights_file: Path, arch: str, alpha: float) -> list[str]:
    """Problems found by reading ``path`` with gguf.GGUFReader: metadata, names, shapes and every value."""
    from gguf import GGUFReader
    from gguf.quants import dequantize
    from safetensors import safe_open

    reader = GGUFReader(str(path))

    def field(key):
        f = reader.fields.get(key)
        return None if f is None else f.contents()

    bad = [f"{k} = {field(k)!r}, expected {v!r}" for k, v in (
        ("general.architecture", arch), ("general.type", "adapter"), ("adapter.type", "lora")) if field(k) != v]
    if field("adapter.lora.alpha") is None or abs(field("adapter.lora.alpha") - alpha) > 1e-6 * max(1.0, alpha):
        bad.append(f"adapter.lora.alpha = {field('adapter.lora.alpha')!r}, expected {alpha}")
    stored = {t.name: t for t in reader.tensors}
    if set(stored) != {p.gguf_name for p in plans}:
        bad.append(f"tensor names differ: {sorted(set(stored) ^ {p.gguf_name for p in plans})[:4]}")
        return bad
    with safe_open(str(weights_file), framework="pt") as f:
        for plan in plans:
            t = stored[plan.gguf_name]
            if tuple(int(d) for d in reversed(t.shape)) != plan.shape:  # ggml lists dimensions innermost first
                bad.append(f"{plan.gguf_name}: shape {tuple(t.shape)} vs {plan.shape}")
                continue
            got = np.asarray(dequantize(t.data, t.tensor_type), dtype=np.float32).reshape(plan.shape)
            source = f.get_tensor(plan.hf_name).to(torch.float32)
            if plan.permute_heads:
                source = tensors.to_llama_rope_rows(source, plan.permute_heads)
            plain = tensors.TensorPlan(plan.hf_name, plan.gguf_name, plan.shape, plan.storage)
            if not np.array_equal(got, tensors.stored_values(plain, source).numpy()):
                bad.append(f"{plan.gguf_name}: values differ from the adapter's")
    return bad


def export_adapter(run: str, out: str, *, dtype: str = "f32", overwrite: bool = False, say: Callable = print,
                   trust_remote_code: bool = False) -> Path:
    """Write ``out/<name>-lora-<dtype>.gguf`` (+ Modelfile with ADAPTER, README.md), read back before it is kept."""
    from .run import base_config, file_stem
    from .writer import write_gguf

    target = Path(out)
    outdir.check_target(target, Path(run) if Path(run).is_dir() else None, overwrite)
    source = inference.resolve_source(run, trust_remote_code=trust_remote_code)
    if source.adapter is None:
        raise ConfigError(f"{run!r} holds no LoRA adapter ({inference.ADAPTER_CONFIG}); --adapter-only needs a LoRA "
                          "or QLoRA run (export a full run without it).")
    config = base_config(source)
    spec = archs.spec_for(config, f"{run!r} (base {source.base})")
    adapter_dir = Path(source.adapter)
    weights_file = adapter_dir / "adapter_model.safetensors"
    if not weights_file.is_file():
        raise ConfigError(f"{adapter_dir}: no adapter_model.safetensors (only safetensors adapters are exported).")
    cfg = _adapter_config(adapter_dir)
    alpha = effective_alpha(cfg)
    plans = plan_adapter(weights_file, config, spec, dtype)
    name, filename = file_stem(run), f"{file_stem(run)}-lora-{dtype}.gguf"
    staging = outdir.staging_dir(target)
    try:
        def metadata(writer) -> None:
            writer.add_type("adapter")
            writer.add_string("adapter.type", "lora")
            writer.add_float32("adapter.lora.alpha", alpha)
            writer.add_name(f"{name} (LoRA adapter)")

        say(f"writing {filename} ({spec.gguf_arch} LoRA adapter, {len(plans)} tensors, alpha {alpha:g}, rank "
            f"{cfg['r']}, {dtype}) ...")
        write_gguf(staging / filename, spec.gguf_arch, metadata, plans, _encoded(weights_file, plans), say)
        bad = read_back(staging / filename, plans, weights_file, spec.gguf_arch, alpha)
        report = [f"gguf.GGUFReader read back {filename}: general.type adapter, adapter.type lora, "
                  f"adapter.lora.alpha {alpha:g}, {len(plans)} tensors: names, shapes and values "
                  + ("DIFFER" if bad else "as written")]
        for line in report:
            say(line)
        if bad:
            raise ExportVerificationError("the adapter file failed verification, nothing was kept: " + "; ".join(bad))
        _runtime_files(staging, source, name, filename, target, dtype, report)
        outdir.move_into_place(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    say(f"exported to {target / filename}; the base model's GGUF is needed too (see {target / EXPORT_README})")
    return target / filename


def _runtime_files(staging: Path, source, name: str, filename: str, target: Path, dtype: str, report) -> None:
    from .run import file_stem
    from .vocab import with_default_system

    tokenizer = inference.load_tokenizer_for(source)
    base_out = f"{target.name}-base"
    base_file = f"../{base_out}/{file_stem(source.base)}-f16.gguf"
    info = runtime_files.RuntimeInfo(
        name, filename, with_default_system(getattr(tokenizer, "chat_template", None), source.system_prompt),
        source.system_prompt, runtime_files.stop_tokens(tokenizer), dict(runtime_files.GENERATION_DEFAULTS),
        int(source.run_config.get("seq_length") or 2048), adapter_base=base_file,
        base_export_command=f"tuneforge export {source.base} --format gguf --dtype f16 --out "
                            f"{target.parent / base_out}",
        report=report)
    (staging / "Modelfile").write_text(runtime_files.modelfile(info), encoding="utf-8")
    (staging / EXPORT_README).write_text(runtime_files.readme(info), encoding="utf-8")
