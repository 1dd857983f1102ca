"""``tuneforge generate``: answers for one prompt or a JSONL file of prompts, in batches.

Input rows may be ``{"prompt": str | messages}`` or any training row format (``data.formats.FORMATS``:
messages and ShareGPT rows lose their trailing assistant turn, so a training file can be replayed;
instruction rows keep their system and input; preference rows use their prompt).
Each output row is the input row plus ``"response"``.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ..data.formats import Message, prompt_messages, read_rows
from ..errors import ConfigError, DataError
from ..models import inference
from ..models.generation import generate_batch
from .common import add_generation_arguments, add_model_arguments, generation_kwargs, load_for_inference


def read_prompts(path: str) -> list[tuple[dict, list[Message]]]:
    """(row, the messages to answer) per row; any row format of ``data.formats.FORMATS`` is accepted."""
    out = []
    for line, row in read_rows(path):
        if not isinstance(row, dict):
            raise DataError(path, line, None, "expected a JSON object")
        out.append((row, prompt_messages(row, (path, line))))
    return out


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
