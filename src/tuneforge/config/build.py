"""From a file, overrides and keyword arguments to a checked ``TrainConfig``: key by key (type, range, text),
then across keys (``TrainConfig.validate``), then against the machine (``preflight.check``)."""
from __future__ import annotations

import dataclasses
import difflib
import json
import os
from pathlib import Path
from typing import Any

import yaml

from .. import preflight
from ..errors import ConfigError
from ..pathtext import path_text_problem
from .groups import GROUPS, Group
from .grpo import reward_paths_relative_to
from .train_config import FIELDS, KEY_TYPES, TrainConfig
from .values import check_range, coerce, coerce_train_data, show


def unknown_key_error(key: Any) -> ConfigError:
    hint = difflib.get_close_matches(key, list(FIELDS), n=1, cutoff=0.6) if isinstance(key, str) else []
    return ConfigError(f"unknown config key {show(key)}" + (f" (did you mean {hint[0]!r}?)" if hint else "")
                       + ". Run 'tuneforge train --help' for every key.")


def check_value(key: Any, value: Any) -> Any:
    """One key's value, coerced to its type and checked against its own range (not against other keys)."""
    if not isinstance(key, str) or key not in FIELDS:
        raise unknown_key_error(key)
    value = coerce_train_data(key, value) if key == "train_data" else coerce(key, value, KEY_TYPES[key])
    check_range(key, value, FIELDS[key].metadata)
    return value


def value_errors(raw: dict[str, Any]) -> list[tuple[str, str]]:
    """(key, message) for every key whose value is wrong on its own, so a form can flag them all at once."""
    errors = []
    for key, value in raw.items():
        try:
            check_value(key, value)
        except ConfigError as exc:
            errors.append((str(key), str(exc)))
    return errors


def from_dict(raw: dict[str, Any]) -> TrainConfig:
    """Build and validate a config from a mapping (YAML/JSON contents plus overrides)."""
    values = {key: check_value(key, value) for key, value in raw.items()}
    return preflight.check(TrainConfig(**values).validate())


def parse_override(text: str) -> tuple[str, Any]:
    """``key=value`` from the command line; the value is parsed as YAML (so 1e-4, true, [a, b] work)."""
    if "=" not in text:
        raise ConfigError(f"override {text!r}: expected key=value.")
    key, value = text.split("=", 1)
    key = key.strip()
    try:
        parsed = yaml.safe_load(value) if value.strip() else ""
    except yaml.YAMLError:
        parsed = value
    return key, parsed


def load_raw(path: str | Path) -> dict[str, Any]:
    """Read a YAML or JSON config file into a mapping, with clear errors."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file {str(path)!r}: no such file.")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise ConfigError(f"config file {str(path)!r}: not UTF-8 text; save it as UTF-8.") from None
    try:
        data = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        mark = getattr(exc, "problem_mark", None)
        line = getattr(exc, "lineno", None) or (mark.line + 1 if mark else "?")
        kind = "JSON" if path.suffix == ".json" else "YAML"
        raise ConfigError(f"config file {str(path)!r}, line {line}: not valid {kind} "
                          f"({exc.__class__.__name__}).") from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {str(path)!r}: the top level must be a mapping of key: value.")
    return data


def load_config(path: str | Path | None = None, overrides: list[str] | None = None, **kwargs: Any) -> TrainConfig:
    """Config from an optional file, then ``key=value`` overrides, then keyword arguments."""
    raw = load_raw(path) if path is not None else {}
    base = Path(path).parent if path is not None else None
    for item in overrides or []:
        key, value = parse_override(item)
        raw[key] = value
    raw.update(kwargs)
    # Data paths in a config file are relative to the file, so examples run from any directory.
    if base is not None:
        def relative_to_file(value: Any) -> Any:
            if isinstance(value, dict) and isinstance(value.get("path"), str):  # a train_data mixing entry
                return {**value, "path": relative_to_file(value["path"])}
            if isinstance(value, str) and value and not path_text_problem(value) and not Path(value).is_absolute() \
                    and not Path(value).exists() \
                    and (base / value).exists():
                return os.path.normpath(base / value)  # examples/configs/../data/x -> examples/data/x
            return value

        reward_paths_relative_to(raw, base)  # grpo.py: path/file.py:name entries
        for key in ("train_data", "validation_data"):
            value = raw.get(key)
            raw[key] = [relative_to_file(v) for v in value] if isinstance(value, list) else relative_to_file(value)
            if value is None:
                raw.pop(key)
    return from_dict(raw)


def _help_row(f: dataclasses.Field) -> tuple[str, str, str, str]:
    default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default  # type: ignore[misc]
    return f.name, KEY_TYPES[f.name].name, json.dumps(default, ensure_ascii=False), f.metadata["help"]


def help_groups() -> list[tuple[Group, list[tuple[str, str, str, str]]]]:
    """Each group with the (key, type, default, help) of its keys, as the CLI help and the README table show them."""
    return [(group, [_help_row(FIELDS[k]) for k in group.keys]) for group in GROUPS]


def help_lines() -> list[tuple[str, str, str, str]]:
    """(key, type, default, help) for every key, group by group."""
    return [row for _, rows in help_groups() for row in rows]
