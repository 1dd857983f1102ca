"""Batched sampling with a key/value cache, for training rollouts (GRPO) and validation answers.

The prompts are left-padded and run once (prefill, position ids counted from each row's first real
token, as ``tuneforge serve``'s batcher does); then one token per row per forward, reading the cache.
A row leaves the batch when it emits a stop token or reaches ``max_new_tokens``, and its cache rows go
with it (``batch_select_indices``), so the last long completions do not pay for the finished ones.

Each row samples with its own generator, seeded by the caller (GRPO: from the run's seed, the epoch, the
data row and the choice), through the Gumbel-max trick: argmax(log p + Gumbel noise) is a draw from p. A
row's completion therefore depends on its seed and its logits only — not on which rows share its batch,
the number of processes, the accumulation, or the process's RNG state — so a resumed run and a 2-process
run draw the completions a 1-process uninterrupted run draws. The entropy of each step's sampling
distribution (logits / temperature, before top-k/top-p) is recorded for the ``entropy`` metric.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import torch
from torch import nn

from .kv_cache import cache_argument, returned_cache


@dataclass(frozen=True)
class SamplingSettings:
    max_new_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0  # 0 = off
    greedy: bool = False


@dataclass
class Completions:
    """Per prompt row (in input order): the sampled token ids (the stop token included when emitted)."""

    tokens: list[list[int]] = field(default_factory=list)
    truncated: list[bool] = field(default_factory=list)  # reached max_new_tokens without a stop token
    entropy: list[float] = field(default_factory=list)  # summed over the row's sampled positions

    def extend(self, other: "Completions") -> None:
        self.tokens += other.tokens
        self.truncated += other.truncated
        self.entropy += other.entropy


def filter_logits(scaled: torch.Tensor, top_p: float, top_k: int) -> torch.Tensor:
    """``scaled`` (rows, vocab) with the tokens outside top-k and outside the top-p nucleus set to -inf
    (the most likely token always stays)."""
    if top_k > 0 and top_k < scaled.shape[-1]:
        kth = torch.topk(scaled, top_k, dim=-1).values[:, -1:]
        scaled = scaled.masked_fill(scaled < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = torch.sort(scaled, descending=True, dim=-1)
        probs = torch.softmax(sorted_logits, dim=-1)
        outside = torch.cumsum(probs, dim=-1) - probs >= top_p
        scaled = scaled.scatter(-1, order, sorted_logits.masked_fill(outside, float("-inf")))
    return scaled


def row_generators(seeds: Sequence[int], device: torch.device) -> list[torch.Generator]:
    gens = []
    for seed in seeds:
        g = torch.Generator(device=device)
        g.manual_seed(int(seed) % (2 ** 63 - 1))
        gens.append(g)
    return gens


def gumbel_noise(generators: Sequence[torch.Generator], vocab: int, device: torch.device) -> torch.Tensor:
    """(rows, vocab) Gumbel(0, 1) noise, row i drawn from generator i."""
    u = torch.stack([torch.rand(vocab, generator=g, device=device) for g in generators])
    return -torch.log(-torch.log(u.clamp(min=1e-20, max=1.0 - 1e-7)))


def pick_tokens(logits: torch.Tensor, s: SamplingSettings, generators: Sequence[torch.Generator] = ()
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """(next token per row, entropy of each row's sampling distribution). Sampling needs one generator per row."""
    scaled = logits.float() / (s.temperature if s.temperature > 0 else 1.0)
    logp = torch.log_softmax(scaled, dim=-1)
    entropy = -(logp.exp() * logp).nan_to_num().sum(-1)
    if s.greedy:
        return scaled.argmax(-1), entropy
    filtered = torch.log_softmax(filter_logits(scaled, s.top_p, s.top_k), dim=-1)
    return (filtered + gumbel_noise(generators, scaled.shape[-1], scaled.device)).argmax(-1), entropy


@torch.no_grad()
def sample_completions(model: nn.Module, prompts: Sequence[Sequence[int]], settings: SamplingSettings,
                       stop_ids: Sequence[int], batch_size: int | None = None,
                       seeds: Sequence[int] | None = None) -> Completions:
    """One completion per prompt (repeat a prompt G times for G samples), ``batch_size`` rows at a time;
    ``seeds``: one per prompt row (needed unless greedy)."""
    if not settings.greedy and (seeds is None or len(seeds) != len(prompts)):
        raise ValueError("sampling needs one seed per prompt row")
    out = Completions()
    step = batch_size or len(prompts)
    was_training = model.training
    threads = torch.get_num_threads()
    model.eval()
    try:
        torch.set_num_threads(decode_threads(model, threads))
        for start in range(0, len(prompts), step):
            chunk_seeds = seeds[start:start + step] if seeds is not None else None
            out.extend(_sample_chunk(model, prompts[start:start + step], settings, stop_ids, chunk_seeds))
    finally:
        torch.set_num_threads(threads)
        model.train(was_training)
    return out


SMALL_MODEL_PARAMETERS = 50_000_000


def decode_threads(model: nn.Module, threads: int) -> int:
    """Intra-op threads while decoding. A small model on CPU decodes one token per row with tiny matrix products,
    where thread hand-offs cost more than they save: on 2 busy cores the toy model sampled 20 tokens/s with 2
    threads and 380 with 1 (bench/RESULTS.md). Larger models and GPUs keep the setting."""
    first = next(model.parameters())
    small = sum(p.numel() for p in model.parameters()) < SMALL_MODEL_PARAMETERS
    return 1 if first.device.type == "cpu" and small else threads


def _sample_chunk(model: nn.Module, prompts: Sequence[Sequence[int]], s: SamplingSettings,
                  stop_ids: Sequence[int], seeds: Sequence[int] | None) -> Completions:
    device = next(model.parameters()).device
    generators = row_generators(seeds, device) if seeds is not None and not s.greedy else []
    width = max(len(p) for p in prompts)
    ids = torch.tensor([[0] * (width - len(p)) + list(p) for p in prompts], device=device)
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=device)
    positions = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 1)
    result = model(input_ids=ids, attention_mask=mask, position_ids=positions, use_cache=True, logits_to_keep=1)
    cache, logits = returned_cache(result), result.logits[:, -1, :]
    next_pos = mask.sum(1, keepdim=True)
    stops = torch.tensor(list(stop_ids), device=device)
    n = len(prompts)
    done = Completions([[] for _ in range(n)], [True] * n, [0.0] * n)
    alive = list(range(n))  # original row of each batch row
    cache_arg = cache_argument(model)
    for t in range(s.max_new_tokens):
        tokens, entropy = pick_tokens(logits, s, [generators[row] for row in alive] if generators else ())
        finished = torch.isin(tokens, stops) if len(stop_ids) else torch.zeros_like(tokens, dtype=torch.bool)
        keep = []
        for b, (row, tok, ent, fin) in enumerate(zip(alive, tokens.tolist(), entropy.tolist(), finished.tolist())):
            done.tokens[row].append(tok)
            done.entropy[row] += ent
            if fin:
                done.truncated[row] = False
            else:
                keep.append(b)
        if not keep or t + 1 == s.max_new_tokens:
            break
        if len(keep) < len(alive):
            index = torch.tensor(keep, device=device)
            cache.batch_select_indices(index)
            mask, next_pos, tokens = mask[index], next_pos[index], tokens[index]
            alive = [alive[b] for b in keep]
        mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
        result = model(input_ids=tokens[:, None], attention_mask=mask, position_ids=next_pos, use_cache=True,
                       **{cache_arg: cache})
        cache, logits = returned_cache(result), result.logits[:, -1, :]
        next_pos = next_pos + 1
    return done


def pad_right(rows: Sequence[Sequence[int]], pad_id: int, width: int | None = None) -> torch.Tensor:
    width = width if width is not None else max((len(r) for r in rows), default=0)
    return torch.tensor([list(r) + [pad_id] * (width - len(r)) for r in rows],
                        dtype=torch.long).reshape(len(rows), width)


__all__ = ["SamplingSettings", "Completions", "sample_completions", "filter_logits", "pick_tokens", "pad_right"]
