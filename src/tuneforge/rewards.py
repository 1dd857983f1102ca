"""Reward functions for GRPO: the built-in ones, a user's own from a Python file, and the checks on what they return.

A reward function is ``fn(prompts: list[str], completions: list[str], **columns) -> list[float | None]``: one
value per completion; ``columns`` holds the data rows' other fields, one list per field aligned with the
completions (a prompt's G completions repeat its row). ``None`` means "cannot score this one": a completion
no function scores gets advantage 0. Anything else that is not a finite number, the wrong count or an
exception stops the run with one line naming the function, the data row and the value.

``reward_functions`` entries (``name`` or ``name:argument``):

- ``accuracy`` — 1.0 when the completion's final answer equals the row's ``answer`` (else ``solution``)
  column: numbers, fractions, ``\\boxed{}`` LaTeX. Uses math-verify (``pip install math-verify``) when
  installed, else ``normalised_answer`` below (last ``\\boxed{}`` or last number, compared as fractions).
- ``format`` / ``format:REGEX`` — 1.0 when the whole completion matches REGEX (default: a
  ``<think>…</think><answer>…</answer>`` layout), else 0.0.
- ``exact_match`` / ``exact_match:COLUMN`` — 1.0 when the stripped completion equals the column (default
  ``answer``).
- ``length`` / ``length:CHARS`` — 0 up to CHARS characters (default 200), then minus the excess over CHARS.
- ``path/to/file.py:name`` — the function ``name`` defined in that file (a path relative to the working
  directory). It runs only from the config you pass to ``tuneforge train`` yourself, as
  ``trust_remote_code`` does: nothing reads it from a run directory's saved config.
"""
from __future__ import annotations

import importlib.util
import math
import re
import threading
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any, Callable, Sequence

from .errors import ConfigError, TuneforgeError

RewardFn = Callable[..., Sequence[Any]]


class RewardError(TuneforgeError):
    """A reward function raised or returned something unusable; the run stops, its last checkpoint is kept."""


DEFAULT_FORMAT = r"^\s*<think>.*?</think>\s*<answer>.*?</answer>\s*$"
DEFAULT_LENGTH = 200
_NUMBER = re.compile(r"-?\d+(?:,\d{3})*(?:\.\d+)?(?:/\d+)?")


def _last_boxed(text: str) -> str | None:
    """Contents of the last ``\\boxed{...}`` (balanced braces), or None."""
    start = text.rfind("\\boxed{")
    if start < 0:
        return None
    depth, i = 0, start + len("\\boxed")
    for j in range(i, len(text)):
        depth += {"{": 1, "}": -1}.get(text[j], 0)
        if depth == 0:
            return text[i + 1:j]
    return None


def normalised_answer(text: str) -> Fraction | str | None:
    """The final answer of ``text`` as a Fraction when numeric (last ``\\boxed{}``, else the last number;
    ``\\frac{a}{b}``, ``a/b``, ``1,000`` and ``0.5`` understood), else the stripped boxed text; None if none."""
    boxed = _last_boxed(text)
    source = boxed.strip() if boxed is not None else text
    source = re.sub(r"\\d?frac\{(-?[\d.]+)\}\{(-?[\d.]+)\}", r"\1/\2", source)
    # a boxed answer is a number only when it is one as a whole; free text: its last number
    numbers = ([source] if _NUMBER.fullmatch(source) else []) if boxed is not None else _NUMBER.findall(source)
    if numbers:
        try:
            return Fraction(numbers[-1].replace(",", ""))
        except (ValueError, ZeroDivisionError):
            pass
    return source if boxed is not None else None


def _fallback_equal(completion: str, gold: str) -> bool:
    mine, theirs = normalised_answer(completion), normalised_answer(gold)
    if theirs is None:
        theirs = gold.strip()
    return mine is not None and mine == theirs


def _math_verify_equal() -> Callable[[str, str], bool] | None:
    try:
        from math_verify import parse, verify
    except ImportError:
        return None

    def equal(completion: str, gold: str) -> bool:
        # math-verify's timeouts use SIGALRM, which only the main thread may set
        limit = 5 if threading.current_thread() is threading.main_thread() else None
        target = parse(gold if "$" in gold or "\\" in gold else f"${gold}$", parsing_timeout=limit)
        return bool(target) and bool(verify(target, parse(completion, parsing_timeout=limit), timeout_seconds=limit))

    return equal


def _gold_column(columns: dict[str, list], names: tuple[str, ...], fn: str) -> list:
    for name in names:
        if name in columns:
            return columns[name]
    raise ConfigError(f"reward function {fn!r} needs a data column {' or '.join(map(repr, names))}; "
                      f"the data has {sorted(columns) or 'no other column'}.")


def accuracy(argument: str | None) -> RewardFn:
    equal = _math_verify_equal() or _fallback_equal

    def score(prompts, completions, **columns):
        gold = _gold_column(columns, ("answer", "solution"), "accuracy")
        return [float(equal(c, str(g))) if g is not None else None for c, g in zip(completions, gold)]

    return score


