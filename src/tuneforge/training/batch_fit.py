"""Out of memory: recognise it, explain it, and (``per_device_train_batch_size: auto``) fit the batch to memory.

The effective batch (rows per optimizer step) defines the run: the sampler deals the same rows to
each global step whatever the micro-batch size, and the loss is normalised over the whole step, so
trading micro-batch size for accumulation steps changes memory, not the training.
"""
from __future__ import annotations

import dataclasses
import gc
from typing import Any, Callable, Sequence

import torch

from ..config import TrainConfig
from ..errors import ConfigError, TrainingAborted
from .batching import BatchGeometry

AUTO_START = 64  # first micro-batch size tried by per_device_train_batch_size: auto

_CPU_OOM_MARKERS = ("can't allocate memory", "cannot allocate memory", "defaultcpuallocator", "out of memory")


def is_oom(exc: BaseException) -> bool:
    """A CUDA OOM, or the CPU allocator's 'can't allocate memory' RuntimeError."""
    if isinstance(exc, torch.OutOfMemoryError):
        return True
    return isinstance(exc, RuntimeError) and any(m in str(exc).lower() for m in _CPU_OOM_MARKERS)


def free_memory() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def oom_message(cfg: TrainConfig, micro_batch: int, accumulation: int, where: str = "a training step") -> str:
    """What ran out, with the numbers that caused it and what to change, most effective first."""
    advice = [
        f"lower per_device_train_batch_size (now {micro_batch}) and raise gradient_accumulation_steps "
        f"(now {accumulation}) to keep the effective batch — or set per_device_train_batch_size: auto",
        f"lower seq_length (now {cfg.seq_length}; 'tuneforge stats' shows your rows' token lengths)",
    ]
    if cfg.gradient_checkpointing is not True:
        advice.append("set gradient_checkpointing: true (~30% slower, much less activation memory)")
    if cfg.is_full:
        advice.append("train LoRA instead of all parameters (lora_dim: 32)")
    elif not cfg.quantized:
        advice.append("load the base model in 4 bit (load_in_4bit: true, QLoRA)")
    return (f"out of memory in {where} with per_device_train_batch_size={micro_batch}, seq_length={cfg.seq_length}. "
            "Try: " + "; ".join(f"({i + 1}) {a}" for i, a in enumerate(advice)) + ".")


def _requested_effective(cfg: TrainConfig, world: int, per_device: int | None) -> int | None:
    if cfg.effective_batch_size is not None:
        return cfg.effective_batch_size
    if per_device is None:
        return None  # auto without an explicit effective batch: keep the accumulation, grow the batch
    return BatchGeometry(per_device, cfg.gradient_accumulation_steps).effective(world)


