"""Training memory estimate: the start banner, ``gradient_checkpointing: auto`` and ``tuneforge plan`` use it.

The estimate is the peak memory of one device during a training step, in parts (bytes):

- ``runtime``: what the process holds besides the model. CPU: the interpreter and libraries (torch,
  transformers, peft, tokenizer), i.e. the RSS before the model loads; GPU: the CUDA context and the
  caching allocator's slack. With it the CPU total is comparable with the process's peak RSS (what the
  end banner prints) and the GPU total with the memory the card shows as used.
- ``weights``: frozen or trained weights at their load precision (4-bit ≈ 0.5 byte/param plus quantization
  constants, 8-bit 1, bf16/fp16 2, fp32 4). Full training keeps fp32 masters; a LoRA base lives in the
  compute dtype; QLoRA keeps the quantized linears packed and (peft's k-bit preparation) casts the rest —
  embeddings, norms, LM head — to fp32.
- ``trainable``/``gradients``/``optimizer``: LoRA adapters in fp32, fp32 gradients, AdamW's two fp32 states.
- ``activations``: what autograd keeps of ``rows x tokens`` for the backward pass (DPO: chosen and rejected).
- ``logits``: the LM head runs only on labelled positions and in chunks (``losses.CHUNK_ELEMENTS``), so
  only one chunk of fp32 logits (plus its exp and gradient) exists at a time; a head whose logits are
  post-processed (Gemma 2's soft-capping) materialises every labelled position's logits instead.

The activation coefficients (elements per layer and token) are counts of the tensors autograd saves; a device
profile scales them (bf16 on a GPU keeps some tensors in fp32) and adds what the runtime and the allocator hold.
Counts and profiles are fitted to measurements recorded with their source in ``bench/memory/measured.json``;
tests/unit/models/test_memory_calibration.py holds every estimate within 20 % of its measured figure, and
``SAFETY_MARGIN`` is what decisions made from an estimate leave free.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Any

import torch

from ..config import TrainConfig
from ..losses import CHUNK_ELEMENTS

GIB = 1024 ** 3
# Measured peaks were within 11% (GPU) and 16% (CPU) of their estimates (docs/gallery.md): decisions made from an
# estimate (the planner's batch sizes, gradient_checkpointing: auto) keep this share of the memory free.
SAFETY_MARGIN = 0.10
QUANT_OVERHEAD = {4: 0.04, 8: 0.02}  # per-block scales (double-quantized for 4-bit), as a fraction of the packed size


@dataclass(frozen=True)
class DeviceProfile:
    """What a kind of device keeps besides the saved activations' element count, and what its runtime costs."""

    activation_scale: float  # bytes kept per counted element, relative to the activation dtype's size
    logits_bytes: float  # bytes per element of one logits chunk (fp32 logits + their cast for the matmul)
    runtime_gib: float  # CPU: interpreter + libraries (RSS before the model loads); GPU: CUDA context
    allocator_slack: float  # GPU caching allocator: reserved beyond the tensors, as a fraction of them
    retained_ratio: float = 0.0  # CPU allocator: freed activation blocks still resident, x the activations ...
    retained_cap_gib: float = 0.0  # ... up to this much
    quantized_runtime_gib: float = 0.0  # more runtime when bitsandbytes runs the base (its CPU path)

    def overhead(self, activations: float, allocated: float, logits: float = 0.0) -> float:
        """Bytes besides the tensors: runtime, plus what the allocator holds beyond them. On a CPU the freed blocks
        it keeps resident are at least the logits chunk's backward buffer (as large as the chunk): what a small
        batch on a large vocabulary keeps (bench/memory/calibrate_cpu.py); the two reuse the same freed memory."""
        freed = max(self.retained_ratio * activations, logits if self.retained_ratio else 0.0)
        retained = min(freed, self.retained_cap_gib * GIB)
        return self.runtime_gib * GIB + self.allocator_slack * allocated + retained


