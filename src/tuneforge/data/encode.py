"""The one encoder per strategy: a row → exactly what training trains on.

Training (through the cache), ``tuneforge stats``, ``tuneforge preview``, evaluation and the console
all call ``encode_example``; none of them re-implements rendering, truncation or the drop rule
(docs/data.md, "The one encoder").

SFT: the conversation rendered once and tokenized once (``templates.encode_messages``), then cut
to ``seq_length``; a row with no trained token left is dropped (refused under ``on_bad_rows: error``).

DPO: each response encoded as the assistant continuation of the prompt (``last_turn_only``), so
chosen and rejected share the exact prompt tokens the model sees at generation time; a pair keeps
only its trained response tokens (end-of-turn included). ``seq_length`` bounds *both* prompt+chosen
and prompt+rejected: an over-long pair first loses prompt tokens from the prompt's start — the
question sits at its end — down to a floor of ``PROMPT_FLOOR_FRACTION`` of seq_length (a leading BOS
is kept); then both responses are cut to the room left.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

from .formats import Conversation, Document, Feedback, Message, PreferencePair
from .templates import (IGNORE_INDEX, Encoded, TemplateMismatch, _bos_ids, _ids_and_offsets, encode_messages,
                        with_system_prompt)

# Bump whenever the encoders' output changes for the same input: it is part of the cache key.
ENCODER_VERSION = 2

# The prompt is never shortened below this fraction of seq_length, so the responses always keep at
# least the other part (a long prompt cannot silently push every response token out).
PROMPT_FLOOR_FRACTION = 0.5

DROP_NO_TRAINED = "no trained token after truncation"
DROP_TEMPLATE_SFT = "chat template renders prompt and answer inconsistently"
DROP_NO_RESPONSE = "no response token left after truncation"
DROP_IDENTICAL = "chosen and rejected are identical"
DROP_IDENTICAL_TRUNCATED = "chosen and rejected identical after truncation"
DROP_TEMPLATE = "chat template renders the prompt and prompt+response inconsistently"


@dataclass(frozen=True)
class EncodeSettings:
    """Every setting that changes the encoding of a row (all of them are in the cache key)."""

    strategy: str
    seq_length: int
    apply_chat_template: bool = True
    system_prompt: str | None = None

    @classmethod
    def from_config(cls, cfg) -> "EncodeSettings":
        return cls(cfg.training_strategy, cfg.seq_length, cfg.apply_chat_template, cfg.system_prompt)


@dataclass
class EncodedPair:
    """Token ids of one preference pair; every chosen/rejected token is a trained token."""

    prompt: list[int]
    chosen: list[int]
    rejected: list[int]

    @property
    def longest(self) -> int:
        return len(self.prompt) + max(len(self.chosen), len(self.rejected))

    def sequences(self) -> tuple[Encoded, Encoded]:
        """prompt+chosen and prompt+rejected as labelled rows (the prompt untrained)."""
        masked = [IGNORE_INDEX] * len(self.prompt)
        return (Encoded(self.prompt + self.chosen, masked + self.chosen, len(self.prompt)),
                Encoded(self.prompt + self.rejected, masked + self.rejected, len(self.prompt)))


@dataclass
class Encoding:
    """What training does with one row: the encoded item, or why it is dropped."""

    item: Any  # Encoded (sft) or EncodedPair (dpo), truncated; for a dropped row what is left of it (tools
    # show it), None when the chat template refused the row
    truncated: bool = False
    full_length: int = 0  # tokens before truncation (dpo: prompt + the longer response)
    drop: str | None = None  # the reason counted in the run's banner
    refused: bool = False  # under on_bad_rows: error this drop stops the run with a DataError ...
    field: str | None = None  # ... naming this field
    why: str = ""  # ... with this message

    @property
    def kept(self) -> bool:
        return self.drop is None


# ---------------------------------------------------------------------------------------------
# SFT


def truncate_row(enc: Encoded, seq_length: int) -> tuple[Encoded, bool]:
    if len(enc.input_ids) <= seq_length:
        return enc, False
    n = seq_length
    return Encoded(enc.input_ids[:n], enc.labels[:n], min(enc.prompt_length, n)), True


def encode_sft(conv: Conversation, tokenizer, settings: EncodeSettings) -> Encoding:
    msgs = with_system_prompt(conv.messages, settings.system_prompt)
    try:
        full = encode_messages(tokenizer, msgs, chat_template=settings.apply_chat_template)
    except TemplateMismatch as exc:
        return Encoding(None, drop=DROP_TEMPLATE_SFT, refused=True, field="messages", why=str(exc))
    enc, truncated = truncate_row(full, settings.seq_length)
    # Position 0 is never a target (each position predicts the next token): count labels[1:].
    if all(x == IGNORE_INDEX for x in enc.labels[1:]):
        why = (f"no trained token left after truncation to seq_length={settings.seq_length} (the prompt fills it)"
               "; raise seq_length or set on_bad_rows: skip")
        return Encoding(enc, truncated, len(full.input_ids), DROP_NO_TRAINED, True, "seq_length", why)
    return Encoding(enc, truncated, len(full.input_ids))


# ---------------------------------------------------------------------------------------------
# DPO


def _response(tokenizer, msgs: list[Message], answer: str, chat_template: bool) -> tuple[list[int], list[int]]:
    """(prompt ids, response ids) of ``answer`` as the assistant turn after ``msgs``."""
    enc = encode_messages(tokenizer, msgs + [Message("assistant", answer)], chat_template=chat_template,
                          last_turn_only=True)
    trained = [t for t, label in enumerate(enc.labels) if label != IGNORE_INDEX]
    if not trained:
        return enc.input_ids[: enc.prompt_length], []
    if trained[0] != enc.prompt_length or trained[-1] - trained[0] + 1 != len(trained):
        raise TemplateMismatch("the response's tokens are not one contiguous run right after the prompt")
    return enc.input_ids[: enc.prompt_length], enc.input_ids[trained[0]: trained[-1] + 1]


def encode_pair(pair: PreferencePair, tokenizer, settings: EncodeSettings) -> EncodedPair:
    """Token ids of a pair (untruncated). Raises TemplateMismatch when the rendered prompt is not a
    prefix of prompt+response, or when it tokenizes differently before the two responses."""
    msgs = with_system_prompt(pair.prompt, settings.system_prompt)
    prompt_c, chosen = _response(tokenizer, msgs, pair.chosen, settings.apply_chat_template)
    prompt_r, rejected = _response(tokenizer, msgs, pair.rejected, settings.apply_chat_template)
    if prompt_c != prompt_r:
        raise TemplateMismatch("the prompt tokenizes differently before the chosen and the rejected response "
                               "(tokens merge across the prompt/response boundary)")
    return EncodedPair(prompt_c, chosen, rejected)


def truncate_pair(pair: EncodedPair, seq_length: int, keep_head: int = 0,
                  prompt_floor: int | None = None) -> tuple[EncodedPair, bool]:
    """Bound both prompt+chosen and prompt+rejected by ``seq_length``; returns (pair, was_truncated).

    The prompt loses tokens after its first ``keep_head`` (a BOS) until the longer response fits or the
    prompt reaches ``prompt_floor`` tokens (default ``PROMPT_FLOOR_FRACTION`` x seq_length); the
    responses then keep their first tokens that fit.
    """
    if pair.longest <= seq_length:
        return pair, False
    prompt = pair.prompt
    if prompt_floor is None:
        prompt_floor = int(seq_length * PROMPT_FLOOR_FRACTION)
    floor = min(len(prompt), max(prompt_floor, keep_head))
    keep = min(len(prompt), max(floor, seq_length - max(len(pair.chosen), len(pair.rejected))))
    if keep < len(prompt):
        tail = keep - keep_head
        prompt = prompt[:keep_head] + (prompt[len(prompt) - tail:] if tail > 0 else [])
    room = max(seq_length - len(prompt), 0)
    return EncodedPair(list(prompt), pair.chosen[:room], pair.rejected[:room]), True


def leading_bos(tokenizer, prompt: Sequence[int]) -> int:
    bos = getattr(tokenizer, "bos_token_id", None)
    return 1 if bos is not None and prompt and prompt[0] == bos else 0


def encode_dpo(pair: PreferencePair, tokenizer, settings: EncodeSettings) -> Encoding:
    try:
        full = encode_pair(pair, tokenizer, settings)
    except TemplateMismatch as exc:
        return Encoding(None, drop=DROP_TEMPLATE, refused=True, field="prompt",
                        why=f"{exc}; set on_bad_rows: skip to drop such rows")
    if full.chosen == full.rejected:
        return Encoding(full, full_length=full.longest, drop=DROP_IDENTICAL)
    enc, truncated = truncate_pair(full, settings.seq_length, leading_bos(tokenizer, full.prompt))
    if not enc.chosen or not enc.rejected:
        return Encoding(enc, truncated, full.longest, DROP_NO_RESPONSE)
    if enc.chosen == enc.rejected:
        return Encoding(enc, truncated, full.longest, DROP_IDENTICAL_TRUNCATED)
    return Encoding(enc, truncated, full.longest)


# ---------------------------------------------------------------------------------------------
# KTO: one completion per item, stored as a pair with the other side empty (training/kto.py unpairs)


def encode_kto(example: Feedback | PreferencePair, tokenizer, settings: EncodeSettings) -> Encoding:
    """A Feedback row → EncodedPair(prompt, completion, []) when desirable, (prompt, [], completion) when not;
    a preference pair is encoded as DPO encodes it, and the KTO recipe trains it as one desirable and one
    undesirable row. Truncation is DPO's (the prompt loses its start first)."""
    if isinstance(example, PreferencePair):
        return encode_dpo(example, tokenizer, settings)
    msgs = with_system_prompt(example.prompt, settings.system_prompt)
    try:
        prompt, completion = _response(tokenizer, msgs, example.completion, settings.apply_chat_template)
    except TemplateMismatch as exc:
        return Encoding(None, drop=DROP_TEMPLATE, refused=True, field="prompt",
                        why=f"{exc}; set on_bad_rows: skip to drop such rows")
    full = EncodedPair(prompt, completion, []) if example.desirable else EncodedPair(prompt, [], completion)
    enc, truncated = truncate_pair(full, settings.seq_length, leading_bos(tokenizer, prompt))
    if not enc.chosen and not enc.rejected:
        return Encoding(enc, truncated, full.longest, DROP_NO_RESPONSE)
    return Encoding(enc, truncated, full.longest)


