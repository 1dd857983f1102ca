"""``tuneforge merge RUN_DIR --output DIR``: a LoRA adapter folded into its base, saved as a standalone
Hugging Face model directory (safetensors) with the tokenizer and the run's settings (``models/merge.py``).
"""
from __future__ import annotations

import argparse

from ..models import inference
from ..models.merge import merge
from .common import add_trust_argument


def _cmd(args: argparse.Namespace) -> int:
    merge(args.run_dir, args.output, dtype=args.dtype, overwrite=args.overwrite,
          trust_remote_code=args.trust_remote_code, allow_pickle_weights=args.allow_pickle_weights)
    return 0


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "merge", help="merge a LoRA run's adapter into its base model (standalone safetensors directory)",
        description="Fold the LoRA adapter of RUN_DIR into its base model and save a standalone Hugging Face model "
                    "directory (safetensors) with the tokenizer. An adapter trained with load_in_4bit/8bit is merged "
                    "into the base loaded in 16/32-bit, never into quantized weights.")
    p.add_argument("run_dir", help="a LoRA/QLoRA run's output_dir (or any PEFT adapter directory)")
    p.add_argument("--output", "-o", required=True, help="directory for the merged model")
    p.add_argument("--dtype", choices=("auto", *inference.DTYPES), default="auto",
                   help="precision of the merged weights (auto: the base checkpoint's own 16/32-bit dtype)")
    p.add_argument("--overwrite", action="store_true", help="replace a non-empty --output directory")
    add_trust_argument(p)
    p.set_defaults(func=_cmd)