# Elements autograd keeps per decoder layer and token (Llama-style block, SDPA), counted with
# torch.autograd.graph.saved_tensors_hooks on five shapes (bench/memory/measured.json, "saved_tensors"):
#   frozen base + LoRA on q,k,v,o:  5 x hidden + 2 x kv width + 3 x intermediate + rank per adapted projection
#   full training:                  8 x hidden + 2 x kv width + 4 x intermediate
#   lora_dropout > 0 adds 1.75 x the input width of each adapted projection (the dropped copy and its mask).
# Outside the layers: LoRA 1.25 x hidden per token, full training 7 x hidden.
LORA_H, LORA_KV, LORA_I, FULL_H, FULL_KV, FULL_I = 5.0, 2.0, 3.0, 8.0, 2.0, 4.0
DROPOUT_PER_INPUT = 1.75
EDGE_LORA_H, EDGE_FULL_H = 1.25, 7.0
# CPU: fp32 throughout; the peak RSS adds the process's baseline (0.35 GiB measured before the model loads) and
# what the C allocator keeps resident of freed activation blocks: 1.2x the activations, at most 0.45 GiB
# (fitted to the peak RSS of the runs in bench/memory/measured.json). A QLoRA run on CPU peaked 0.1-0.6 GiB
# higher than the same LoRA run (bitsandbytes' CPU path; it saves the same activations): 0.3 GiB more runtime.
# GPU (bf16 autocast): RMSNorm's fp32 upcasts and peft's fp32 adapter inputs keep ~1.5x the 16-bit count
# (fitted to the H200 peaks in bench/RESULTS.md); the CUDA context and ~7% caching-allocator slack come on top.
PROFILES = {
    "cpu": DeviceProfile(activation_scale=1.0, logits_bytes=4.0, runtime_gib=0.35, allocator_slack=0.0,
                         retained_ratio=1.2, retained_cap_gib=0.45, quantized_runtime_gib=0.3),
    "cuda": DeviceProfile(activation_scale=1.5, logits_bytes=6.0, runtime_gib=0.6, allocator_slack=0.07),
}
# A fast tokenizer's resident size grows with its vocabulary and merge list: 0.134 GiB measured for a 151,646-token
# byte-level BPE (bench/memory/calibrate_cpu.py), ~950 bytes per token.
TOKENIZER_BYTES_PER_TOKEN = 950
LOGITS_CHUNK = CHUNK_ELEMENTS  # the loss's chunk size per device (fp32 logits elements per chunk)


