"""``tuneforge export RUN --format gguf --out DIR``: a run or model directory as a GGUF file for llama.cpp,
Ollama and LM Studio, with a Modelfile and a README, verified by reading it back before it is kept.
"""
from __future__ import annotations

import argparse

from ..errors import ConfigError
from .common import add_trust_argument

FORMATS = ("gguf",)


def _cmd(args: argparse.Namespace) -> int:
    try:
        import gguf  # noqa: F401
    except ImportError:
        raise ConfigError("GGUF export needs the 'gguf' package: pip install 'tuneforge[gguf]'.") from None
    if args.adapter_only:
        from ..export.adapter import export_adapter

        export_adapter(args.run, args.out, dtype=args.dtype or "f32", overwrite=args.overwrite,
                       trust_remote_code=args.trust_remote_code)
    else:
        from ..export.run import export_model

        export_model(args.run, args.out, dtype=args.dtype or "f16", overwrite=args.overwrite,
                     trust_remote_code=args.trust_remote_code, allow_pickle_weights=args.allow_pickle_weights)
    return 0


def add_parser(subparsers) -> None:
    from ..export import DTYPES

    p = subparsers.add_parser(
        "export", help="export a run as GGUF (llama.cpp, Ollama, LM Studio), verified by reading it back",
        description="Write RUN (a LoRA or QLoRA run -- its adapter merged into the float32 base --, a full run, a "
                    "merged directory or builtin:toy) as one GGUF file with its tokenizer and chat template (the "
                    "run's system_prompt as default), an Ollama Modelfile and a README. Before anything is kept, "
                    "transformers' GGUF loader reads the file back and its logits are compared with the run's model "
                    "(printed); a file that fails is not kept (exit 1). Supported: Llama, Qwen2/Qwen2.5, Qwen3 "
                    "and the built-in model.")
    p.add_argument("run", metavar="RUN", help="run directory, merged/full model directory, or builtin:toy")
    p.add_argument("--format", choices=FORMATS, default="gguf", help="output format (gguf)")
    p.add_argument("--out", "-o", required=True, help="output directory (must not exist or be empty)")
    p.add_argument("--dtype", choices=DTYPES, default=None,
                   help="tensor storage type: f32, f16 (default), bf16 or q8_0 (norms stay f32; q8_0 rows not a "
                        "multiple of 32 are f16). --adapter-only: default f32")
    p.add_argument("--adapter-only", action="store_true",
                   help="write the LoRA adapter alone as a llama.cpp GGUF adapter (applied to the base's GGUF)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace a non-empty --out directory (only after the new export has been verified)")
    add_trust_argument(p)
    p.set_defaults(func=_cmd)
