"""Read data files and turn each row, whatever its format, into one canonical example.

SFT rows become a ``Conversation`` (a list of role/content messages); DPO rows a ``PreferencePair``.
Formats (docs/architecture.md, "Data formats") are detected per file from the first row's keys, then every row is
checked against that format; a defect is reported with the file, the line (JSONL) or row number, and the field.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from ..errors import DataError
from .sources import InvalidLine, RawLine, file_rows, parse_line, source_files  # noqa: F401 (re-exported)

ROLES = ("system", "user", "assistant")
SHAREGPT_ROLES = {"system": "system", "human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant"}


@dataclass
class Message:
    role: str
    content: str


@dataclass
class Conversation:
    messages: list[Message]
    source: str = ""  # "file:line", for messages about this row later on


@dataclass
class PreferencePair:
    prompt: list[Message]  # system?/user/assistant... ending with a user turn
    chosen: str
    rejected: str
    source: str = ""


@dataclass
class Feedback:
    """KTO: one completion of a prompt, marked desirable (thumbs up) or undesirable (thumbs down)."""

    prompt: list[Message]  # system?/user/assistant... ending with a user turn
    completion: str
    desirable: bool
    source: str = ""


@dataclass
class Document:
    """Continued pre-training: one raw-text document (a ``text`` row, or a whole .txt/.md file)."""

    text: str
    source: str = ""


@dataclass
class RowReport:
    """Rows dropped before training, counted by reason (``on_bad_rows: skip`` and truncation)."""

    dropped: dict[str, int] = field(default_factory=dict)
    examples: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # e.g. rows per source of a mixed train_data

    def drop(self, reason: str, where: str) -> None:
        self.dropped[reason] = self.dropped.get(reason, 0) + 1
        self.examples.setdefault(reason, where)

    @property
    def total(self) -> int:
        return sum(self.dropped.values())

    def summary(self) -> str:
        """'; dropped N rows: reason: count, ...' or '' (appended to the start banner's data line)."""
        notes = "".join(f"; {note}" for note in self.notes)
        if not self.total:
            return notes
        return notes + f"; dropped {self.total} rows: " + ", ".join(f"{k}: {v}" for k, v in self.dropped.items())


# ---------------------------------------------------------------------------------------------
# files → (line number, raw row)


def read_rows(path: str | Path, keep_invalid: bool = False) -> Iterator[tuple[int, Any]]:
    """Yield ``(line_or_row_number, row)`` of one file, streamed (see ``sources``).

    An invalid JSONL line raises a DataError, or with ``keep_invalid`` is yielded as an ``InvalidLine``
    (the other lines still parse; a broken JSON array or CSV cannot be read past its defect).
    """
    name = str(path)
    for lineno, row in file_rows(path):
        if isinstance(row, RawLine):
            row = parse_line(name, lineno, row.text, keep_invalid)
        yield lineno, row


# ---------------------------------------------------------------------------------------------
# format detection and conversion


def _text(row: dict, key: str, where: tuple[str, int], *, required: bool = True, allow_empty: bool = False) -> str:
    value = row.get(key)
    if value is None:
        if required:
            raise DataError(where[0], where[1], key, "missing required field")
        return ""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str):
        raise DataError(where[0], where[1], key, f"expected a string, got {type(value).__name__}")
    if required and not allow_empty and not value.strip():
        raise DataError(where[0], where[1], key, "empty")
    return value


