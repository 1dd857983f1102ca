"""``tuneforge generate``: answers for one prompt or a JSONL file of prompts, in batches.

Input rows may be ``{"prompt": str | messages}``, ``{"messages": [...]}`` (a trailing assistant turn is
dropped, so a training file can be replayed), or the service's ``{"instruction", "input"?, "system"?}``.
Each output row is the input row plus ``"response"``.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, Callable

import torch

from ..data.formats import Message, read_rows
from ..errors import ConfigError, DataError
from ..models import inference
from .common import add_generation_arguments, add_model_arguments, generation_kwargs, load_for_inference


def _from_prompt(row: dict, where: tuple[str, int]) -> list[Message]:
    prompt = row["prompt"]
    if isinstance(prompt, str):
        return [Message("user", prompt)]
    return _from_messages({"messages": prompt}, where)


def _from_messages(row: dict, where: tuple[str, int]) -> list[Message]:
    items = row["messages"]
    if not isinstance(items, list) or not all(isinstance(m, dict) and isinstance(m.get("content"), str) for m in items):
        raise DataError(where[0], where[1], "messages", "expected a list of {role, content} messages")
    msgs = [Message(str(m.get("role")), m["content"]) for m in items]
    while msgs and msgs[-1].role == "assistant":
        msgs.pop()
    if not msgs or msgs[-1].role != "user":
        raise DataError(where[0], where[1], "messages", "needs a user turn to answer")
    return msgs


def _from_instruction(row: dict, where: tuple[str, int]) -> list[Message]:
    text = str(row["instruction"]) + ("\n" + str(row["input"]) if str(row.get("input") or "").strip() else "")
    system = row.get("system")
    return ([Message("system", system)] if isinstance(system, str) and system.strip() else []) + [Message("user", text)]


# The first key a row has decides how it becomes a conversation.
ROW_READERS: dict[str, Callable[[dict, tuple[str, int]], list[Message]]] = {
    "messages": _from_messages, "prompt": _from_prompt, "instruction": _from_instruction}


def read_prompts(path: str) -> list[tuple[dict, list[Message]]]:
    out = []
    for line, row in read_rows(path):
        where = (path, line)
        if not isinstance(row, dict):
            raise DataError(path, line, None, "expected a JSON object")
        key = next((k for k in ROW_READERS if k in row), None)
        if key is None:
            raise DataError(path, line, None, f"no prompt: expected one of the fields {', '.join(ROW_READERS)}")
        out.append((row, ROW_READERS[key](row, where)))
    return out


def generate_batch(model, tokenizer, prompts: list[list[int]], device: torch.device, gen_kwargs: dict) -> list[str]:
    """Left-padded batch generation; returns the decoded new text per prompt."""
    width = max(len(p) for p in prompts)
    pad = gen_kwargs["pad_token_id"]
    ids = torch.tensor([[pad] * (width - len(p)) + p for p in prompts], device=device)
    mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in prompts], device=device)
    with torch.no_grad():
        out = model.generate(input_ids=ids, attention_mask=mask, **gen_kwargs)
    return [tokenizer.decode(row[width:], skip_special_tokens=True).strip() for row in out]


def run_generate(args: argparse.Namespace) -> list[dict[str, Any]]:
    if bool(args.prompt) == bool(args.input):
        raise ConfigError("give exactly one of --prompt TEXT or --input FILE.jsonl.")
    if args.batch_size < 1:
        raise ConfigError(f"--batch-size={args.batch_size}: must be >= 1.")
    items = [({"prompt": args.prompt}, [Message("user", args.prompt)])] if args.prompt else read_prompts(args.input)
    source, model, tokenizer, device = load_for_inference(args)
    kwargs = generation_kwargs(args, inference.stop_token_ids(model, tokenizer), tokenizer.pad_token_id)
    results = []
    for start in range(0, len(items), args.batch_size):
        chunk = items[start:start + args.batch_size]
        prompts = [inference.prompt_ids(tokenizer, source, msgs, args.system) for _, msgs in chunk]
        for (row, _), text in zip(chunk, generate_batch(model, tokenizer, prompts, device, kwargs)):
            results.append({**row, "response": text})
    return results


def _cmd(args: argparse.Namespace) -> int:
    results = run_generate(args)
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        with open(args.output, "w", encoding="utf-8") as fh:
            for row in results:
                fh.write(json.dumps(row, ensure_ascii=False) + "\n")
        print(f"{len(results)} responses written to {args.output}", file=sys.stderr)
    elif args.prompt:
        print(results[0]["response"])
    else:
        for row in results:
            print(json.dumps(row, ensure_ascii=False))
    return 0


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "generate", help="generate answers for a prompt or a JSONL file of prompts",
        description="Batch generation from a run directory (LoRA or full), a merged directory, or a base model plus "
                    "--adapter, with the run's chat template and system prompt. Input rows: {prompt}, {messages} "
                    "or {instruction, input?, system?}; output rows: the input row plus 'response'.")
    add_model_arguments(p)
    p.add_argument("--prompt", help="one user message")
    p.add_argument("--input", metavar="FILE.jsonl", help="prompts, one JSON object per line")
    p.add_argument("--output", metavar="FILE.jsonl", help="write results here (default: stdout)")
    p.add_argument("--batch-size", type=int, default=8, help="prompts generated together (default 8)")
    add_generation_arguments(p)
    p.set_defaults(func=_cmd)
