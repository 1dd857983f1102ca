"""The run configuration: typed keys in groups, flat for users.

Each group (method, model, data, optimisation, dpo, kto, reward, grpo, evaluation, output, tracking,
distributed) is a dataclass in a module of its own, one field per key with its help text (the CLI help and the
README table) and bounds; ``TrainConfig`` is all of them in one flat dataclass, so YAML files, ``key=value``
overrides, ``cfg.<key>`` and saved configs never see the groups. Keys use the names of the cloud fine-tuning
service the project follows (``learning_rate``, ``lora_dim``, ``seq_length`` ...), so users can paste their
hyperparameters unchanged. Everything is validated here, before any model or data is loaded.

    groups.py        the groups in order, the saved key order
    keys.py          config_key: a field with its help and bounds
    values.py        KeyType (the one reading of the annotations), coercion, range and text checks
    train_config.py  TrainConfig and its checks across keys
    build.py         from a file / overrides / a mapping to a checked TrainConfig; the help rows
"""
from __future__ import annotations

from ..errors import ConfigError
from .build import (check_value, from_dict, help_groups, help_lines, load_config, load_raw, parse_override,
                    unknown_key_error, value_errors)
from .groups import GROUPS, SAVED_KEY_ORDER, Group, group_of
from .keys import config_key
from .model import BUILTIN_MODEL
from .output import OUTPUT_KEYS, PER_RUN_KEYS
from .train_config import FIELDS, KEY_TYPES, TrainConfig
from .values import KeyType, check_text, show

__all__ = ["BUILTIN_MODEL", "ConfigError", "FIELDS", "GROUPS", "Group", "KEY_TYPES", "KeyType", "OUTPUT_KEYS",
           "PER_RUN_KEYS", "SAVED_KEY_ORDER", "TrainConfig", "check_text", "check_value", "config_key", "from_dict",
           "group_of", "help_groups", "help_lines", "load_config", "load_raw", "parse_override", "show",
           "unknown_key_error", "value_errors"]
