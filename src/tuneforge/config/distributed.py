"""Training on several devices: DDP by default, FSDP or DeepSpeed ZeRO."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional

from .keys import config_key


@dataclass
class DistributedArgs:
    """Training on several devices: DDP by default, FSDP or DeepSpeed ZeRO."""

    fsdp: Optional[Literal["full_shard"]] = config_key(
        None, "Shard parameters, gradients and optimizer state over the processes with PyTorch FSDP: 'full_shard' "
        "(LoRA and full). Default with more than one process: DDP (a full replica per process).")
    deepspeed: Optional[str] = config_key(
        None, "Train through DeepSpeed ZeRO: 'zero2', 'zero3' (shipped configs) or a path to a DeepSpeed JSON config "
        "('auto' values are filled from this config). Needs pip install deepspeed.")