def profile_for(device_type: str) -> DeviceProfile:
    return PROFILES["cuda" if device_type == "cuda" else "cpu"]


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
    softcap_logits: bool = False  # logits post-processed (soft-capping): the fused chunked head is not used

    @classmethod
    def from_config(cls, config: Any) -> "ModelShape":
        cfg = config.get_text_config() if hasattr(config, "get_text_config") else config
        heads = int(getattr(cfg, "num_attention_heads", 1) or 1)
        hidden = int(cfg.hidden_size)
        return cls(hidden=hidden, layers=int(cfg.num_hidden_layers),
                   intermediate=int(getattr(cfg, "intermediate_size", 4 * hidden)),
                   heads=heads, kv_heads=int(getattr(cfg, "num_key_value_heads", None) or heads),
                   head_dim=int(getattr(cfg, "head_dim", None) or hidden // heads), vocab=int(cfg.vocab_size),
                   tied=bool(getattr(cfg, "tie_word_embeddings", False)),
                   softcap_logits=bool(getattr(cfg, "final_logit_softcapping", None)))

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
    activations: float  # decoder activations kept for the backward pass
    logits: float  # LM-head logits (one chunk, or every labelled position when not chunked)
    overhead: float  # runtime: CPU process baseline, or CUDA context + allocator slack
    device_type: str = "cpu"

    @property
    def total(self) -> float:
        return self.allocated + self.overhead

    @property
    def allocated(self) -> float:
        """The tensors alone: comparable with ``torch.cuda.max_memory_allocated`` on a GPU."""
        return self.weights + self.trainable + self.gradients + self.optimizer + self.activations + self.logits

    def parts_gib(self) -> dict[str, float]:
        parts = {k: v for k, v in dataclasses.asdict(self).items() if k != "device_type"}
        return {k: round(v / GIB, 3) for k, v in parts.items()} | {"total": round(self.total / GIB, 3)}

    def covers(self) -> str:
        """What the total is comparable with, in words."""
        if self.device_type == "cuda":
            return "peak GPU memory of one device, CUDA context and allocator slack included as 'runtime'"
        return "peak RSS of the training process, process baseline and allocator retention included as 'runtime'"


@dataclass(frozen=True)
class Sharding:
    """How parameters, gradients and optimizer state are split over ``world`` processes."""

    parallelism: str = "ddp"  # ddp | zero2 | zero3 | fsdp
    world: int = 1

    @property
    def shards_states(self) -> bool:  # gradients and optimizer state
        return self.world > 1 and self.parallelism in ("zero2", "zero3", "fsdp")

    @property
    def shards_weights(self) -> bool:
        return self.world > 1 and self.parallelism in ("zero3", "fsdp")


def sharding_of(cfg: TrainConfig, world: int) -> Sharding:
    """The parallelism a run's config selects (DeepSpeed stage from the shipped config names)."""
    if cfg.fsdp:
        return Sharding("fsdp", world)
    ds = str(cfg.deepspeed or "")
    if ds:
        return Sharding("zero3" if "3" in os.path.basename(ds) else "zero2", world)
    return Sharding("ddp", world)


def _weight_bytes(cfg: TrainConfig, shape: ModelShape, total_params: int, mixed: str) -> float:
    compute_bytes = 2 if mixed != "no" else 4
    # Frozen LoRA bases live in 16 bit under mixed precision; full training keeps fp32 masters.
    base_bytes = compute_bytes if cfg.is_lora else 4
    bits = 4 if cfg.load_in_4bit else 8 if cfg.load_in_8bit else None
    if bits is None:
        return total_params * base_bytes
    quantized = min(shape.block_linear_params(), total_params)
    rest = total_params - quantized  # embeddings, norms, LM head: cast to fp32 by peft's k-bit preparation
    return quantized * bits / 8 * (1 + QUANT_OVERHEAD[bits]) + rest * 4


def micro_batch_tokens(cfg: TrainConfig, row_tokens: int | None = None,
                       train_rows: int | None = None) -> tuple[int, int]:
    """(sequences, tokens per sequence) of the largest micro-batch: never more rows than the data has."""
    rows = int(cfg.per_device_train_batch_size)
    if train_rows:
        rows = min(rows, train_rows)
    if cfg.training_strategy == "grpo":  # a prompt row trains as num_generations prompt+completion sequences
        prompt = row_tokens or cfg.seq_length - cfg.max_completion_length
        return rows * cfg.num_generations, min(cfg.seq_length, prompt + cfg.max_completion_length)
    seqs = rows * (2 if cfg.training_strategy == "dpo" else 1)
    return seqs, min(cfg.seq_length, row_tokens or cfg.seq_length)


def layer_elements(cfg: TrainConfig, shape: ModelShape) -> float:
    """Activation elements one decoder layer keeps per token (see the coefficients above)."""
    h, kv, inter = shape.hidden, shape.kv_width, shape.intermediate
    if cfg.lora_dim == 0:
        return FULL_H * h + FULL_KV * kv + FULL_I * inter
    chosen = shape._targets(cfg.lora_target_modules)
    per_layer = LORA_H * h + LORA_KV * kv + LORA_I * inter + cfg.lora_dim * len(chosen & set(shape.projections()))
    # adapters on the MLP keep inputs a frozen MLP does not: the normed input (gate/up), the product (down)
    per_layer += h * bool(chosen & {"gate_proj", "up_proj"}) + inter * ("down_proj" in chosen)
    if cfg.lora_dropout > 0:
        per_layer += DROPOUT_PER_INPUT * sum(i for n, (i, _) in shape.projections().items() if n in chosen)
    return per_layer


def _activation_bytes(cfg: TrainConfig, shape: ModelShape, prof: DeviceProfile, mixed: str, tokens: int) -> float:
    b = (2 if mixed != "no" else 4) * prof.activation_scale  # bf16/fp16 autocast keeps 16-bit activations
    per_layer = layer_elements(cfg, shape)
    if cfg.gradient_checkpointing is True:
        # Only each layer's input is kept; in the backward pass one layer is recomputed, so its activations
        # and their gradients exist again (a 2-layer model saves almost nothing this way: measured).
        layers = shape.layers * shape.hidden + 2 * per_layer
    else:
        layers = shape.layers * per_layer
    edges = (EDGE_LORA_H if cfg.lora_dim > 0 else EDGE_FULL_H) * shape.hidden
    return tokens * (layers + edges) * b


def _logit_bytes(cfg: TrainConfig, shape: ModelShape, prof: DeviceProfile, device_type: str, tokens: int) -> float:
    if shape.softcap_logits:  # every labelled position's fp32 logits, their soft-capped copy, softmax and gradient
        return tokens * shape.vocab * 4 * 4
    chunk = LOGITS_CHUNK.get("cuda" if device_type == "cuda" else "cpu", 1 << 25)
    chunk_rows = min(tokens, max(1, chunk // shape.vocab))
    logits = chunk_rows * shape.vocab * prof.logits_bytes  # one chunk at a time (exp and scaling in place)
    head_grad = shape.vocab * shape.hidden * 4 if cfg.lora_dim == 0 else 0  # the fp32 LM-head gradient buffer
    return logits + head_grad


def estimate(cfg: TrainConfig, shape: ModelShape, device_type: str, mixed: str = "no", *,
             total_params: int | None = None, trainable_params: int | None = None,
             longest_row: int | None = None, train_rows: int | None = None,
             sharding: Sharding | None = None) -> MemoryEstimate:
    """Peak training memory of one device; ``mixed`` is the resolved mixed precision ('no', 'bf16', 'fp16');
    parameter counts default to those implied by ``shape``. Rows are taken as ``seq_length`` tokens long, or
    as the longest row when that is shorter (batches are padded to their longest row only); a micro-batch
    never holds more rows than the data set (``train_rows``)."""
    prof, shard = profile_for(device_type), sharding or Sharding()
    lora = cfg.is_lora
    if trainable_params is None:
        trainable_params = shape.lora_params(cfg.lora_dim, cfg.lora_target_modules) if lora else shape.total_params()
    # A loaded LoRA model's count includes its adapter; the shape's count is the bare base.
    total = total_params if total_params is not None else shape.total_params() + (trainable_params if lora else 0)
    frozen_total = total - trainable_params if lora else total
    weights = _weight_bytes(cfg, shape, frozen_total, mixed)
    if cfg.training_strategy == "dpo" and not lora and cfg.dpo_reference == "copy":
        weights *= 2  # a frozen copy of the policy as the reference model
    if cfg.training_strategy == "grpo" and cfg.grpo_beta > 0 and (not lora or cfg.adapter_name_or_path):
        weights *= 2  # GRPO's frozen reference copy (training/grpo.py, reference_kind)
    if shard.shards_weights:
        # each process keeps its shard, plus whole layers gathered for compute (current and prefetched)
        layer = shape.block_linear_params() / max(shape.layers, 1) * (2 if mixed != "no" else 4)
        weights = weights / shard.world + 2 * layer
    seqs, row = micro_batch_tokens(cfg, longest_row, train_rows)
    tokens = seqs * row
    divide = shard.world if shard.shards_states else 1
    est = MemoryEstimate(
        weights=weights,
        trainable=(trainable_params * 4 / (shard.world if shard.shards_weights else 1)) if lora else 0.0,
        gradients=trainable_params * 4 / divide, optimizer=trainable_params * 8 / divide,
        activations=_activation_bytes(cfg, shape, prof, mixed, tokens),
        logits=_logit_bytes(cfg, shape, prof, device_type, tokens),
        overhead=0.0, device_type=device_type)
    if cfg.training_strategy == "grpo":
        # rollouts run before the update, without gradients: their key/value cache peaks instead of the activations
        rollout_rows = min(cfg.generation_batch_size or seqs, seqs)
        cache = 2 * shape.layers * shape.kv_width * rollout_rows * row * (2 if mixed != "no" else 4)
        est.activations = max(est.activations, cache)
    est.overhead = prof.overhead(est.activations, est.allocated, est.logits)
    if device_type != "cuda":  # the process also holds the tokenizer: its vocabulary and merges (host memory)
        est.overhead += shape.vocab * TOKENIZER_BYTES_PER_TOKEN
    if cfg.load_in_4bit or cfg.load_in_8bit:
        est.overhead += prof.quantized_runtime_gib * GIB
    return est


def largest_batch(cfg: TrainConfig, shape: ModelShape, device_type: str, mixed: str, budget: float, *,
                  limit: int = 1024, **kwargs: Any) -> int:
    """The largest per_device_train_batch_size (1..limit) whose estimate fits ``budget`` bytes; 0 if none."""
    def fits(batch: int) -> bool:
        return estimate(dataclasses.replace(cfg, per_device_train_batch_size=batch), shape, device_type, mixed,
                        **kwargs).total <= budget

    if not fits(1):
        return 0
    lo, hi = 1, limit
    while lo < hi:  # memory grows with the batch, so the fitting sizes are 1..answer
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid - 1)
    return lo


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
        return DeviceMemory(torch.cuda.get_device_name(device), float(total),
                            float(free + torch.cuda.memory_reserved(device)))
    from ..monitor import host_memory

    total = _meminfo("MemTotal") or float(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    available = _meminfo("MemAvailable") or total
    return DeviceMemory("host RAM", total, available + host_memory()["host_rss_gib"] * GIB)
