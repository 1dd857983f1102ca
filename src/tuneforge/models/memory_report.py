"""The start banner's memory lines, the advice when a run will not fit, and ``gradient_checkpointing: auto``.

Advice only names changes that lower the estimate (a LoRA adapter keeps more activations than full training
does, so for a tiny model with a huge batch "switch to LoRA" would be worse), and a batch larger than the
data set is estimated, and reported, as the rows that exist.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Sequence

import torch

from ..config import TrainConfig
from . import memory
from .memory import GIB, SAFETY_MARGIN, ModelShape, Sharding, estimate, largest_batch, micro_batch_tokens

# A change must save at least this share of the estimate to be worth suggesting.
MIN_SAVING = 0.03


def _same_effective_batch(cfg: TrainConfig, batch: int) -> TrainConfig:
    """``cfg`` with micro-batch ``batch`` and the accumulation that keeps rows per optimizer step (rounded up)."""
    rows = int(cfg.per_device_train_batch_size) * cfg.gradient_accumulation_steps
    return dataclasses.replace(cfg, per_device_train_batch_size=batch, gradient_accumulation_steps=-(-rows // batch))


def _variants(cfg: TrainConfig, fitted_batch: int) -> list[tuple[str, TrainConfig]]:
    """Config changes that can lower memory, least intrusive first, each described as the keys to set."""
    out = []
    batch = int(cfg.per_device_train_batch_size)
    if 0 < fitted_batch < batch:
        v = _same_effective_batch(cfg, fitted_batch)
        out.append((f"per_device_train_batch_size: {fitted_batch}, gradient_accumulation_steps: "
                    f"{v.gradient_accumulation_steps} (same rows per step)", v))
    elif fitted_batch == 0 and batch > 1:
        v = _same_effective_batch(cfg, 1)
        out.append((f"per_device_train_batch_size: 1, gradient_accumulation_steps: {v.gradient_accumulation_steps} "
                    "(same rows per step)", v))
    if cfg.gradient_checkpointing is not True:
        out.append(("gradient_checkpointing: true (~30% slower)",
                    dataclasses.replace(cfg, gradient_checkpointing=True)))
    if cfg.is_full:
        out.append(("lora_dim: 32 (LoRA)", dataclasses.replace(cfg, lora_dim=32)))
        out.append(("lora_dim: 32, load_in_4bit: true (QLoRA)",
                    dataclasses.replace(cfg, lora_dim=32, load_in_4bit=True)))
    elif not cfg.quantized:
        out.append(("load_in_4bit: true (QLoRA)", dataclasses.replace(cfg, load_in_4bit=True)))
    return out


def suggestions(cfg: TrainConfig, shape: ModelShape, device_type: str, mixed: str = "no",
                total_params: int | None = None, longest_row: int | None = None, *,
                usable: float | None = None, train_rows: int | None = None,
                sharding: Sharding | None = None) -> list[str]:
    """Each change that lowers the estimate, with the estimate it would give: those that fit ``usable``
    first (least intrusive first), then the others by estimate. Never a change that would need more."""
    kw: dict[str, Any] = dict(longest_row=longest_row, train_rows=train_rows, sharding=sharding)
    now = estimate(cfg, shape, device_type, mixed, total_params=total_params, **kw).total
    budget = usable if usable is not None else now
    fitted = largest_batch(cfg, shape, device_type, mixed, budget, limit=max(1, int(cfg.per_device_train_batch_size)),
                           total_params=total_params, **kw)
    fitting, other = [], []
    for order, (text, variant) in enumerate(_variants(cfg, fitted)):
        # a method change alters the parameter count: let the shape imply it
        params = total_params if variant.is_lora == cfg.is_lora else None
        total = estimate(variant, shape, device_type, mixed, total_params=params, **kw).total
        if total > now * (1 - MIN_SAVING):
            continue  # not an improvement: never suggest it
        line = f"{text} -> about {total / GIB:.1f} GiB"
        if usable is not None and total <= usable:
            fitting.append((order, line + " (fits)"))
        else:
            other.append((total, line))
    return [t for _, t in sorted(fitting)] + [t for _, t in sorted(other)]


def _batch_note(cfg: TrainConfig, train_rows: int | None) -> list[str]:
    batch = int(cfg.per_device_train_batch_size)
    if not train_rows or batch <= train_rows:
        return []
    return [f"  note: per_device_train_batch_size {batch} is larger than the {train_rows} training rows: a "
            f"micro-batch holds at most {train_rows} rows (the estimate counts those); "
            f"per_device_train_batch_size: {train_rows} says the same thing"]


def worst_micro_batch_row(cfg: TrainConfig, device_type: str, lengths: Sequence[int]) -> int:
    """Tokens per row of the largest micro-batch the data can form: its ``batch`` longest rows, padded to the
    longest on a GPU; on CPU a padded batch runs as row groups trimmed to their own longest row
    (``models.forward.length_groups``), so about the mean of those rows."""
    top = sorted((int(x) for x in lengths), reverse=True)[: max(1, int(cfg.per_device_train_batch_size))]
    return top[0] if device_type == "cuda" else -(-sum(top) // len(top))


def estimate_lines(cfg: TrainConfig, model: Any, device: torch.device, mixed: str, *, total_params: int,
                   trainable_params: int, longest_row: int | None = None, train_rows: int | None = None,
                   world: int = 1, train_lengths: Sequence[int] | None = None) -> tuple[list[str], dict[str, float]]:
    """The start banner's memory lines (a warning with suggestions when the run will not fit) and the
    figures for the metrics log's start record. ``train_lengths`` (tokens per training row or pair) gives
    the rows' count and the largest micro-batch better than ``longest_row`` and ``train_rows``."""
    if not isinstance(cfg.per_device_train_batch_size, int):  # 'auto' is resolved before the banner
        return ["  memory estimate: batch size not resolved yet"], {}
    if train_lengths is not None and len(train_lengths):
        train_rows, longest_row = len(train_lengths), worst_micro_batch_row(cfg, device.type, train_lengths)
    try:
        shape = ModelShape.from_config(model.config)
    except (AttributeError, TypeError, ValueError):  # an architecture without the usual config fields
        return ["  memory estimate: not available for this model's config"], {}
    from .memory import sharding_of

    sharding = sharding_of(cfg, world)
    est = estimate(cfg, shape, device.type, mixed, total_params=total_params, trainable_params=trainable_params,
                   longest_row=longest_row, train_rows=train_rows, sharding=sharding)
    seqs, row = micro_batch_tokens(cfg, longest_row, train_rows)
    rows_text = f"{seqs} x {row} tokens" + ("" if row == cfg.seq_length else " (the longest rows; seq_length "
                                                                             f"{cfg.seq_length})")
    dev = memory.device_memory(device)  # looked up on the module, so tests can stand in for the device
    parts = est.parts_gib()
    names = {"overhead": "runtime"}
    detail = ", ".join(f"{names.get(k, k)} {v:.2f}" for k, v in parts.items() if k != "total" and v > 0)
    lines = [f"  memory estimate: {parts['total']:.2f} GiB = {est.covers()} ({detail} GiB; micro-batch {rows_text})",
             f"    {dev.name}: {dev.total / GIB:.1f} GiB total, {dev.usable / GIB:.1f} GiB usable"]
    lines += _batch_note(cfg, train_rows)
    if est.total > dev.usable:
        lines.append(f"  WARNING: this run probably does not fit ({parts['total']:.1f} GiB needed, "
                     f"{dev.usable / GIB:.1f} GiB usable). Try:")
        tips = suggestions(cfg, shape, device.type, mixed, total_params, longest_row, usable=dev.usable,
                           train_rows=train_rows, sharding=sharding)
        lines += [f"    - {s}" for s in tips] or ["    - a shorter seq_length, or a machine with more memory"]
    return lines, {**{f"memory_estimate_{k}_gib": v for k, v in parts.items()},
                   "memory_estimate_allocated_gib": round(est.allocated / GIB, 3),
                   "device_memory_total_gib": round(dev.total / GIB, 3),
                   "device_memory_usable_gib": round(dev.usable / GIB, 3)}


def checkpointing_needed(cfg: TrainConfig, record: dict[str, float]) -> bool:
    """``gradient_checkpointing: auto``: on when the estimate without it exceeds the usable memory, less the
    safety margin the planner keeps too (so a planned batch gets the checkpointing the plan states)."""
    if cfg.gradient_checkpointing != "auto" or not record:
        return False
    return record["memory_estimate_total_gib"] > record["device_memory_usable_gib"] * (1 - SAFETY_MARGIN)