def _messages(items: Any, where: tuple[str, int], key: str, role_key: str, content_key: str,
              role_map: dict[str, str] | None = None) -> list[Message]:
    if not isinstance(items, list) or not items:
        raise DataError(where[0], where[1], key, "expected a non-empty list of messages")
    out = []
    for i, item in enumerate(items):
        fld = f"{key}[{i}]"
        if not isinstance(item, dict):
            raise DataError(where[0], where[1], fld, "expected an object with role and content")
        role = item.get(role_key)
        role = (role_map or {r: r for r in ROLES}).get(role) if isinstance(role, str) else None
        if role is None:
            raise DataError(where[0], where[1], f"{fld}.{role_key}",
                            f"unknown role {item.get(role_key)!r} (expected one of "
                            f"{', '.join(sorted(role_map or ROLES))})")
        content = item.get(content_key)
        if not isinstance(content, str):
            raise DataError(where[0], where[1], f"{fld}.{content_key}", "expected a string")
        if role == "assistant" and not content.strip():
            raise DataError(where[0], where[1], f"{fld}.{content_key}", "empty assistant answer")
        out.append(Message(role, content))
    return out


def _object(row: Any, where: tuple[str, int]) -> dict:
    if not isinstance(row, dict):
        raise DataError(where[0], where[1], None, f"expected a JSON object, got {type(row).__name__}")
    return row


def _checked_conversation(msgs: list[Message], where: tuple[str, int]) -> Conversation:
    if not any(m.role == "assistant" for m in msgs):
        raise DataError(where[0], where[1], "messages", "conversation has no assistant turn")
    if msgs[0].role == "assistant":
        raise DataError(where[0], where[1], "messages", "conversation starts with an assistant turn")
    return Conversation(msgs, f"{where[0]}:{where[1]}")


def _instruction_prompt(row: dict, where: tuple[str, int]) -> list[Message]:
    instruction = _text(row, "instruction", where)
    extra = _text(row, "input", where, required=False)
    system = _text(row, "system", where, required=False)
    user = instruction + ("\n" + extra if extra.strip() else "")
    return ([Message("system", system)] if system.strip() else []) + [Message("user", user)]


def _from_instruction(row: dict, where: tuple[str, int]) -> Conversation:
    prompt = _instruction_prompt(row, where)
    return _checked_conversation(prompt + [Message("assistant", _text(row, "output", where))], where)


def _from_prompt_completion(row: dict, where: tuple[str, int]) -> Conversation:
    msgs = [Message("user", _text(row, "prompt", where)), Message("assistant", _text(row, "completion", where))]
    return _checked_conversation(msgs, where)


def _from_messages(row: dict, where: tuple[str, int]) -> Conversation:
    return _checked_conversation(_messages(row.get("messages"), where, "messages", "role", "content"), where)


def _from_sharegpt(row: dict, where: tuple[str, int]) -> Conversation:
    msgs = _messages(row.get("conversations"), where, "conversations", "from", "value", SHAREGPT_ROLES)
    return _checked_conversation(msgs, where)


def _preference_prompt(row: dict, where: tuple[str, int]) -> list[Message]:
    prompt = row.get("prompt")
    if prompt is None:
        raise DataError(where[0], where[1], "prompt", "missing required field")
    if isinstance(prompt, str):
        if not prompt.strip():
            raise DataError(where[0], where[1], "prompt", "empty")
        prompt_msgs = [Message("user", prompt)]
    else:
        prompt_msgs = _messages(prompt, where, "prompt", "role", "content")
        if prompt_msgs[-1].role != "user":
            raise DataError(where[0], where[1], "prompt", "the prompt's last message must be a user turn")
    system = row.get("system")
    if isinstance(system, str) and system.strip() and prompt_msgs[0].role != "system":
        prompt_msgs.insert(0, Message("system", system))
    return prompt_msgs


def _answer(row: dict, key: str, where: tuple[str, int]) -> str:
    value = row[key]
    if isinstance(value, list):  # [{"role": "assistant", "content": ...}]
        msgs = _messages(value, where, key, "role", "content")
        if len(msgs) != 1 or msgs[0].role != "assistant":
            raise DataError(where[0], where[1], key, "expected one assistant message")
        value = msgs[0].content
    elif isinstance(value, dict):
        value = _messages([value], where, key, "role", "content")[0].content
    elif not isinstance(value, str):
        raise DataError(where[0], where[1], key,
                        f"expected a string or an assistant message, got {type(value).__name__}")
    if not value.strip():
        raise DataError(where[0], where[1], key, "empty answer")
    return value


