"""Training memory estimate, printed before training beside what the device has.

Terms (bytes): frozen weights at their load precision (4-bit ≈ 0.5 byte/param plus quantization
constants, 8-bit 1, bf16/fp16 2, fp32 4); trainable weights (fp32 masters; LoRA adapters are kept in
fp32), their gradients (fp32) and AdamW's two fp32 states; activations saved for the backward pass of
``per_device_train_batch_size x seq_length`` tokens (DPO: chosen and rejected, so twice the tokens).

Activation coefficients are per decoder layer and token, in elements of the activation dtype; they were
measured on this code (HF Llama blocks, SDPA, our chunked LM head) on CPU and match a hand count of the
tensors autograd keeps: the norms (input and normalised output), q/k/v after RoPE, the attention output
and its reshaped copy, and the SwiGLU MLP (gate, up, SiLU output, product, plus backward work buffers).
The LM head never materialises (tokens x vocab) logits here: it runs only on labelled positions, in
chunks of at most 2^25 logits (``losses._CHUNK_ELEMENTS``).
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Any

import torch

from ..config import TrainConfig

GIB = 1024 ** 3
# Elements kept per layer and token: ATTN_H x hidden + ATTN_KV x kv width + MLP_I x intermediate size.
ATTN_H, ATTN_KV, MLP_I = 12.0, 2.0, 6.0
# A LoRA-wrapped projection keeps its dropout output and mask besides the frozen path; (in + out) x this.
LORA_SAVED_WITH_DROPOUT, LORA_SAVED_NO_DROPOUT = 1.8, 0.75
LOGITS_CHUNK = 1 << 25  # as losses._CHUNK_ELEMENTS
CUDA_CONTEXT_GIB = 0.5  # CUDA context, kernels and allocator slack on a GPU
QUANT_OVERHEAD = {4: 0.04, 8: 0.02}  # per-block scales (double-quantized for 4-bit), as a fraction of the packed size


@dataclass
class ModelShape:
    hidden: int
    layers: int
    intermediate: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    tied: bool

    @classmethod
    def from_config(cls, config: Any) -> "ModelShape":
        cfg = config.get_text_config() if hasattr(config, "get_text_config") else config
        heads = int(getattr(cfg, "num_attention_heads", 1) or 1)
        hidden = int(cfg.hidden_size)
        return cls(hidden=hidden, layers=int(cfg.num_hidden_layers), intermediate=int(getattr(cfg, "intermediate_size", 4 * hidden)),
                   heads=heads, kv_heads=int(getattr(cfg, "num_key_value_heads", None) or heads),
                   head_dim=int(getattr(cfg, "head_dim", None) or hidden // heads), vocab=int(cfg.vocab_size),
                   tied=bool(getattr(cfg, "tie_word_embeddings", False)))

    @property
    def q_width(self) -> int:
        return self.heads * self.head_dim

    @property
    def kv_width(self) -> int:
        return self.kv_heads * self.head_dim

    def projections(self) -> dict[str, tuple[int, int]]:
        """(in, out) features of each linear layer in one decoder block."""
        h = self.hidden
        return {"q_proj": (h, self.q_width), "k_proj": (h, self.kv_width), "v_proj": (h, self.kv_width),
                "o_proj": (self.q_width, h), "gate_proj": (h, self.intermediate), "up_proj": (h, self.intermediate),
                "down_proj": (self.intermediate, h)}

    def block_linear_params(self) -> int:
        return self.layers * sum(i * o for i, o in self.projections().values())

    def total_params(self) -> int:
        embed = self.vocab * self.hidden * (1 if self.tied else 2)
        return self.block_linear_params() + embed + self.layers * 2 * self.hidden + self.hidden

    def lora_params(self, rank: int, targets: list[str]) -> int:
        chosen = self._targets(targets)
        return self.layers * sum(rank * (i + o) for name, (i, o) in self.projections().items() if name in chosen)

    def _targets(self, targets: list[str]) -> set[str]:
        return set(self.projections()) if targets == ["all-linear"] else set(targets)


@dataclass
class MemoryEstimate:
    weights: float  # bytes, frozen or full weights at load precision
    trainable: float  # LoRA adapter weights (fp32); 0 for full training (counted in weights)
    gradients: float
    optimizer: float
    activations: float
    overhead: float  # runtime context (CUDA)

    @property
    def total(self) -> float:
        return self.weights + self.trainable + self.gradients + self.optimizer + self.activations + self.overhead

    def parts_gib(self) -> dict[str, float]:
        return {k: round(v / GIB, 3) for k, v in dataclasses.asdict(self).items()} | {"total": round(self.total / GIB, 3)}


def _weight_bytes(cfg: TrainConfig, shape: ModelShape, total_params: int, mixed: str) -> float:
    compute_bytes = 2 if mixed != "no" else 4
    # Frozen LoRA bases live in 16 bit under mixed precision; full training keeps fp32 masters.
    base_bytes = compute_bytes if cfg.lora_dim > 0 else 4
    bits = 4 if cfg.load_in_4bit else 8 if cfg.load_in_8bit else None
    if bits is None:
        return total_params * base_bytes
    quantized = min(shape.block_linear_params(), total_params)
    rest = total_params - quantized  # embeddings, norms and the LM head stay in the compute dtype
    return quantized * bits / 8 * (1 + QUANT_OVERHEAD[bits]) + rest * compute_bytes


def _activation_bytes(cfg: TrainConfig, shape: ModelShape, mixed: str, row_tokens: int | None) -> float:
    rows = cfg.per_device_train_batch_size * (2 if cfg.training_strategy == "dpo" else 1)
    tokens = rows * min(cfg.seq_length, row_tokens or cfg.seq_length)
    b = 2 if mixed != "no" else 4  # bf16/fp16 autocast keeps 16-bit activations
    per_layer = ATTN_H * shape.hidden + ATTN_KV * shape.kv_width + MLP_I * shape.intermediate
    if cfg.lora_dim > 0:
        factor = LORA_SAVED_WITH_DROPOUT if cfg.lora_dropout > 0 else LORA_SAVED_NO_DROPOUT
        chosen = shape._targets(cfg.lora_target_modules)
        per_layer += sum((i + o) * factor + cfg.lora_dim for n, (i, o) in shape.projections().items() if n in chosen)
    if cfg.gradient_checkpointing is True:
        # Only each layer's input is kept; one layer's activations exist again while it is recomputed.
        layers = shape.layers * shape.hidden + per_layer
    else:
        layers = shape.layers * per_layer
    # Embedding output, final norm, gradient of the hidden states from the fused LM-head loss.
    edges = 4 * shape.hidden
    chunk_rows = min(tokens, max(1, LOGITS_CHUNK // shape.vocab))
    logits = chunk_rows * shape.vocab * 4 * 3  # fp32 logits, their exp and the gradient, one chunk at a time
    head_grad = shape.vocab * shape.hidden * 4 * 2 if cfg.lora_dim == 0 else 0  # LM-head weight gradient buffers
    return tokens * (layers + edges) * b + logits + head_grad


def estimate(cfg: TrainConfig, shape: ModelShape, device_type: str, mixed: str = "no", *,
             total_params: int | None = None, trainable_params: int | None = None,
             longest_row: int | None = None) -> MemoryEstimate:
    """Peak training memory of one device; ``mixed`` is the resolved mixed precision ('no', 'bf16', 'fp16');
    parameter counts default to those implied by ``shape``. Rows are taken as ``seq_length`` tokens long,
    or as the longest row when that is shorter (batches are padded to their longest row only)."""
    lora = cfg.lora_dim > 0
    if trainable_params is None:
        trainable_params = shape.lora_params(cfg.lora_dim, cfg.lora_target_modules) if lora else shape.total_params()
    # A loaded LoRA model's count includes its adapter; the shape's count is the bare base.
    total = total_params if total_params is not None else shape.total_params() + (trainable_params if lora else 0)
    frozen_total = total - trainable_params if lora else total
    weights = _weight_bytes(cfg, shape, frozen_total, mixed)
    if cfg.training_strategy == "dpo" and not lora and cfg.dpo_reference == "copy":
        weights *= 2  # a frozen copy of the policy as the reference model
    return MemoryEstimate(
        weights=weights, trainable=trainable_params * 4 if lora else 0.0, gradients=trainable_params * 4,
        optimizer=trainable_params * 8, activations=_activation_bytes(cfg, shape, mixed, longest_row),
        overhead=CUDA_CONTEXT_GIB * GIB if device_type == "cuda" else 0.0)


# -- what the device has -------------------------------------------------------------------------------


@dataclass
class DeviceMemory:
    name: str
    total: float  # bytes
    usable: float  # bytes this run can still use, counting what it already holds


def _meminfo(key: str) -> float | None:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith(key + ":"):
                    return float(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def device_memory(device: torch.device) -> DeviceMemory:
    if device.type == "cuda":
        free, total = torch.cuda.mem_get_info(device)
        return DeviceMemory(torch.cuda.get_device_name(device), float(total), float(free + torch.cuda.memory_reserved(device)))
    from ..monitor import host_memory

    total = _meminfo("MemTotal") or float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    available = _meminfo("MemAvailable") or total
    return DeviceMemory("host RAM", total, available + host_memory()["host_rss_gib"] * GIB)


# -- advice ------------------------------------------------------------------------------------------------


def _variants(cfg: TrainConfig) -> list[tuple[str, TrainConfig]]:
    """Config changes that lower memory, each described as the keys to set."""
    out = []
    if cfg.lora_dim == 0:
        out.append(("lora_dim: 32 (LoRA)", dataclasses.replace(cfg, lora_dim=32)))
        out.append(("lora_dim: 32, load_in_4bit: true (QLoRA)", dataclasses.replace(cfg, lora_dim=32, load_in_4bit=True)))
    elif not (cfg.load_in_4bit or cfg.load_in_8bit):
        out.append(("load_in_4bit: true (QLoRA)", dataclasses.replace(cfg, load_in_4bit=True)))
    if cfg.per_device_train_batch_size > 1:
        b = max(1, cfg.per_device_train_batch_size // 2)
        acc = cfg.gradient_accumulation_steps * cfg.per_device_train_batch_size // b
        out.append((f"per_device_train_batch_size: {b}, gradient_accumulation_steps: {acc} (same effective batch)",
                    dataclasses.replace(cfg, per_device_train_batch_size=b, gradient_accumulation_steps=acc)))
    if cfg.gradient_checkpointing is not True:
        out.append(("gradient_checkpointing: true", dataclasses.replace(cfg, gradient_checkpointing=True)))
    return out


def suggestions(cfg: TrainConfig, shape: ModelShape, device_type: str, mixed: str = "no",
                total_params: int | None = None, longest_row: int | None = None) -> list[str]:
    """Each memory-saving change with the estimate it would give, best first."""
    rows = []
    for text, variant in _variants(cfg):
        est = estimate(variant, shape, device_type, mixed, total_params=total_params, longest_row=longest_row)
        rows.append((est.total, f"{text} -> about {est.total / GIB:.1f} GiB"))
    return [text for _, text in sorted(rows)]


def estimate_lines(cfg: TrainConfig, model: Any, device: torch.device, mixed: str, *, total_params: int,
                   trainable_params: int, longest_row: int | None = None) -> tuple[list[str], dict[str, float]]:
    """The start banner's memory lines (a warning with suggestions when the run will not fit) and the
    figures for the metrics log's start record."""
    if not isinstance(cfg.per_device_train_batch_size, int):  # 'auto' is resolved before the banner
        return ["  memory estimate: batch size not resolved yet"], {}
    try:
        shape = ModelShape.from_config(model.config)
    except (AttributeError, TypeError, ValueError):  # an architecture without the usual config fields
        return ["  memory estimate: not available for this model's config"], {}
    est = estimate(cfg, shape, device.type, mixed, total_params=total_params, trainable_params=trainable_params,
                   longest_row=longest_row)
    row = min(cfg.seq_length, longest_row or cfg.seq_length)
    rows_text = f"seq_length {cfg.seq_length}" if row == cfg.seq_length else f"{row} tokens (longest row; seq_length {cfg.seq_length})"
    dev = device_memory(device)
    parts = est.parts_gib()
    detail = ", ".join(f"{k} {v:.2f}" for k, v in parts.items() if k != "total" and v > 0)
    lines = [f"  memory estimate: {parts['total']:.2f} GiB ({detail}; batch {cfg.per_device_train_batch_size} x "
             f"{rows_text}) | {dev.name}: {dev.total / GIB:.1f} GiB total, "
             f"{dev.usable / GIB:.1f} GiB usable"]
    if est.total > dev.usable:
        lines.append(f"  WARNING: this run probably does not fit ({parts['total']:.1f} GiB needed, "
                     f"{dev.usable / GIB:.1f} GiB usable). Try:")
        lines += [f"    - {s}" for s in suggestions(cfg, shape, device.type, mixed, total_params, longest_row)]
    return lines, {**{f"memory_estimate_{k}_gib": v for k, v in parts.items()},
                   "device_memory_total_gib": round(dev.total / GIB, 3), "device_memory_usable_gib": round(dev.usable / GIB, 3)}


def checkpointing_needed(cfg: TrainConfig, record: dict[str, float]) -> bool:
    """``gradient_checkpointing: auto``: on when the estimate without it exceeds the usable memory."""
    if cfg.gradient_checkpointing != "auto" or not record:
        return False
    return record["memory_estimate_total_gib"] > record["device_memory_usable_gib"]