# ---------------------------------------------------------------------------------------------
# Continued pre-training: a whole document, every token trained, EOS at its end


def encode_pretrain(doc: Document, tokenizer, settings: EncodeSettings) -> Encoding:
    """A document as [BOS if the tokenizer adds one] + its tokens + EOS, every token a label. It is stored
    whole: the pretrain recipe cuts long documents into seq_length pieces and packs short ones (no chat
    template, no system prompt: raw text is trained as it is)."""
    eos = getattr(tokenizer, "eos_token_id", None)
    if eos is None:
        return Encoding(None, drop="tokenizer has no EOS token", refused=True, field="text",
                        why="the tokenizer has no EOS token to end each document with")
    ids = list(_bos_ids(tokenizer)) + list(_ids_and_offsets(tokenizer, doc.text)["input_ids"])
    if not ids or ids[-1] != eos:
        ids.append(eos)
    return Encoding(Encoded(ids, list(ids), 0), False, len(ids))


ENCODERS: dict[str, Callable[[Any, Any, EncodeSettings], Encoding]] = {
    "sft": encode_sft, "dpo": encode_dpo, "kto": encode_kto, "pretrain": encode_pretrain,
    # a reward model reads DPO's pairs, encoded the same way
    "reward": encode_dpo}


def encode_example(example, tokenizer, settings: EncodeSettings) -> Encoding:
    """``example`` (a Conversation for sft, a PreferencePair for dpo) encoded as training encodes it."""
    return ENCODERS[settings.strategy](example, tokenizer, settings)


def truncation_rules() -> dict[str, Any]:
    """The truncation constants, for the cache key (a changed rule must not reuse old encodings)."""
    return {"dpo_prompt_floor_fraction": PROMPT_FLOOR_FRACTION, "sft": "keep the first seq_length tokens"}
