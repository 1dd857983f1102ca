"""The parallelism a run uses, all through accelerate: DDP (default), FSDP full sharding, DeepSpeed ZeRO-2/3.

tuneforge runs no parallelism of its own: it picks accelerate's plugin from the config and handles the
few places where a sharded model differs from a replicated one — the dtype FSDP needs, parameters used
outside their module's forward (ZeRO-3), and gathering sharded weights to save or restore them.
"""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import os
from pathlib import Path
from typing import Any, Iterator

import torch
from torch import nn

from ..config import TrainConfig
from ..errors import ConfigError
from ..preflight import load_deepspeed_config, zero_stage

FSDP_NEEDS_ACCELERATOR = ("accelerate runs FSDP only on GPUs (or other accelerators), in a distributed launch "
                          "(tuneforge train --nproc N for N >= 2; "
                          "torchrun --nproc_per_node N or accelerate launch for any N). "
                          "Remove fsdp to train with DDP.")


# -- accelerate plugins ---------------------------------------------------------------------------
def _fill_auto(ds: dict[str, Any], cfg: TrainConfig, mixed_precision: str) -> dict[str, Any]:
    """Replace DeepSpeed 'auto' values from the run config; the loop, not DeepSpeed, owns accumulation.

    DeepSpeed's own accumulation divides each loss by its step count; tuneforge already normalises every
    micro-batch by the step's total tokens and marks the accumulation boundary itself, so DeepSpeed is
    told 1 and the boundary comes from accelerate's ``sync_gradients``.
    """
    ds = copy.deepcopy(ds)

    def fill(section: dict[str, Any], key: str, value: Any) -> None:
        if section.get(key, "auto") == "auto":
            section[key] = value

    fill(ds, "train_micro_batch_size_per_gpu", cfg.per_device_train_batch_size)
    ds["gradient_accumulation_steps"] = 1
    ds.pop("train_batch_size", None)  # derived by DeepSpeed: micro batch x 1 x processes
    fill(ds, "gradient_clipping", cfg.max_grad_norm)
    for key, on in (("bf16", mixed_precision == "bf16"), ("fp16", mixed_precision == "fp16")):
        section = ds.setdefault(key, {})
        fill(section, "enabled", on)
    zero = ds.setdefault("zero_optimization", {})
    if zero_stage(ds) == 3:
        # Saving gathers the full 16-bit weights on rank 0 (accelerator.get_state_dict needs this).
        fill(zero, "stage3_gather_16bit_weights_on_model_save", True)
    for key, value in list(zero.items()):
        if value == "auto":
            zero.pop(key)  # DeepSpeed's defaults; they depend on the model's hidden size otherwise
    for section in ("optimizer", "scheduler"):
        if section in ds:
            raise ConfigError(f"deepspeed={cfg.deepspeed!r}: remove the {section!r} section; tuneforge builds the "
                              "AdamW optimizer and the learning-rate schedule from this config.")
    return ds


def accelerator_kwargs(cfg: TrainConfig, mixed_precision: str) -> dict[str, Any]:
    """Plugin keyword arguments for ``accelerate.Accelerator``; nothing for DDP (accelerate's default)."""
    if cfg.deepspeed:
        from accelerate.utils import DeepSpeedPlugin

        ds = _fill_auto(load_deepspeed_config(cfg.deepspeed), cfg, mixed_precision)
        return {"deepspeed_plugin": DeepSpeedPlugin(hf_ds_config=ds)}
    if cfg.fsdp:
        from accelerate.utils import FullyShardedDataParallelPlugin

        try:
            plugin = FullyShardedDataParallelPlugin(
                fsdp_version=1, sharding_strategy="FULL_SHARD", auto_wrap_policy="transformer_based_wrap",
                # LoRA mixes frozen and trained weights in one wrapped unit: keep the original parameters.
                use_orig_params=True, sync_module_states=True, state_dict_type="FULL_STATE_DICT",
                cpu_ram_efficient_loading=False)
        except RuntimeError as exc:  # accelerate: "no available devices found" on a CPU-only machine
            raise ConfigError(f"fsdp={cfg.fsdp!r}: {FSDP_NEEDS_ACCELERATOR} ({str(exc).strip()})") from None
        return {"fsdp_plugin": plugin}
    return {}


