"""Checks of what a valid config names on this machine, before anything loads: the data files, the adapter
to continue from, the DeepSpeed config and package, and sharding combinations that cannot work.

``TrainConfig.validate`` checks the config's own values against each other; this step looks at the files
and packages they name. ``config.from_dict`` runs both, so every way in (command line, Python API,
service) refuses a missing file with the key and value before a model loads. This module imports
nothing of tuneforge but its errors and the trackers' registry (the config and the training engine both
import it).
"""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ConfigError

if TYPE_CHECKING:
    from .config import TrainConfig

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
SHIPPED_DEEPSPEED = {"zero2": CONFIG_DIR / "deepspeed_zero2.json", "zero3": CONFIG_DIR / "deepspeed_zero3.json"}
DEEPSPEED_PIP = "pip install deepspeed"


def data_paths(train_data: Any) -> list[str]:
    """The paths of ``train_data`` (one path, or a list of paths / {path, weight, max_rows})."""
    if not train_data:
        return []
    items = train_data if isinstance(train_data, list) else [train_data]
    return [item["path"] if isinstance(item, dict) else item for item in items]


def check(cfg: TrainConfig) -> TrainConfig:
    """Refuse a config whose files, packages or parallelism settings cannot work here; returns ``cfg``."""
    check_files(cfg)
    if cfg.fsdp or cfg.deepspeed:
        check_sharding(cfg)
    check_trackers(cfg)
    return cfg


def check_trackers(cfg: TrainConfig) -> None:
    """report_to: known trackers, their packages installed, nothing sent where the user did not configure it."""
    from .training.trackers import check_config  # its registry imports no tracker library, only errors

    check_config(cfg)


def check_files(cfg: TrainConfig) -> None:
    named = [("train_data", v) for v in data_paths(cfg.train_data)] + [("validation_data", cfg.validation_data)]
    for key, value in named:
        if value and not (Path(value).is_file() or Path(value).is_dir()):
            raise ConfigError(f"{key}={value!r}: no such file or directory.")
    if cfg.adapter_name_or_path and not (Path(cfg.adapter_name_or_path) / "adapter_config.json").is_file():
        raise ConfigError(f"adapter_name_or_path={cfg.adapter_name_or_path!r}: no adapter_config.json there.")


# -- DeepSpeed and FSDP -----------------------------------------------------------------------------
def deepspeed_config_path(value: str) -> Path:
    path = SHIPPED_DEEPSPEED.get(value, Path(value))
    if not path.is_file():
        raise ConfigError(f"deepspeed={value!r}: expected 'zero2', 'zero3' or the path of a DeepSpeed JSON config; "
                          "no such file.")
    return path


def load_deepspeed_config(value: str) -> dict[str, Any]:
    path = deepspeed_config_path(value)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"deepspeed={value!r}: {path} is not valid JSON ({exc.__class__.__name__}).") from None
    if not isinstance(data, dict):
        raise ConfigError(f"deepspeed={value!r}: {path} must hold a JSON object.")
    return data


def zero_stage(ds_config: dict[str, Any]) -> int:
    stage = (ds_config.get("zero_optimization") or {}).get("stage", 0)
    return int(stage) if str(stage).isdigit() else 0


def check_sharding(cfg: TrainConfig) -> None:
    """Refuse combinations that cannot work, with the fix, before any weights load."""
    if cfg.fsdp and cfg.deepspeed:
        raise ConfigError(f"fsdp={cfg.fsdp!r} and deepspeed={cfg.deepspeed!r}: choose one way of sharding.")
    copy_reference = cfg.training_strategy == "dpo" and cfg.is_full and cfg.dpo_reference == "copy"
    if copy_reference and cfg.fsdp:
        raise ConfigError(f"dpo_reference='copy' with fsdp={cfg.fsdp!r}: a copy of the model outside FSDP would hold "
                          "every weight on every process. Use dpo_reference: precompute (the default).")
    if not cfg.deepspeed:
        return
    stage = zero_stage(load_deepspeed_config(cfg.deepspeed))
    if copy_reference and stage == 3:
        raise ConfigError(f"dpo_reference='copy' with deepspeed={cfg.deepspeed!r} (ZeRO stage 3): the copy's weights "
                          "would be partitioned with nothing to gather them. Use dpo_reference: precompute "
                          "(the default).")
    if stage == 3 and cfg.quantized:
        raise ConfigError(
            f"deepspeed={cfg.deepspeed!r} (ZeRO stage 3) with load_in_4bit/load_in_8bit: ZeRO-3 partitions parameters, "
            "which quantized bitsandbytes weights do not support. "
            "Use deepspeed: zero2, or fsdp: full_shard, for QLoRA.")
    if importlib.util.find_spec("deepspeed") is None:
        raise ConfigError(f"deepspeed={cfg.deepspeed!r}: the deepspeed package is not installed. "
                          f"Install it with: {DEEPSPEED_PIP}  (or remove the deepspeed key to train with DDP).")