def _from_preference(row: dict, where: tuple[str, int]) -> PreferencePair:
    for key in ("prompt", "chosen", "rejected"):
        if key not in row or row[key] is None:
            raise DataError(where[0], where[1], key, "missing required field")
    prompt = _preference_prompt(row, where)
    return PreferencePair(prompt, _answer(row, "chosen", where), _answer(row, "rejected", where),
                          f"{where[0]}:{where[1]}")


def _open_turns(msgs: list[Message], where: tuple[str, int], fld: str) -> list[Message]:
    """A conversation without its trailing assistant turns: the prompt a model answers."""
    while msgs and msgs[-1].role == "assistant":
        msgs = msgs[:-1]
    if not msgs or msgs[-1].role != "user":
        raise DataError(where[0], where[1], fld, "needs a user turn to answer")
    return msgs


def _bare_prompt(row: dict, where: tuple[str, int]) -> list[Message]:
    if isinstance(row.get("prompt"), str):
        return [Message("user", _text(row, "prompt", where))]
    return _open_turns(_messages(row.get("prompt"), where, "prompt", "role", "content"), where, "prompt")


_LABELS = {"true": True, "false": False, "1": True, "0": False, "yes": True, "no": False}


def _label(row: dict, where: tuple[str, int]) -> bool:
    """KTO's ``label``: a boolean (CSV/text: true/false, yes/no, 1/0)."""
    value = row.get("label")
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _LABELS:
        return _LABELS[value.strip().lower()]
    raise DataError(where[0], where[1], "label", f"expected true (desirable) or false (undesirable), got {value!r}")


def _from_feedback(row: dict, where: tuple[str, int]) -> Feedback:
    if row.get("completion") is None:
        raise DataError(where[0], where[1], "completion", "missing required field")
    if "prompt" in row:
        prompt = _preference_prompt(row, where)
    else:  # {"messages": [... ending with a user turn], "completion", "label"}
        prompt = _messages(row.get("messages"), where, "messages", "role", "content")
        if prompt[-1].role != "user":
            raise DataError(where[0], where[1], "messages",
                            "the messages must end with the user turn the completion answers")
    return Feedback(prompt, _answer(row, "completion", where), _label(row, where), f"{where[0]}:{where[1]}")


def _from_text(row: dict, where: tuple[str, int]) -> Document:
    return Document(_text(row, "text", where), f"{where[0]}:{where[1]}")


# ---------------------------------------------------------------------------------------------
# The format table: one entry per row format, in detection order.


@dataclass(frozen=True)
class RowFormat:
    """A row format: which keys identify it, how a row becomes an example, and its prompt.

    ``kind`` is ``sft`` (rows become Conversations), ``preference`` (PreferencePairs) or ``prompt``
    (prompts only: accepted by generation and evaluation, not by training).
    """

    name: str
    kind: str
    any_of: frozenset[str]  # a row of this format has at least one of these keys ...
    all_of: frozenset[str]  # ... and all of these
    convert: Callable[[dict, tuple[str, int]], Any] | None  # row -> Conversation / PreferencePair
    prompt: Callable[[dict, tuple[str, int]], list[Message]]  # row -> the messages a model answers

    def matches(self, keys: set[str]) -> bool:
        return (not self.any_of or bool(self.any_of & keys)) and self.all_of <= keys


def _fmt(name: str, kind: str, any_of=(), all_of=(), convert=None, prompt=None) -> RowFormat:
    return RowFormat(name, kind, frozenset(any_of), frozenset(all_of), convert, prompt)


