"""The model under evaluation: weights through the engine's inference loader, the run's settings as a
``TrainConfig`` (data encoding, DPO reference, precision), and the accelerator training's evaluation runs on.

The weights load in the dtype training computed its evaluation in (``resolve_precision``: fp32 on CPU;
the 16-bit base of a LoRA run on a bf16 GPU), never quantized: a QLoRA adapter is applied to the 16/32-bit
base, as ``tuneforge generate`` and ``serve`` do, so its loss can differ slightly from the logged one.
"""
from __future__ import annotations

import contextlib
import gc
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import torch
import yaml
from torch import nn

from ..config import FIELDS, TrainConfig, from_dict
from ..errors import ConfigError
from ..models import inference
from ..models.forward import CausalLMLoss
from ..models.load import is_builtin, resolve_precision
from ..rundir import CONFIG_FILE

# Keys of a saved run config that describe how the run was launched, not how its data is encoded or
# its model computes; evaluation runs in one process and reads its own data file.
_LAUNCH_KEYS = {"deepspeed": None, "fsdp": None, "resume_from_checkpoint": None, "validation_data": None,
                "validation_split": 0.0, "overwrite_output_dir": False, "report_to": "none",
                "on_bad_rows": "error", "effective_batch_size": None, "gradient_accumulation_steps": 1,
                "metric_for_best_model": "eval_loss", "early_stopping_patience": 0, "eval_generation_steps": 0}


def saved_run_settings(model: str | None, adapter: str | None, strategy: str) -> dict[str, Any] | None:
    """The run's config keys when ``model`` is a run directory of ``strategy`` (no separate adapter), else None.
    A saved config that is not a mapping is not a run of any strategy."""
    if not model or adapter or not (Path(model) / CONFIG_FILE).is_file():
        return None
    try:
        saved = yaml.safe_load((Path(model) / CONFIG_FILE).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError, UnicodeDecodeError):
        return None
    if not isinstance(saved, dict) or saved.get("training_strategy") != strategy:
        return None
    return {k: v for k, v in saved.items() if k in FIELDS}


def is_run_dir(path: str) -> bool:
    return (Path(path) / CONFIG_FILE).is_file()


def run_settings(source: inference.ModelSource, tokenizer) -> dict[str, Any]:
    """The run's config keys (tuneforge_config.yaml), or what a bare model implies: full weights, its template."""
    if source.run_config:
        return {k: v for k, v in source.run_config.items() if k in FIELDS}
    return {"model": source.base, "lora_dim": 0, "apply_chat_template": source.uses_chat_template(tokenizer)}


def eval_config(settings: dict[str, Any], data_path: str, strategy: str, *, batch_size: int | None = None,
                seq_length: int | None = None) -> TrainConfig:
    """The run's settings, reading ``data_path`` as its only split, with ``strategy``'s encoding."""
    raw = {**settings, **_LAUNCH_KEYS, "train_data": data_path, "training_strategy": strategy}
    if batch_size is not None:
        raw["per_device_train_batch_size"] = batch_size
    elif not isinstance(raw.get("per_device_train_batch_size", 4), int):
        raw["per_device_train_batch_size"] = 8  # 'auto' searched a training micro-batch; evaluation needs less
    if seq_length is not None:
        raw["seq_length"] = seq_length
    # The adapter a run started from matters only as a DPO reference (preference.py reads it from the
    # settings); the weights evaluated are the run's own output.
    raw["adapter_name_or_path"] = None
    return from_dict(raw)


