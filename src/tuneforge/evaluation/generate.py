"""Batched greedy answers through the engine's inference code: the run's chat template and system prompt
(``models.inference.prompt_ids``), its stop tokens, and the left-padded batch generation of ``tuneforge
generate``. Greedy decoding makes the answers, and so the scores, reproducible."""
from __future__ import annotations

from typing import Sequence

from torch import nn

from ..models import inference
from ..models.generation import generate_batch
from .data import GenerationItem
from .loading import EvalModel


def greedy_answers(model: EvalModel, weights: nn.Module, items: Sequence[GenerationItem], *,
                   max_new_tokens: int, batch_size: int, system_prompt: str | None = None) -> list[str]:
    """One greedy answer per item, in the items' order. Prompts are batched longest first (less padding)."""
    tokenizer = model.tokenizer
    stop = inference.stop_token_ids(weights, tokenizer)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else stop[0]
    kwargs = dict(max_new_tokens=max_new_tokens, eos_token_id=stop, pad_token_id=pad, do_sample=False,
                  temperature=None, top_p=None, top_k=None)
    prompts = [inference.prompt_ids(tokenizer, model.source, item.prompt, system_prompt) for item in items]
    order = sorted(range(len(prompts)), key=lambda i: -len(prompts[i]))
    answers: list[str] = [""] * len(prompts)
    weights.eval()
    for start in range(0, len(order), batch_size):
        chunk = order[start:start + batch_size]
        texts = generate_batch(weights, tokenizer, [prompts[i] for i in chunk], model.device, kwargs)
        for i, text in zip(chunk, texts):
            answers[i] = text
    return answers
