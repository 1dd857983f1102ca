"""What a config key's value may be: the one reading of the keys' type annotations (``KeyType``), and the checks
of a single value against it: its type (strings from the command line parsed first), its range, its text.

The CLI help, the README table and the console's form read the same ``KeyType``; nothing else walks the
annotations.
"""
from __future__ import annotations

import difflib
import math
import reprlib
import types
import typing
from dataclasses import dataclass
from typing import Any, Literal, Optional, Union

from ..errors import ConfigError
from ..pathtext import path_text_problem, text_problem

INT_MAX = 2 ** 31 - 1  # the bound of an integer key whose field declares none
NULLS = ("null", "none", "~")  # how the command line and forms write "unset"

# Values in error messages are shortened: a YAML alias "bomb" (a few lines that reference each other into
# billions of elements) must be refused without being expanded into text.
_SHORT = reprlib.Repr()
_SHORT.maxlevel, _SHORT.maxlist, _SHORT.maxdict, _SHORT.maxstring, _SHORT.maxother = 2, 4, 4, 80, 80


def show(value: Any) -> str:
    """A bounded repr of a config value, for messages."""
    return _SHORT.repr(value)


_ARM_NAMES = {"bool": "boolean", "integer": "integer", "number": "number", "string": "string",
              "strings": "list of strings", "numbers": "list of numbers"}


@dataclass(frozen=True)
class Arm:
    """One alternative of a key's type: bool, integer, number, string, strings / numbers (lists) or choice."""
    kind: str
    choices: tuple = ()

    @property
    def name(self) -> str:
        return " | ".join(map(repr, self.choices)) if self.kind == "choice" else _ARM_NAMES[self.kind]


@dataclass(frozen=True)
class KeyType:
    """A key's type as the config reads it: its alternatives, in declaration order, and whether null is one."""
    arms: tuple[Arm, ...]
    nullable: bool = False

    @property
    def name(self) -> str:
        """The type in words, as the CLI help and the README table show it."""
        return " or ".join(a.name for a in self.arms) + (" or null" if self.nullable else "")

    @property
    def choices(self) -> tuple:
        """The values of its choice alternatives (a Literal's), in order."""
        return tuple(c for a in self.arms if a.kind == "choice" for c in a.choices)


def _arm(tp: Any) -> Arm:
    if typing.get_origin(tp) is Literal:
        return Arm("choice", typing.get_args(tp))
    if typing.get_origin(tp) is list:
        return Arm("numbers" if typing.get_args(tp) == (float,) else "strings")
    kind = {bool: "bool", int: "integer", float: "number", str: "string"}.get(tp)
    if kind is None:
        raise TypeError(f"config annotation {tp!r}: not a type the config can read")
    return Arm(kind)


def read_annotation(tp: Any) -> KeyType:
    """The annotation walker: ``Optional[Union[int, Literal['auto']]]`` -> integer or 'auto' or null."""
    if typing.get_origin(tp) in (Union, types.UnionType):
        args = typing.get_args(tp)
        return KeyType(tuple(_arm(a) for a in args if a is not type(None)), type(None) in args)
    return KeyType((_arm(tp),))


def _number(value: Any, kind: type, bad: ConfigError) -> Any:
    """An int or float from a YAML number or a command-line string; booleans are not numbers here."""
    if isinstance(value, bool):
        raise bad
    if kind is int and isinstance(value, float):
        if not value.is_integer():
            raise bad
        return int(value)
    if isinstance(value, (int, float)):
        return kind(value)
    if isinstance(value, str):
        try:
            return kind(value)
        except ValueError:
            raise bad from None
    raise bad


def _choice(key: str, value: Any, choices: tuple) -> Any:
    if isinstance(value, (str, int, float, bool)) and value in choices:
        return value
    hint = difflib.get_close_matches(value, [str(c) for c in choices], n=1) if isinstance(value, str) else []
    raise ConfigError(f"{key}={show(value)}: expected one of {', '.join(map(repr, choices))}"
                      + (f" (did you mean {hint[0]!r}?)" if hint else "") + ".")


def _coerce_arm(key: str, value: Any, arm: Arm) -> Any:
    bad = ConfigError(f"{key}={show(value)}: expected {arm.name}.")
    if arm.kind == "choice":
        return _choice(key, value, arm.choices)
    if arm.kind == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
            return value.lower() in ("true", "yes", "1")
        raise bad
    if arm.kind in ("integer", "number"):
        return _number(value, int if arm.kind == "integer" else float, bad)
    if arm.kind == "string":
        if isinstance(value, str):
            return value
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)
        raise bad
    if isinstance(value, str):  # a list from the command line: a, b, c
        value = [v.strip() for v in value.split(",") if v.strip()]
    if arm.kind == "numbers" and isinstance(value, list):  # reward_weights
        return [_number(v, float, bad) for v in value]
    if arm.kind == "strings" and isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    raise bad


