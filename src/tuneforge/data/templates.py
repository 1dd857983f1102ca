"""Conversation → token ids + labels, the loss mask built in one place alongside the ids.

With a chat template, the whole conversation is rendered once and tokenized once (so token merges
are exactly those the model sees at inference); the trained spans are the characters each assistant
turn adds to the rendering, found by rendering the conversation up to that turn with and without the
answer. That span includes the template's end-of-turn token, which is therefore trained even when the
tokenizer's pad token equals its EOS token: labels never depend on token ids, only on positions.
"""
from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import Sequence

from .formats import Message

IGNORE_INDEX = -100


class TemplateMismatch(ValueError):
    """The chat template cannot render this conversation consistently: it refuses it, or it renders a
    conversation prefix differently from the conversation itself."""


@dataclass
class Encoded:
    input_ids: list[int]
    labels: list[int]  # IGNORE_INDEX where not trained
    prompt_length: int  # tokens before the first trained token of the last assistant turn

    @property
    def n_trained(self) -> int:
        return sum(1 for x in self.labels if x != IGNORE_INDEX)


def with_system_prompt(messages: Sequence[Message], system_prompt: str | None) -> list[Message]:
    """Insert ``system_prompt`` where the row has no system message (replacing a template's default)."""
    msgs = list(messages)
    if system_prompt is not None and (not msgs or msgs[0].role != "system"):
        msgs.insert(0, Message("system", system_prompt))
    return msgs


def _render(tokenizer, msgs: Sequence[Message], add_generation_prompt: bool) -> str:
    if not getattr(tokenizer, "chat_template", None):
        raise TemplateMismatch("the tokenizer has no chat template: set apply_chat_template: false "
                               "(plain concatenation) or use a model that ships one")
    try:
        return tokenizer.apply_chat_template(
            [{"role": m.role, "content": m.content} for m in msgs],
            tokenize=False, add_generation_prompt=add_generation_prompt)
    except Exception as exc:  # jinja2 errors, raise_exception() calls of the template itself
        # Templates refuse conversations they do not support (e.g. a system message, or roles that do
        # not alternate); that is a property of this row under this model, reported like bad data.
        raise TemplateMismatch(f"the model's chat template refused this conversation ({exc})") from None


def trained_char_spans(tokenizer, msgs: Sequence[Message], last_turn_only: bool) -> tuple[str, list[tuple[int, int]]]:
    """The rendered text and the ``[start, end)`` character spans of the trained assistant turns."""
    full = _render(tokenizer, msgs, add_generation_prompt=False)
    spans = []
    assistant_idx = [i for i, m in enumerate(msgs) if m.role == "assistant"]
    if last_turn_only:
        assistant_idx = assistant_idx[-1:]
    for i in assistant_idx:
        before = _render(tokenizer, msgs[:i], add_generation_prompt=True)
        # The last turn's "up to" rendering is the full one (most rows: one render fewer).
        upto = full if i == len(msgs) - 1 else _render(tokenizer, msgs[: i + 1], add_generation_prompt=False)
        if not upto.startswith(before) or not full.startswith(upto):
            raise TemplateMismatch(
                "the chat template renders the prompt differently from prompt+answer, so the trained "
                "tokens cannot be located (templates that rewrite earlier turns are not supported)")
        # Whitespace after the end-of-turn token separates turns; it is not part of the answer.
        end = len(upto.rstrip())
        spans.append((len(before), end))
    return full, spans


def _bos_ids(tokenizer) -> list[int]:
    """BOS the tokenizer would add on its own (plain mode), detected rather than assumed."""
    probe = tokenizer("a", add_special_tokens=True)["input_ids"]
    bare = tokenizer("a", add_special_tokens=False)["input_ids"]
    return probe[: len(probe) - len(bare)] if probe[-len(bare):] == bare else []


def without_trailing_eos(tokenizer, content: str) -> str:
    """An answer without the EOS text it may already end with: the template (or plain mode) adds one EOS,
    and a second, trained EOS would teach the model to emit two."""
    eos = getattr(tokenizer, "eos_token", None)
    if not eos:
        return content
    stripped = content.rstrip()
    if not stripped.endswith(eos):
        return content
    while stripped.endswith(eos):
        stripped = stripped[: -len(eos)].rstrip()
    return stripped


def _ids_and_offsets(tokenizer, text: str) -> dict:
    """Token ids and character offsets of ``text`` (no special tokens added). A fast tokenizer's Rust
    backend is called directly: the same result as ``tokenizer(...)`` without its per-call Python work,
    which costs as much as the tokenization itself on short rows."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        enc = backend.encode(text, add_special_tokens=False)
        return {"input_ids": enc.ids, "offset_mapping": enc.offsets}
    return tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)


def encode_messages(tokenizer, msgs: Sequence[Message], *, chat_template: bool,
                    last_turn_only: bool = False) -> Encoded:
    """Token ids and labels for a conversation; assistant turns (or only the last one) are trained."""
    msgs = [Message(m.role, without_trailing_eos(tokenizer, m.content)) if m.role == "assistant" else m for m in msgs]
    if chat_template:
        text, spans = trained_char_spans(tokenizer, msgs, last_turn_only)
        enc = _ids_and_offsets(tokenizer, text)
        ids = list(enc["input_ids"])
        labels = [IGNORE_INDEX] * len(ids)
        # Spans are sorted and disjoint: the one that may hold a token is the last starting at or before it.
        starts = [s for s, _ in spans]
        for t, (start, _end) in enumerate(enc["offset_mapping"]):
            i = bisect.bisect_right(starts, start) - 1
            if i >= 0 and start < spans[i][1]:
                labels[t] = ids[t]
        last_start = spans[-1][0]
        prompt_len = next((t for t, (s, _) in enumerate(enc["offset_mapping"]) if s >= last_start), len(ids))
        return Encoded(ids, labels, prompt_len)
    # Plain concatenation: the data carries its own special tokens; prompt segments end with a
    # newline, each answer is followed by EOS so the model learns to stop.
    ids = list(_bos_ids(tokenizer))
    labels = [IGNORE_INDEX] * len(ids)
    last_assistant = max(i for i, m in enumerate(msgs) if m.role == "assistant")
    prompt_len = 0
    for i, m in enumerate(msgs):
        if m.role == "assistant":
            piece = tokenizer(m.content, add_special_tokens=False)["input_ids"]
            if tokenizer.eos_token_id is not None:
                piece = piece + [tokenizer.eos_token_id]
            trained = not last_turn_only or i == last_assistant
            if i == last_assistant:
                prompt_len = len(ids)
            ids += piece
            labels += piece if trained else [IGNORE_INDEX] * len(piece)
        else:
            piece = tokenizer(m.content + "\n", add_special_tokens=False)["input_ids"]
            ids += piece
            labels += [IGNORE_INDEX] * len(piece)
    return Encoded(ids, labels, prompt_len)


def encode_prompt(tokenizer, msgs: Sequence[Message], *, chat_template: bool) -> list[int]:
    """Token ids of a prompt ready for generation (the template's generation prompt appended)."""
    if chat_template:
        text = _render(tokenizer, msgs, add_generation_prompt=True)
        return list(tokenizer(text, add_special_tokens=False)["input_ids"])
    ids = list(_bos_ids(tokenizer))
    for m in msgs:
        ids += tokenizer(m.content + ("\n" if m.role != "assistant" else ""), add_special_tokens=False)["input_ids"]
        if m.role == "assistant" and tokenizer.eos_token_id is not None:
            ids.append(tokenizer.eos_token_id)
    return ids