def needs_distributed_launch(cfg: TrainConfig) -> bool:
    """accelerate starts DeepSpeed and FSDP only inside a distributed launch (torchrun, accelerate launch)."""
    return bool(cfg.deepspeed or cfg.fsdp) and "LOCAL_RANK" not in os.environ


def check_launch(cfg: TrainConfig) -> None:
    """Before accelerate starts: the parallelism the config names can start, and no other is forced on."""
    for env, key in (("ACCELERATE_USE_DEEPSPEED", "deepspeed"), ("ACCELERATE_USE_FSDP", "fsdp")):
        if os.environ.get(env, "").lower() == "true" and not getattr(cfg, key):
            # accelerate would switch DeepSpeed/FSDP on behind the config's back (or, on CPU, silently not).
            raise ConfigError(f"{env}=true (set by accelerate launch --use_{key} or an accelerate config file) but "
                              f"this run's config has no {key} key: tuneforge reads {key} from its own config. "
                              f"Set {key}: {'zero2' if key == 'deepspeed' else 'full_shard'} (or another value) and "
                              "launch without that accelerate option.")
    if needs_distributed_launch(cfg):
        key, value = ("deepspeed", cfg.deepspeed) if cfg.deepspeed else ("fsdp", cfg.fsdp)
        raise ConfigError(f"{key}={value!r}: accelerate starts it only inside a distributed launch. Use the command "
                          "line (tuneforge train ..., which launches itself), or torchrun / accelerate launch.")


def check_parallelism(cfg: TrainConfig, accelerator) -> None:
    """accelerate silently falls back to DDP where a plugin does not apply (FSDP on CPU): say so instead."""
    from accelerate.utils import DistributedType

    if cfg.fsdp and accelerator.distributed_type != DistributedType.FSDP:
        raise ConfigError(f"fsdp={cfg.fsdp!r}: {FSDP_NEEDS_ACCELERATOR} This run is "
                          f"{accelerator.distributed_type.value} on {accelerator.device.type}.")
    if cfg.deepspeed and accelerator.distributed_type != DistributedType.DEEPSPEED:
        raise ConfigError(f"deepspeed={cfg.deepspeed!r}: accelerate starts DeepSpeed only in a distributed launch "
                          "(tuneforge train --nproc N; torchrun --nproc_per_node N or accelerate launch, N >= 1). "
                          f"This run is {accelerator.distributed_type.value} on {accelerator.device.type}.")


def is_fsdp(accelerator) -> bool:
    from accelerate.utils import DistributedType

    return accelerator.distributed_type == DistributedType.FSDP


def is_deepspeed(accelerator) -> bool:
    from accelerate.utils import DistributedType

    return accelerator.distributed_type == DistributedType.DEEPSPEED


def is_zero3(accelerator) -> bool:
    return is_deepspeed(accelerator) and accelerator.state.deepspeed_plugin.zero_stage == 3


def shards_parameters(accelerator) -> bool:
    """Each process holds only a slice of the weights (FSDP, ZeRO-3): reading them needs a gather."""
    return is_fsdp(accelerator) or is_zero3(accelerator)


def parallelism_name(accelerator) -> str:
    """What runs the processes, as the start banner and metrics.jsonl name it."""
    if is_deepspeed(accelerator):
        return f"DeepSpeed ZeRO-{accelerator.state.deepspeed_plugin.zero_stage}"
    if is_fsdp(accelerator):
        return "FSDP full_shard"
    return "DDP" if accelerator.num_processes > 1 else "single process"


def needs_lockstep(accelerator) -> bool:
    """FSDP and DeepSpeed communicate inside every forward/backward: all processes must run the same count."""
    return accelerator.num_processes > 1 and (is_fsdp(accelerator) or is_deepspeed(accelerator))