def format_reward(argument: str | None) -> RewardFn:
    try:
        pattern = re.compile(argument or DEFAULT_FORMAT, re.DOTALL)
    except re.error as exc:
        raise ConfigError(f"reward_functions: format:{argument}: not a valid regular expression ({exc}).") from None
    return lambda prompts, completions, **columns: [float(bool(pattern.fullmatch(c))) for c in completions]


def exact_match(argument: str | None) -> RewardFn:
    column = argument or "answer"

    def score(prompts, completions, **columns):
        gold = _gold_column(columns, (column,), f"exact_match:{column}")
        return [float(c.strip() == str(g).strip()) if g is not None else None for c, g in zip(completions, gold)]

    return score


def length(argument: str | None) -> RewardFn:
    try:
        target = int(argument) if argument else DEFAULT_LENGTH
    except ValueError:
        raise ConfigError(f"reward_functions: length:{argument}: expected a number of characters.") from None
    return lambda prompts, completions, **columns: [-max(0.0, len(c) - target) / max(target, 1) for c in completions]


# name -> factory(argument) -> reward function
BUILTIN_REWARDS: dict[str, Callable[[str | None], RewardFn]] = {
    "accuracy": accuracy, "format": format_reward, "exact_match": exact_match, "length": length,
}


def is_user_function(entry: str) -> bool:
    return ".py:" in entry


def check_entry(entry: str) -> None:
    """Config-time check of one ``reward_functions`` entry (the name only; files are read at run start)."""
    if is_user_function(entry):
        return
    name = entry.split(":", 1)[0]
    if name not in BUILTIN_REWARDS:
        raise ConfigError(f"reward_functions: {entry!r}: unknown reward; built in: {', '.join(BUILTIN_REWARDS)}, "
                          "or path/to/file.py:function_name for your own.")


def load_user_function(entry: str) -> RewardFn:
    """``path/to/file.py:name`` -> that function (the file is imported as a module)."""
    path_text, name = entry.rsplit(":", 1)
    path = Path(path_text)
    if not path.is_file():
        raise ConfigError(f"reward_functions: {entry!r}: no such file {path_text!r}.")
    spec = importlib.util.spec_from_file_location(f"tuneforge_user_reward_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    try:
        spec.loader.exec_module(module)  # type: ignore[union-attr]
    except Exception as exc:  # the user's file: any error there is theirs to see in one line
        raise ConfigError(f"reward_functions: {entry!r}: importing {path_text} failed: "
                          f"{type(exc).__name__}: {exc}") from None
    fn = getattr(module, name, None)
    if not callable(fn):
        raise ConfigError(f"reward_functions: {entry!r}: {path_text} defines no function {name!r}.")
    return fn


@dataclass(frozen=True)
class Reward:
    name: str  # the metric is reward/<name>: a built-in's entry (length:8), a user function's name
    fn: RewardFn
    weight: float
    entry: str = ""  # as written in the config, for messages


def build_rewards(entries: Sequence[str], weights: Sequence[float] | None) -> list[Reward]:
    """The configured reward functions with their weights (default 1.0 each)."""
    out = []
    for i, entry in enumerate(entries):
        check_entry(entry)
        if is_user_function(entry):
            fn = load_user_function(entry)
        else:
            name, _, argument = entry.partition(":")
            fn = BUILTIN_REWARDS[name](argument or None)
        name = entry.rsplit(":", 1)[1] if is_user_function(entry) else entry
        if any(r.name == name for r in out):
            name = entry  # two files' functions of the same name: keep them apart
        out.append(Reward(name, fn, float(weights[i]) if weights else 1.0, entry))
    return out


def score(reward: Reward, prompts: list[str], completions: list[str], columns: dict[str, list],
          where: list[str]) -> list[float]:
    """One function's values for the completions (NaN for None); RewardError on anything unusable.
    ``where`` names each completion's data row (file:line), for the message."""
    try:
        values = reward.fn(prompts, completions, **columns)
    except TuneforgeError:
        raise
    except Exception as exc:  # the user's code: report it in one line, naming the function
        raise RewardError(f"reward function {reward.entry or reward.name!r} raised {type(exc).__name__}: {exc} (on the "
                          f"completions of rows {where[0]} ... {where[-1]}). The last checkpoint is kept.") from None
    try:
        values = list(values)
    except TypeError:
        raise RewardError(f"reward function {reward.entry or reward.name!r} returned {type(values).__name__}, not a "
                          "list of numbers. The last checkpoint is kept.") from None
    if len(values) != len(completions):
        raise RewardError(f"reward function {reward.entry or reward.name!r} returned {len(values)} values for "
                          f"{len(completions)} completions (rows {where[0]} ... {where[-1]}). "
                          "The last checkpoint is kept.")
    out = []
    for i, v in enumerate(values):
        if v is None:
            out.append(float("nan"))
            continue
        if not isinstance(v, (int, float)) or not math.isfinite(float(v)):
            shown = repr(v) if len(repr(v)) < 60 else repr(v)[:57] + "..."
            raise RewardError(f"reward function {reward.entry or reward.name!r} returned {shown} for completion {i} of "
                              f"row {where[i]}: expected a finite number or None. The last checkpoint is kept.")
        out.append(float(v))
    return out