@dataclass
class EvalModel:
    """What is evaluated: its tokenizer and run settings (known before any weights load, so bad data is
    refused first), then the weights (``load_weights``), the device, dtype and accelerator."""

    name: str
    source: inference.ModelSource
    tokenizer: Any
    settings: dict[str, Any]
    device: torch.device
    dtype: torch.dtype
    mixed_precision: str  # accelerate's setting training's evaluation ran under
    model: nn.Module | None = field(default=None, repr=False)
    _base: nn.Module | None = field(default=None, repr=False)
    _accelerator: Any = field(default=None, repr=False)

    @property
    def accelerator(self) -> Any:
        """Created on first use (teacher-forced metrics only): generation alone never needs one, so it also
        runs in a process whose distributed group has already been torn down (after training)."""
        if self._accelerator is None:
            from accelerate import Accelerator

            self._accelerator = Accelerator(mixed_precision=self.mixed_precision, cpu=self.device.type == "cpu")
        return self._accelerator

    @property
    def is_adapter(self) -> bool:
        return self.source.adapter is not None

    @property
    def is_run(self) -> bool:
        return bool(self.source.run_config)

    def load_weights(self) -> nn.Module:
        if self.model is None:
            self.model = inference.load_model(self.source, self.tokenizer, dtype=self.dtype, device=self.device)
        return self.model

    def loss_module(self, model: nn.Module | None = None) -> nn.Module:
        """Training's forward (``CausalLMLoss``) over ``model`` (the callers run it under the accelerator's
        autocast, as training's prepared module does; not ``prepare``d, so accelerate keeps no reference)."""
        return CausalLMLoss(model if model is not None else self.load_weights())

    def load_other(self, base: str, adapter: str | None = None) -> nn.Module:
        """Another model (a DPO reference, a full run's base) in this model's dtype and device."""
        source = inference.ModelSource(base, adapter, self.source.tokenizer_from, self.source.run_config)
        return inference.load_model(source, self.tokenizer, dtype=self.dtype, device=self.device)

    def check_has_base(self) -> None:
        """--compare-base needs an adapter to disable or a run that names its starting model."""
        if not self.is_adapter and not (self.is_run and self.settings.get("model")):
            raise ConfigError(f"--compare-base: {self.name!r} is neither an adapter nor a run directory, so it has no "
                              "base model to compare with.")

    @contextlib.contextmanager
    def base_model(self) -> Iterator[nn.Module]:
        """The base: an adapter run's model with the adapter disabled, else the run's starting model (loaded
        after the tuned weights are released, so two full models never share the memory)."""
        self.check_has_base()
        if self.is_adapter:
            model = self.load_weights()
            with model.disable_adapter():
                yield model
            return
        if self._base is None:
            self.model = None
            gc.collect()
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
            self._base = self.load_other(self.settings["model"])
        yield self._base

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "base": self.source.base, "adapter": self.source.adapter,
                "run": self.is_run, "method": _method(self.settings),
                "training_strategy": self.settings.get("training_strategy")}


def _method(settings: dict[str, Any]) -> str:
    if not settings.get("lora_dim", 0):
        return "full"
    return "qlora-4bit" if settings.get("load_in_4bit") else "qlora-8bit" if settings.get("load_in_8bit") else "lora"


def open_eval_model(name: str, adapter: str | None = None, *, device: str | None = None, dtype: str = "auto",
                    trust_remote_code: bool = False, allow_pickle_weights: bool = False) -> EvalModel:
    """Resolve a run directory, a model directory or hub id (plus an optional adapter); no weights load yet."""
    path = Path(name)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{name!r}: expected a run directory, a model directory or a hub id, not a file.")
    source = inference.resolve_source(name, adapter, trust_remote_code=trust_remote_code)
    source.allow_pickle_weights = allow_pickle_weights
    torch_device = torch.device(device) if device else inference.default_device()
    try:
        tokenizer = inference.load_tokenizer_for(source)
    except ConfigError as exc:
        if path.exists() or is_builtin(name):
            raise
        raise ConfigError(f"{name!r}: no such run or model directory, and not loadable as a hub id ({exc})") from None
    settings = run_settings(source, tokenizer)
    precision = _precision(settings, torch_device)
    torch_dtype = precision.load_dtype if dtype == "auto" else inference.DTYPES[dtype]
    mixed = precision.mixed_precision if dtype == "auto" else "no"
    return EvalModel(name, source, tokenizer, settings, torch_device, torch_dtype, mixed)


def _precision(settings: dict[str, Any], device: torch.device):
    """Training's precision rule applied to the run's settings (fp32 everywhere on CPU)."""
    keys = {k: settings[k] for k in ("mixed_precision", "lora_dim", "load_in_4bit", "load_in_8bit") if k in settings}
    cfg = TrainConfig(**keys)  # only the fields resolve_precision reads; no validation needed for them
    return resolve_precision(cfg, device)