def coerce(key: str, value: Any, ktype: KeyType) -> Any:
    """Check ``value`` against the key's type; strings from the command line are parsed first."""
    if ktype.nullable and (value is None or (isinstance(value, str) and value.lower() in NULLS)):
        return None
    if len(ktype.arms) == 1:
        return _coerce_arm(key, value, ktype.arms[0])
    for arm in ktype.arms:  # e.g. an integer or 'auto': the first arm that accepts the value wins
        try:
            return _coerce_arm(key, value, arm)
        except ConfigError:
            continue
    raise ConfigError(f"{key}={show(value)}: expected {ktype.name}.")


PATH_KEYS = frozenset({"model", "adapter_name_or_path", "train_data", "validation_data", "output_dir",
                       "resume_from_checkpoint", "deepspeed", "data_cache_dir"})


def check_text(key: str, value: Any) -> None:
    """Strings (also inside lists and train_data mappings) that no file name or C library can take: ConfigError."""
    if isinstance(value, list):
        for item in value:
            check_text(key, item)
    elif isinstance(value, dict):
        check_text(key, value.get("path"))
    elif isinstance(value, str):
        problem = path_text_problem(value) if key in PATH_KEYS else text_problem(value)
        if problem:
            raise ConfigError(f"{key}={show(value)}: {problem}.")


def check_range(key: str, value: Any, meta: dict) -> None:
    """The value's text, finiteness and the field's bounds (lo, hi, lo_open; integers capped at INT_MAX)."""
    check_text(key, value)
    if value is None or isinstance(value, (bool, str, list, dict)):
        return
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{key}={show(value)}: must be a finite number.")
    lo, hi = meta.get("lo"), meta.get("hi")
    if hi is None and isinstance(value, int):
        hi = INT_MAX
    if lo is not None and (value < lo or (meta.get("lo_open") and value == lo)):
        op = ">" if meta.get("lo_open") else ">="
        raise ConfigError(f"{key}={show(value)}: must be {op} {lo}.")
    if hi is not None and value > hi:
        raise ConfigError(f"{key}={show(value)}: must be <= {hi}.")


DATA_SOURCE_KEYS = {"path": "a file or directory", "weight": "a number > 0", "max_rows": "an integer >= 1"}


def _data_source(key: str, item: Any) -> str | dict[str, Any]:
    """One train_data entry: a path, or a {path, weight, max_rows} mapping checked key by key."""
    if isinstance(item, str) and item:
        return item
    if not isinstance(item, dict):
        raise ConfigError(f"{key}: entry {show(item)}: expected a path or a mapping {{path, weight, max_rows}}.")
    for name in item:
        if name not in DATA_SOURCE_KEYS:
            hint = difflib.get_close_matches(str(name), list(DATA_SOURCE_KEYS), n=1)
            raise ConfigError(f"{key}: unknown key {show(name)} in {show(item)}"
                              + (f" (did you mean {hint[0]!r}?)" if hint else "")
                              + f"; allowed: {', '.join(DATA_SOURCE_KEYS)}.")
    path, weight, max_rows = item.get("path"), item.get("weight", 1.0), item.get("max_rows")
    if not isinstance(path, str) or not path:
        raise ConfigError(f"{key}: entry {show(item)}: 'path' must be a file or directory.")
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not 0 < weight <= 1000:
        raise ConfigError(f"{key}: entry {show(item)}: weight={show(weight)} must be a number > 0 (at most 1000).")
    if max_rows is not None and (isinstance(max_rows, bool) or not isinstance(max_rows, int) or max_rows < 1):
        raise ConfigError(f"{key}: entry {show(item)}: max_rows={show(max_rows)} must be an integer >= 1.")
    return {"path": path, "weight": float(weight), "max_rows": max_rows}


def coerce_train_data(key: str, value: Any) -> Any:
    """``train_data``: one path, or a non-empty list of paths / {path, weight, max_rows} (data mixing)."""
    if not isinstance(value, list):
        # One path, as a string: not the annotation's KeyType, whose Union arms come in whatever order typing's
        # cache first saw them (after `import peft` list[str] is first, and a path became a one-item list).
        return coerce(key, value, read_annotation(Optional[str]))
    if not value:
        raise ConfigError(f"{key}=[]: give at least one data file.")
    return [_data_source(key, item) for item in value]
