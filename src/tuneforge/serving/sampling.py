"""Choosing the next token per sequence, and turning generated tokens into text that stops where asked.

Each sequence of a batch has its own settings (greedy or temperature/top-p sampling) and its own random
generator, so a request with a ``seed`` gets the same tokens whatever else shares its batch (up to the
rounding differences that padding causes).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import torch


GREEDY_BELOW = 1e-5  # a temperature under this (0 included) decodes greedily


@dataclass(frozen=True)
class SamplingParams:
    """One request's generation settings (already validated by the protocol layer)."""

    max_tokens: int
    temperature: float = 1.0  # 0 = greedy
    top_p: float = 1.0
    stop: tuple[str, ...] = ()
    seed: int | None = None
    n: int = 1

    @property
    def greedy(self) -> bool:
        # below GREEDY_BELOW the distribution is one token anyway (as vLLM rounds it); sampling at such a
        # temperature would only divide by a number that underflows
        return self.temperature < GREEDY_BELOW


def make_generator(params: SamplingParams, choice: int) -> torch.Generator | None:
    """A private generator per choice: seeded from (seed, choice) so n choices differ but repeat exactly."""
    if params.greedy:
        return None
    gen = torch.Generator(device="cpu")
    if params.seed is None:
        gen.manual_seed(int.from_bytes(os.urandom(8), "little") >> 1)
    else:
        gen.manual_seed((params.seed * 1_000_003 + choice) % (2**63 - 1))
    return gen


class SamplingFailed(ValueError):
    """One sequence's logits gave no distribution to sample from (NaN or infinite values)."""


def next_token(logits: torch.Tensor, params: SamplingParams, generator: torch.Generator | None) -> int:
    """The next token id from one row of logits ``[vocab]``."""
    if params.greedy:
        return int(torch.argmax(logits))
    scaled = logits.double().cpu()
    scaled = (scaled - scaled.max()) / params.temperature  # the best token at 0: no overflow at any temperature
    probs = torch.softmax(scaled, dim=-1)
    if not bool(torch.isfinite(probs).all()):
        raise SamplingFailed("the model's logits are not finite numbers; no token can be sampled")
    if params.top_p < 1.0:
        sorted_probs, order = torch.sort(probs, descending=True)
        # keep the smallest set whose mass reaches top_p; the most likely token always stays, however small
        # top_p is (a top_p below the float's resolution would otherwise keep nothing)
        keep = torch.cumsum(sorted_probs, dim=-1) - sorted_probs < params.top_p
        keep[0] = True
        probs = torch.zeros_like(probs).scatter_(0, order[keep], sorted_probs[keep])
    return int(torch.multinomial(probs, 1, generator=generator))


@dataclass
class TextTracker:
    """The text of one choice as tokens arrive: what is safe to send, and whether a stop string was hit.

    Text that might be the start of a stop string, or half of a multi-byte character, is held back
    until the next tokens decide it.
    """

    tokenizer: object
    stop: tuple[str, ...] = ()
    token_ids: list[int] = field(default_factory=list)
    text: str = ""
    sent: int = 0  # characters of ``text`` already handed out
    stopped: bool = False

    def add(self, token_id: int) -> str:
        """Append a token; return the newly safe text (empty when held back)."""
        self.token_ids.append(token_id)
        decoded = self.tokenizer.decode(self.token_ids, skip_special_tokens=True)  # type: ignore[attr-defined]
        cut = self._first_stop(decoded)
        if cut is not None:
            self.text, self.stopped = decoded[:cut], True
            return self.flush()
        self.text = decoded
        safe = len(decoded) - self._held_back(decoded)
        return self._take(safe)

    def flush(self) -> str:
        """All remaining text (the sequence has finished)."""
        return self._take(len(self.text))

    def _take(self, upto: int) -> str:
        if upto <= self.sent:
            return ""
        piece, self.sent = self.text[self.sent:upto], upto
        return piece

    def _first_stop(self, text: str) -> int | None:
        start = max(0, self.sent - max((len(s) for s in self.stop), default=0))
        hits = [i for i in (text.find(s, start) for s in self.stop) if i >= 0]
        return min(hits) if hits else None

    def _held_back(self, text: str) -> int:
        # an incomplete UTF-8 sequence decodes to U+FFFD until a later token completes it
        held = len(text) - len(text.rstrip("\ufffd"))
        for s in self.stop:
            for k in range(min(len(s) - 1, len(text)), 0, -1):
                if text.endswith(s[:k]):
                    held = max(held, k)
                    break
        return held
