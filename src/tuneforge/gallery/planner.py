"""``tuneforge plan``: which methods fit a GPU, with what batch size, checkpointing and multi-GPU parallelism.

Every figure comes from ``tuneforge.models.memory.estimate``, the estimator the training run itself uses for
its start banner and for ``gradient_checkpointing: auto``, so a plan and a run agree.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import TrainConfig
from ..errors import ConfigError
from ..models.catalog import METHODS, STRATEGIES, check_choice, find
from ..models.memory import GIB, SAFETY_MARGIN, MemoryEstimate, ModelShape, Sharding, estimate, largest_batch

MAX_BATCH = 256  # the planner reports batch sizes up to this
# Checkpointing costs ~30% more compute: the plan leaves it off when a batch of at least this many rows (or the
# checkpointed batch, if smaller) fits without it.
PREFER_BATCH_WITHOUT_CHECKPOINTING = 4
GPU_COUNTS = (2, 4, 8, 16, 32, 64)  # tried when a method does not fit the GPUs given
MULTI_GPU_PARALLELISM = ("ddp", "zero2", "fsdp", "zero3")  # fastest first: the first that fits is recommended
PARALLELISM_NAMES = {"single": "1 GPU", "ddp": "DDP", "zero2": "DeepSpeed ZeRO-2", "zero3": "DeepSpeed ZeRO-3",
                     "fsdp": "FSDP full_shard"}
PARALLELISM_KEYS = {"ddp": {}, "zero2": {"deepspeed": "zero2"}, "zero3": {"deepspeed": "zero3"},
                    "fsdp": {"fsdp": "full_shard"}}


@dataclass
class Fit:
    """One way to run a method: parallelism and GPU count, the largest batch, checkpointing, the estimate."""

    parallelism: str  # single | ddp | zero2 | zero3 | fsdp
    gpus: int
    batch_size: int
    gradient_checkpointing: bool
    estimate: MemoryEstimate
    batch_size_with_checkpointing: int = 0  # the larger batch checkpointing allows (0 when not computed)
    batch_size_without_checkpointing: int = 0  # the largest batch without it (0: none fits)

    def to_dict(self) -> dict[str, Any]:
        # "engine"/"engine_name": the JSON field names `tuneforge plan --json` has always printed
        return {"engine": self.parallelism, "engine_name": PARALLELISM_NAMES[self.parallelism], "gpus": self.gpus,
                "per_device_train_batch_size": self.batch_size, "gradient_checkpointing": self.gradient_checkpointing,
                "per_device_train_batch_size_with_checkpointing": self.batch_size_with_checkpointing,
                "per_device_train_batch_size_without_checkpointing": self.batch_size_without_checkpointing,
                "config_keys": self.config_keys(), "estimate_gib": self.estimate.parts_gib()}

    def config_keys(self) -> dict[str, Any]:
        keys: dict[str, Any] = {"per_device_train_batch_size": self.batch_size,
                                "gradient_checkpointing": self.gradient_checkpointing}
        return keys | PARALLELISM_KEYS.get(self.parallelism, {})


@dataclass
class MethodPlan:
    method: str
    fit: Fit | None  # on the GPUs given; None when it does not fit there
    needs: list[Fit] = field(default_factory=list)  # the fewest GPUs per sharding parallelism when it does not fit
    note: str = ""
    minimum: MemoryEstimate | None = None  # when it does not fit: batch 1 with checkpointing on the GPUs given

    @property
    def fits(self) -> bool:
        return self.fit is not None

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "fits": self.fits, "fit": self.fit.to_dict() if self.fit else None,
                "needs": [f.to_dict() for f in self.needs], "note": self.note,
                "minimum_estimate_gib": self.minimum.parts_gib() if self.minimum else None}


@dataclass
class Plan:
    model: str
    source: str  # the gallery's hub id, or the config's path
    parameters: int
    strategy: str
    seq_length: int
    gpu_memory_gib: float
    gpus: int
    device: str
    methods: list[MethodPlan]

    def to_dict(self) -> dict[str, Any]:
        covers = ("peak memory of one GPU: tensors, CUDA context and allocator slack" if self.device == "cuda"
                  else "peak RSS of the training process, runtime baseline included")
        return {"model": self.model, "source": self.source, "parameters": self.parameters, "strategy": self.strategy,
                "seq_length": self.seq_length, "gpu_memory_gib": self.gpu_memory_gib, "gpus": self.gpus,
                "device": self.device, "estimate_covers": covers, "unit": "GiB",
                "planned_to_gib": round(self.gpu_memory_gib * (1 - SAFETY_MARGIN), 2),
                "methods": [m.to_dict() for m in self.methods]}


def model_shape(model: str) -> tuple[ModelShape, str, str]:
    """(shape, display id, source) for a gallery id or hub id in the gallery, a local model directory, or a
    config.json file; nothing is downloaded."""
    entry = find(model)
    if entry is not None:
        return ModelShape.from_config(entry.hf_config()), entry.id, entry.hub_id
    path = Path(model)
    if path.is_file() and path.name.endswith(".json"):
        path = path.parent if path.name == "config.json" else path
    if (path / "config.json").is_file() or path.is_file():
        from transformers import AutoConfig

        try:
            cfg = AutoConfig.from_pretrained(str(path), local_files_only=True)
            return ModelShape.from_config(cfg), model, str(path)
        except (OSError, ValueError, AttributeError, TypeError) as exc:
            raise ConfigError(f"model={model!r}: cannot read its config ({str(exc).splitlines()[0][:200]}).") from None
    from ..models.catalog import close_matches

    hints = close_matches(model)
    raise ConfigError(f"model={model!r}: not a gallery id, a local model directory or a config.json file"
                      + (f" (did you mean {', '.join(hints)}?)" if hints else "")
                      + ". 'tuneforge models list' shows the gallery; a hub model is planned from its config.json.")


def method_config(strategy: str, method: str, seq_length: int, **keys: Any) -> TrainConfig:
    """The config a method trains with (the planner's defaults: LoRA r32 on q,k,v,o, dropout 0.05)."""
    quant = {"load_in_4bit": method == "qlora4", "load_in_8bit": method == "qlora8"}
    return TrainConfig(training_strategy=strategy, train_data="(plan)", seq_length=seq_length,
                       lora_dim=0 if method == "full" else 32, per_device_train_batch_size=1,
                       gradient_checkpointing=False, **quant, **keys)


def _sharding(parallelism: str, gpus: int) -> Sharding:
    return Sharding("ddp" if parallelism == "single" else parallelism, gpus)


def _try(cfg: TrainConfig, shape: ModelShape, device: str, mixed: str, budget: float, parallelism: str,
         gpus: int) -> Fit | None:
    """The largest batch without checkpointing; if none fits, with it. None when batch 1 does not fit."""
    sharding = _sharding(parallelism, gpus)
    kw = dict(sharding=sharding)
    plain = largest_batch(cfg, shape, device, mixed, budget, limit=MAX_BATCH, **kw)
    ckpt_cfg = dataclasses.replace(cfg, gradient_checkpointing=True)
    with_ckpt = largest_batch(ckpt_cfg, shape, device, mixed, budget, limit=MAX_BATCH, **kw)
    if plain == 0 and with_ckpt == 0:
        return None
    use_ckpt = plain < min(PREFER_BATCH_WITHOUT_CHECKPOINTING, with_ckpt)
    chosen = dataclasses.replace(ckpt_cfg if use_ckpt else cfg,
                                 per_device_train_batch_size=with_ckpt if use_ckpt else plain)
    return Fit(parallelism, gpus, chosen.per_device_train_batch_size, use_ckpt,
               estimate(chosen, shape, device, mixed, sharding=sharding), with_ckpt, plain)


def _parallelisms(method: str, gpus: int) -> tuple[str, ...]:
    if gpus == 1:
        return ("single",)
    quantized = method.startswith("qlora")
    # ZeRO-3 cannot partition bitsandbytes weights (tuneforge refuses it): FSDP or ZeRO-2 for QLoRA.
    return tuple(p for p in MULTI_GPU_PARALLELISM if not (quantized and p == "zero3"))


def plan_method(shape: ModelShape, strategy: str, method: str, seq_length: int, budget: float, gpus: int,
                device: str = "cuda") -> MethodPlan:
    cfg = method_config(strategy, method, seq_length)
    mixed = "bf16" if device == "cuda" else "no"
    for parallelism in _parallelisms(method, gpus):
        fit = _try(cfg, shape, device, mixed, budget, parallelism, gpus)
        if fit is not None:
            return MethodPlan(method, fit)
    needs = []
    for parallelism in ("zero2", "fsdp", "zero3"):
        if parallelism not in _parallelisms(method, 2):
            continue
        for n in (c for c in GPU_COUNTS if c > gpus):
            fit = _try(cfg, shape, device, mixed, budget, parallelism, n)
            if fit is not None:
                needs.append(fit)
                break
    note = "" if needs else f"does not fit even on {GPU_COUNTS[-1]} GPUs of this size at seq_length {seq_length}"
    most_sharded = _parallelisms(method, gpus)[-1]
    smallest = dataclasses.replace(cfg, gradient_checkpointing=True)
    minimum = estimate(smallest, shape, device, mixed, sharding=_sharding(most_sharded, gpus))
    return MethodPlan(method, None, needs, note, minimum)


def plan(model: str, gpu_memory_gib: float, gpus: int = 1, strategy: str = "sft", method: str | None = None,
         seq_length: int = 1024, device: str = "cuda") -> Plan:
    """Plan every method (or one) for ``gpus`` GPUs of ``gpu_memory_gib`` GiB each."""
    check_choice("strategy", strategy, STRATEGIES)
    methods = METHODS if method in (None, "all") else (check_choice("method", method, METHODS),)
    if not gpu_memory_gib or gpu_memory_gib <= 0:
        raise ConfigError(f"gpu_memory={gpu_memory_gib!r}: must be a positive number of GiB.")
    if gpus < 1:
        raise ConfigError(f"gpus={gpus!r}: must be at least 1.")
    if seq_length < 8:
        raise ConfigError(f"seq_length={seq_length!r}: must be >= 8.")
    shape, name, source = model_shape(model)
    budget = gpu_memory_gib * GIB * (1 - SAFETY_MARGIN)  # estimates were within 11% of measured GPU peaks
    order = ("qlora4", "qlora8", "lora", "full")
    rows = [plan_method(shape, strategy, m, seq_length, budget, gpus, device) for m in order if m in methods]
    return Plan(name, source, shape.total_params(), strategy, seq_length, gpu_memory_gib, gpus, device, rows)