def geometry_for(cfg: TrainConfig, world: int, fitted: int | None = None) -> BatchGeometry:
    """Micro-batch and accumulation for ``cfg``; ``fitted`` is the largest micro-batch found to fit (auto)."""
    auto = cfg.per_device_train_batch_size == "auto"
    if auto and fitted is None:
        raise ValueError("per_device_train_batch_size: auto needs a fitted micro-batch")
    per_device = fitted if auto else int(cfg.per_device_train_batch_size)
    effective = _requested_effective(cfg, world, None if auto else per_device)
    if effective is None:
        return BatchGeometry(per_device, cfg.gradient_accumulation_steps)
    if effective % world:
        raise ConfigError(f"effective_batch_size={effective}: not divisible by the {world} processes.")
    per_process = effective // world
    if auto:  # the largest micro-batch that fits and divides the per-process batch exactly
        per_device = max(d for d in range(1, min(per_device, per_process) + 1) if per_process % d == 0)
    elif per_process % per_device:
        raise ConfigError(f"effective_batch_size={effective}: not a multiple of per_device_train_batch_size="
                          f"{per_device} x {world} processes.")
    return BatchGeometry(per_device, per_process // per_device)


def fit_micro_batch(try_batch: Callable[[int], None], start: int, on_oom: Callable[[int, BaseException], None]) -> int:
    """Largest micro-batch size, halving from ``start``, for which ``try_batch`` runs without running out of memory."""
    size = start
    while True:
        try:
            try_batch(size)
            return size
        except (RuntimeError, torch.OutOfMemoryError) as exc:
            if not is_oom(exc):
                raise
            on_oom(size, exc)
            free_memory()
            if size == 1:
                raise
            size = max(1, size // 2)


def probe_step(recipe: Any, loss_module: torch.nn.Module, device: torch.device,
               trainable: Sequence[torch.nn.Parameter], size: int) -> None:
    """One forward+backward on the ``size`` longest training rows (the worst case of a micro-batch); no update."""
    lengths = recipe.train_lengths
    rows = sorted(range(len(lengths)), key=lambda i: -lengths[i])[:size]
    loss_module.train()
    try:
        batch = recipe.collate(rows, "train").to(device)
        loss, _ = recipe.loss(loss_module, batch)
        loss.backward()
    finally:
        for p in trainable:
            p.grad = None


def resolve_auto_batch(cfg: TrainConfig, recipe: Any, loss_module: torch.nn.Module, device: torch.device,
                       world: int, say: Callable[[str], None]) -> BatchGeometry:
    """The largest micro-batch that fits memory, with the accumulation that keeps the effective batch."""
    n_rows = len(recipe.train_lengths)
    effective = _requested_effective(cfg, world, None)
    start = min(AUTO_START, n_rows, effective // world if effective else AUTO_START)
    trainable = [p for p in loss_module.parameters() if p.requires_grad]

    def report(size: int, exc: BaseException) -> None:
        say(f"  per_device_train_batch_size: auto — {size} rows ran out of memory, trying {max(1, size // 2)}")

    devices = [device] if device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=devices):  # the probe's dropout must not shift the run's RNG stream
            fitted = fit_micro_batch(lambda n: probe_step(recipe, loss_module, device, trainable, n), max(1, start),
                                     report)
    except (RuntimeError, torch.OutOfMemoryError) as exc:
        if is_oom(exc):
            raise TrainingAborted(oom_message(cfg, 1, cfg.gradient_accumulation_steps,
                                              "the batch-size probe (even 1 row does not fit)")) from None
        raise
    geo = geometry_for(cfg, world, fitted)
    say(f"  per_device_train_batch_size: auto — {fitted} rows fit; using {geo.per_device} x "
        f"{geo.accumulation} accumulation x {world} processes = {geo.effective(world)} rows per step")
    return geo


def apply_geometry(cfg: TrainConfig, geometry: BatchGeometry) -> TrainConfig:
    """``cfg`` with the resolved micro-batch and accumulation (what the recipes read and the saved config records)."""
    return dataclasses.replace(cfg, per_device_train_batch_size=geometry.per_device,
                               gradient_accumulation_steps=geometry.accumulation)


def rechunk(micro_rows: Sequence[Sequence[int]], limit: int) -> list[list[int]]:
    """Split micro-batches so none exceeds ``limit`` rows (same rows, same order)."""
    out: list[list[int]] = []
    for mb in micro_rows:
        out.extend(list(mb[i: i + limit]) for i in range(0, len(mb), limit))
    return out


def resolve_batch(cfg: TrainConfig, saved_geometry: dict[str, int] | None,
                  make_probe_recipe: Callable[[TrainConfig], Any],
                  loss_module: torch.nn.Module, device: torch.device, world: int,
                  say: Callable[[str], None]) -> BatchGeometry:
    """The run's batch geometry, resolved once at its start: fixed, with the accumulation derived from
    effective_batch_size, fitted to memory (auto), or — resuming an auto run — the checkpoint's."""
    if cfg.per_device_train_batch_size != "auto":
        return geometry_for(cfg, world)
    if saved_geometry:
        return BatchGeometry(saved_geometry["per_device_train_batch_size"],
                             saved_geometry["gradient_accumulation_steps"])
    if cfg.fsdp or cfg.deepspeed:
        raise ConfigError("per_device_train_batch_size: auto is not supported with fsdp/deepspeed; give a number.")
    probe = make_probe_recipe(dataclasses.replace(cfg, per_device_train_batch_size=1))
    return resolve_auto_batch(cfg, probe, loss_module, device, world, say)