# Order matters where key sets overlap: a preference row also has "prompt", so it is tested first;
# a bare {"prompt"} row (generation input) comes last, after prompt/completion.
FORMATS: tuple[RowFormat, ...] = (
    _fmt("preference", "preference", any_of=("chosen", "rejected"), convert=_from_preference,
         prompt=_preference_prompt),
    _fmt("messages", "sft", all_of=("messages",), convert=_from_messages,
         prompt=lambda row, where: _open_turns(_from_messages_loose(row, where), where, "messages")),
    _fmt("sharegpt", "sft", all_of=("conversations",), convert=_from_sharegpt,
         prompt=lambda row, where: _open_turns(_from_sharegpt(row, where).messages, where, "conversations")),
    _fmt("instruction", "sft", any_of=("instruction", "output"), convert=_from_instruction, prompt=_instruction_prompt),
    _fmt("prompt_completion", "sft", all_of=("prompt", "completion"), convert=_from_prompt_completion,
         prompt=lambda row, where: [Message("user", _text(row, "prompt", where))]),
    _fmt("prompt", "prompt", all_of=("prompt",), prompt=_bare_prompt),
    # Detected only for the strategies that read them (STRATEGY_FORMAT_KINDS): an SFT file whose rows also
    # carry a label or a text column keeps its SFT format.
    _fmt("feedback", "feedback", any_of=("prompt", "messages"), all_of=("completion", "label"),
         convert=_from_feedback, prompt=lambda row, where: _from_feedback(row, where).prompt),
    _fmt("text", "text", all_of=("text",), convert=_from_text),
)
FORMATS_BY_NAME: dict[str, RowFormat] = {f.name: f for f in FORMATS}
TRAINING_KINDS = ("sft", "preference")


def _from_messages_loose(row: dict, where: tuple[str, int]) -> list[Message]:
    """A messages row's turns (a prompt to answer may have no assistant turn yet)."""
    return _messages(row.get("messages"), where, "messages", "role", "content")


def detect_format(row: Any, kinds: tuple[str, ...] = TRAINING_KINDS) -> str | None:
    """The name of the first format in FORMATS (of the given kinds) whose keys the row has."""
    if not isinstance(row, dict):
        return None
    keys = set(row)
    return next((f.name for f in FORMATS if f.kind in kinds and f.matches(keys)), None)


def convert_row(row: Any, fmt: str, where: tuple[str, int]):
    """A raw row of format ``fmt`` as a Conversation or PreferencePair (DataError when malformed)."""
    return FORMATS_BY_NAME[fmt].convert(_object(row, where), where)


def prompt_messages(row: Any, where: tuple[str, int]) -> list[Message]:
    """The messages a model should answer for a row of any format (generation, evaluation)."""
    row = _object(row, where)
    fmt = detect_format(row, kinds=("sft", "preference", "prompt"))
    if fmt is None:
        raise DataError(where[0], where[1], None, "no prompt: expected one of the fields "
                        + ", ".join(sorted({k for f in FORMATS for k in f.any_of | f.all_of})))
    return FORMATS_BY_NAME[fmt].prompt(row, where)


# The row kinds each strategy trains on, in detection order (default: TRAINING_KINDS).
STRATEGY_FORMAT_KINDS: dict[str, tuple[str, ...]] = {"kto": ("feedback", "preference"), "pretrain": ("text",),
                                                     "reward": ("preference",)}
# What a strategy says when a file's first row is of no kind it reads.
STRATEGY_DATA_HINTS: dict[str, tuple[str, str]] = {
    "kto": ("label", "training_strategy=kto needs prompt (or messages)/completion/label rows, or "
                     "prompt/chosen/rejected pairs"),
    "pretrain": ("text", "training_strategy=pretrain needs a 'text' column (or .txt/.md files)"),
    "reward": ("rejected", "training_strategy=reward needs prompt/chosen/rejected rows"),
}


