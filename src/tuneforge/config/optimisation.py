"""The optimizer and its schedule, the batch geometry, how long and with which seed."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional, Union

from .keys import config_key


@dataclass
class OptimisationArgs:
    """The optimizer and its schedule, the batch geometry, how long and with which seed."""

    learning_rate: float = config_key(1e-4, "Peak learning rate of AdamW.", lo=0.0, hi=1.0, lo_open=True)
    num_train_epochs: float = config_key(
        3.0, "Passes over the training data (2-10 is the usual range for fine-tuning; stop when validation stops "
        "improving).", lo=0.0, lo_open=True, hi=1000)
    per_device_train_batch_size: Union[int, Literal["auto"]] = config_key(
        4, "Rows per device per micro-batch, or 'auto': the largest that fits memory, found by trying a "
        "forward+backward on the longest rows (halving from 64), with gradient_accumulation_steps "
        "adjusted to keep effective_batch_size.", lo=1, hi=65536)
    gradient_accumulation_steps: int = config_key(
        1, "Micro-batches per optimizer step: effective batch = batch size x this x processes.", lo=1, hi=65536)
    effective_batch_size: Optional[int] = config_key(
        None, "Rows per optimizer step over all processes. When set, gradient_accumulation_steps is derived from it (= "
        "this / (batch size x processes)). Default: per_device_train_batch_size x "
        "gradient_accumulation_steps x processes.", lo=1, hi=1 << 24)
    lr_scheduler_type: Literal["cosine", "linear", "constant"] = config_key(
        "cosine", "Learning-rate decay after warmup.")
    warmup_ratio: float = config_key(
        0.03, "Fraction of optimizer steps spent warming the learning rate up linearly from 0.", lo=0.0, hi=0.5)
    weight_decay: float = config_key(0.0, "AdamW weight decay (not applied to biases and norms).", lo=0.0, hi=1.0)
    adam_beta1: float = config_key(0.9, "AdamW beta1.", lo=0.0, hi=1.0)
    adam_beta2: float = config_key(0.999, "AdamW beta2.", lo=0.0, hi=1.0)
    max_grad_norm: float = config_key(1.0, "Clip the global gradient norm to this (0 = no clipping).", lo=0.0, hi=1e6)
    max_steps: int = config_key(
        -1, "Stop after this many optimizer steps (-1 = run num_train_epochs).", lo=-1, hi=10 ** 9)
    seed: int = config_key(42, "Random seed for initialisation, data order and dropout.", lo=0, hi=2 ** 32 - 1)
    max_consecutive_nonfinite_steps: int = config_key(
        5, "A step whose loss or gradient norm is NaN/inf is skipped (weights and optimizer untouched); this many in a "
        "row stop the run (exit code 3).", lo=1, hi=10 ** 6)
