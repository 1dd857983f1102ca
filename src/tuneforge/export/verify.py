"""Verification at export time: the written GGUF is read back by transformers' GGUF loader (an independent
reader: its own de-quantisation, name mapping and Q/K un-permutation) and compared with the run's model.

Two comparisons per prompt, both on max |logit difference| relative to the logits' scale
``s = max(1, max |reference logit|)``:

* file check -- the GGUF model vs the run's model with its weights rounded exactly as the file stores them
  (f16/bf16 casts, Q8_0 quantise/de-quantise of each tensor): the same weights computed by the same library,
  so equal within ``1e-5 * s`` for every dtype. A wrong name, layout or tokenizer id shows up here.
* drift -- the GGUF model vs the run's own, unrounded model: the effect of the storage type, bounded by
  ``DRIFT_TOLERANCE`` (f32 1e-5; f16 1e-2 and bf16 5e-2: a few hundred times one rounding step of their
  10/7-bit mantissas, which accumulates over layers; q8_0 5e-2: a 1/127 step per block of 32).

Greedy continuations must be identical for f32 and f16 (for bf16 and q8_0, whose rounding may flip a near tie,
they are not compared).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..errors import TuneforgeError

FILE_TOLERANCE = 1e-5
DRIFT_TOLERANCE = {"f32": 1e-5, "f16": 1e-2, "bf16": 5e-2, "q8_0": 5e-2}
GREEDY_MUST_MATCH = ("f32", "f16")
GREEDY_TOKENS = 6
PROMPTS = ("Hello! Who are you?", "What is 2 plus 3?", "Write one sentence about the sea.")


class ExportVerificationError(TuneforgeError):
    """The written file does not reproduce the run's model; nothing is left in the output directory."""

    exit_code = 1


@dataclass
class Reference:
    prompts: list[list[int]]
    logits: list[torch.Tensor]
    greedy: list[list[int]]
    expected: list[torch.Tensor] = field(default_factory=list)  # logits with the file's rounding applied


@dataclass
class Row:
    prompt: int
    tokens: int
    scale: float
    file_diff: float
    drift: float
    greedy_same: bool | None  # None: not compared (bf16, q8_0)


def _logits(model, ids: list[int]) -> torch.Tensor:
    with torch.no_grad():
        return model(input_ids=torch.tensor([ids])).logits[0].float()


def _greedy(model, ids: list[int], stop_ids: list[int]) -> list[int]:
    with torch.no_grad():
        out = model.generate(input_ids=torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                             max_new_tokens=GREEDY_TOKENS, do_sample=False, eos_token_id=stop_ids,
                             pad_token_id=stop_ids[0], temperature=None, top_p=None, top_k=None)
    return out[0, len(ids):].tolist()


def reference(model, prompts: list[list[int]], stop_ids: list[int], greedy: bool) -> Reference:
    return Reference(prompts, [_logits(model, p) for p in prompts],
                     [_greedy(model, p, stop_ids) for p in prompts] if greedy else [])


def expected_after_rounding(model, plans, ref: Reference) -> None:
    """Round the model's weights in place as the file stores them, then record its logits (the model is not
    used afterwards: no second copy is made)."""
    from .tensors import stored_values

    rounded = [plan for plan in plans if plan.storage != "f32"]
    if not rounded:
        ref.expected = ref.logits
        return
    state = model.state_dict()
    with torch.no_grad():
        for plan in rounded:
            state[plan.hf_name].copy_(stored_values(plan, state[plan.hf_name]))
    ref.expected = [_logits(model, p) for p in ref.prompts]


def load_reader(directory: Path, filename: str):
    """transformers' GGUF loader: the model and the tokenizer, from the file alone."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(str(directory), gguf_file=filename, dtype=torch.float32).eval()
    tokenizer = AutoTokenizer.from_pretrained(str(directory), gguf_file=filename)
    return model, tokenizer


def compare(model, ref: Reference, stop_ids: list[int]) -> list[Row]:
    rows = []
    for i, ids in enumerate(ref.prompts):
        got = _logits(model, ids)
        scale = max(1.0, float(ref.logits[i].abs().max()))
        expected = ref.expected[i] if ref.expected else ref.logits[i]
        rows.append(Row(i, len(ids), scale, float((got - expected).abs().max()) / scale,
                        float((got - ref.logits[i]).abs().max()) / scale,
                        _greedy(model, ids, stop_ids) == ref.greedy[i] if ref.greedy else None))
    return rows


def failures(rows: list[Row], dtype: str) -> list[str]:
    bad = []
    for r in rows:
        if r.file_diff > FILE_TOLERANCE:
            bad.append(f"prompt {r.prompt}: file check {r.file_diff:.2e} > {FILE_TOLERANCE:.0e}")
        if r.drift > DRIFT_TOLERANCE[dtype]:
            bad.append(f"prompt {r.prompt}: drift {r.drift:.2e} > {DRIFT_TOLERANCE[dtype]:.0e}")
        if dtype in GREEDY_MUST_MATCH and r.greedy_same is not True:
            bad.append(f"prompt {r.prompt}: greedy continuation differs")
    return bad


def table(rows: list[Row], dtype: str) -> list[str]:
    lines = [f"independent reader (transformers GGUF loader) vs the run's model, {dtype}; differences are "
             "max|dlogit| / max(1, max|logit|)",
             f"  prompt  tokens  file check (<= {FILE_TOLERANCE:.0e})  drift (<= {DRIFT_TOLERANCE[dtype]:.0e})  "
             f"greedy {GREEDY_TOKENS} tokens"]
    for r in rows:
        lines.append(f"  {r.prompt:>6}  {r.tokens:>6}  {r.file_diff:>22.2e}  {r.drift:>15.2e}  "
                     f"{ {True: 'identical', False: 'differs', None: 'not compared'}[r.greedy_same]}")
    return lines


def tokenizer_mismatches(gguf_tokenizer, run_tokenizer, conversations: list[list[dict]],
                         prompts: list[list[int]], use_template: bool) -> list[str]:
    """The file's tokenizer must give the run's special ids and, through its embedded chat template (with the
    run's system prompt as default), the very prompt ids the run's model was compared on."""
    bad = []
    for key in ("bos_token_id", "eos_token_id", "pad_token_id"):
        mine, theirs = getattr(run_tokenizer, key, None), getattr(gguf_tokenizer, key, None)
        if mine != theirs:
            bad.append(f"{key}: run {mine}, file {theirs}")
    for i, (conversation, ids) in enumerate(zip(conversations, prompts)):
        if use_template:
            text = gguf_tokenizer.apply_chat_template(conversation, add_generation_prompt=True, tokenize=False)
            got = gguf_tokenizer(text, add_special_tokens=False)["input_ids"]
            if got != ids:
                bad.append(f"prompt {i}: the embedded chat template gives {len(got)} ids that differ from the run's")
        else:
            text = conversation[-1]["content"]
            if gguf_tokenizer(text, add_special_tokens=False)["input_ids"] != \
                    run_tokenizer(text, add_special_tokens=False)["input_ids"]:
                bad.append(f"prompt {i}: tokenized differently")
    return bad