class FileRows:
    """The rows of one file, streamed, after the file's format is detected from its first usable row.

    Yields ``(row number, payload)``; payloads are raw rows or unparsed ``RawLine``s, converted by
    ``example_from`` (possibly in another process). Rows before the detected one that cannot be read
    are counted in ``report`` (``on_bad_rows: skip``) or raise.
    """

    def __init__(self, path: str | Path, strategy: str, report: RowReport | None = None):
        self.path, self.name, self.strategy, self.report = path, str(path), strategy, report
        self.fmt: str | None = None

    def __iter__(self) -> Iterator[tuple[int, Any]]:
        for lineno, payload in file_rows(self.path):
            if self.fmt is None:
                row = self._detect(lineno, payload)
                if self.fmt is None:
                    continue
                payload = row
            yield lineno, payload

    def _detect(self, lineno: int, payload: Any) -> Any:
        name, report = self.name, self.report
        row = parse_line(name, lineno, payload.text, report is not None) if isinstance(payload, RawLine) else payload
        if isinstance(row, InvalidLine):
            report.drop("invalid JSON", f"{name}:{lineno}")  # type: ignore[union-attr]
            return None
        kinds = STRATEGY_FORMAT_KINDS.get(self.strategy, TRAINING_KINDS)
        fmt = detect_format(row, kinds)
        other = detect_format(row) if fmt is None else None
        if fmt is None and self.strategy in STRATEGY_DATA_HINTS and (report is None or other is not None):
            field, why = STRATEGY_DATA_HINTS[self.strategy]  # a row this strategy cannot train on
            found = (f"this file has {other} rows" if other
                     else f"found keys {sorted(row) if isinstance(row, dict) else type(row).__name__}")
            raise DataError(name, lineno, field, f"{why} ({found})")
        if fmt is None:
            keys = sorted(row) if isinstance(row, dict) else type(row).__name__
            if report is None:
                raise DataError(name, lineno, None, f"cannot tell the row format from keys {keys}; expected "
                                "instruction/output, messages, conversations, prompt/completion or "
                                "prompt/chosen/rejected")
            report.drop("unrecognised row format", f"{name}:{lineno}")  # detect from the next row
            return None
        if self.strategy == "dpo" and fmt != "preference":
            raise DataError(name, lineno, "rejected", "training_strategy=dpo needs prompt/chosen/rejected rows")
        if self.strategy == "sft" and fmt == "preference":
            raise DataError(name, lineno, None,
                            "prompt/chosen/rejected rows are preference data: set training_strategy: dpo")
        self.fmt = fmt
        return row


def example_from(name: str, lineno: int, payload: Any, fmt: str, report: RowReport | None):
    """One payload of a FileRows as a Conversation/PreferencePair; None when dropped into ``report``."""
    try:
        row = parse_line(name, lineno, payload.text, report is not None) if isinstance(payload, RawLine) else payload
        if isinstance(row, InvalidLine):
            report.drop("invalid JSON", f"{name}:{lineno}")  # type: ignore[union-attr]
            return None
        return convert_row(row, fmt, (name, lineno))
    except DataError as err:
        if report is None:
            raise
        report.drop(_reason(err), f"{name}:{lineno}")
        return None


def iter_examples(path: str | Path, strategy: str, report: RowReport | None = None) -> Iterator:
    """The examples of one file, streamed (see ``load_examples``)."""
    rows = FileRows(path, strategy, report)
    for lineno, payload in rows:
        example = example_from(rows.name, lineno, payload, rows.fmt, report)  # type: ignore[arg-type]
        if example is not None:
            yield example


def load_examples(path: str | Path, strategy: str, report: RowReport | None = None) -> list:
    """All rows of ``path`` (a file, or a directory of shards) as Conversations (sft) or PreferencePairs (dpo).

    With ``report`` given, malformed rows are dropped and counted there (``on_bad_rows: skip``);
    without it the first malformed row raises a DataError.
    """
    out = [ex for file in source_files(path) for ex in iter_examples(file, strategy, report)]
    if not out:
        raise DataError(str(path), None, None, "no usable rows")
    return out


def _reason(err: DataError) -> str:
    """A short reason for counting skipped rows ('missing required field rejected' ...)."""
    fld = (err.field or "").split("[")[0].split(".")[0]
    return f"{err.why} ({fld})" if fld else err.why