def adjust_precision(cfg: TrainConfig, precision):
    """FSDP flattens each wrapped unit's parameters into one tensor, which needs one dtype: frozen LoRA base
    weights then load in fp32 like the adapter (FSDP's mixed-precision policy still computes in 16 bit)."""
    if cfg.fsdp and not cfg.quantized and precision.load_dtype != torch.float32:
        return dataclasses.replace(precision, load_dtype=torch.float32)
    return precision


def prepare_model_for_parallelism(cfg: TrainConfig, accelerator, model: nn.Module, loss_module: nn.Module) -> None:
    """Per-parallelism adjustments (FSDP, ZeRO-3) between loading the model and ``accelerator.prepare``."""
    from ..models.forward import base_causal_lm

    base = base_causal_lm(model)
    if is_fsdp(accelerator):
        plugin = accelerator.state.fsdp_plugin
        # The prepared module wraps the HF model, so name the decoder layer classes to shard by explicitly.
        if plugin.transformer_cls_names_to_wrap is None:
            plugin.transformer_cls_names_to_wrap = list(getattr(base, "_no_split_modules", None) or [])
        if cfg.quantized:
            # QLoRA: 4-bit weights are stored in the compute dtype; every other tensor follows (one dtype per unit).
            dtype = next(p.dtype for p in model.parameters() if p.__class__.__name__ == "Params4bit") \
                if any(p.__class__.__name__ == "Params4bit" for p in model.parameters()) else torch.bfloat16
            for p in model.parameters():
                if p.is_floating_point() and p.__class__.__name__ != "Params4bit":
                    p.data = p.data.to(dtype)
    if is_zero3(accelerator):
        import deepspeed

        # The fused loss reads the LM head's weight inside the wrapper's forward, not the head's own:
        # ZeRO-3 must gather it for that module.
        head = base.get_output_embeddings()
        if head is not None:
            deepspeed.zero.register_external_parameter(loss_module, head.weight)


@contextlib.contextmanager
def full_parameters(accelerator, loss_module: nn.Module, params: list[nn.Parameter], *,
                    from_rank0: bool = False) -> Iterator[None]:
    """Within this block the (possibly sharded) parameters are whole on every process; with ``from_rank0``
    the values rank 0 holds at the end of the block become every process's (a snapshot restored by rank 0).
    Every process must enter it when parameters are sharded (it communicates)."""
    if is_fsdp(accelerator) and accelerator.num_processes > 1:
        from torch.distributed.fsdp import FullyShardedDataParallel as FSDP

        with FSDP.summon_full_params(loss_module, writeback=from_rank0, with_grads=False):
            yield
            if from_rank0:
                _broadcast(params)
    elif is_zero3(accelerator):
        import deepspeed

        with deepspeed.zero.GatheredParameters(params, modifier_rank=0 if from_rank0 else None):
            yield
    else:
        yield
        if from_rank0 and accelerator.num_processes > 1:
            _broadcast(params)


def _broadcast(params: list[nn.Parameter]) -> None:
    """Rank 0's values to every process (a restored snapshot read by rank 0 only)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        with torch.no_grad():
            for p in params:
                dist.broadcast(p.data, src=0)


def gathered_state_dict(accelerator, loss_module: nn.Module) -> dict[str, torch.Tensor] | None:
    """The full state dict of the wrapped HF model when parameters are sharded (FSDP, ZeRO-3), else None.

    Collective: every process calls it; only rank 0 gets the tensors (others get an empty dict or a copy).
    """
    if not shards_parameters(accelerator):
        return None
    state = accelerator.get_state_dict(loss_module)
    prefix = "model."
    return {k[len(prefix):]: v for k, v in (state or {}).items() if k.startswith(prefix)}


def save_pretrained_gathered(model: nn.Module, tokenizer, directory: Path, state: dict[str, torch.Tensor]) -> None:
    """Like ``outputs.save_model`` but from a gathered state dict (the live parameters are shards)."""
    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(directory), state_dict=state, safe_serialization=True)
    tokenizer.save_pretrained(str(directory))
