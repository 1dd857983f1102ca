"""Argument and config helpers shared by the tool sub-commands."""
from __future__ import annotations

import argparse

from ..config import TrainConfig, load_config
from ..data.formats import detect_format, read_rows
from ..data.sources import data_sources, source_files


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """``CONFIG [key=value ...]`` plus ``--data FILE --model M``, the way ``tuneforge train`` takes them."""
    parser.add_argument("config", nargs="?", help="training config (YAML/JSON), as given to 'tuneforge train'")
    parser.add_argument("overrides", nargs="*", metavar="key=value", help="override config keys, e.g. seq_length=2048")
    parser.add_argument("--data", metavar="FILE", help="data file (replaces train_data; no config file needed)")
    parser.add_argument("--model", metavar="M", help="model whose tokenizer and chat template count (replaces model)")


def _is_preference_file(train_data) -> bool:
    """Whether the first row of ``train_data`` (a file, a shard directory, or the first of a mixed list)
    is a prompt/chosen/rejected row."""
    first = source_files(data_sources(train_data)[0].path)[0]
    for _line, row in read_rows(first):
        return detect_format(row) == "preference"
    return False


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The training config the tool describes: file, overrides, then --data/--model.

    A file of prompt/chosen/rejected rows selects ``training_strategy: dpo`` unless the config names
    a strategy, so ``tuneforge stats --data prefs.jsonl`` counts pairs the way DPO training renders them.
    """
    extra: dict[str, object] = {}
    if args.data:
        extra["train_data"] = args.data
        extra["validation_data"] = None
        extra["validation_split"] = 0.0
    if args.model:
        extra["model"] = args.model
    cfg = load_config(args.config, list(args.overrides or []), **extra)
    strategy_given = any(o.split("=", 1)[0].strip() == "training_strategy" for o in args.overrides or [])
    if args.config:
        from ..config import load_raw

        strategy_given = strategy_given or "training_strategy" in load_raw(args.config)
    if not strategy_given and cfg.training_strategy == "sft" and cfg.train_data and _is_preference_file(cfg.train_data):
        cfg = load_config(args.config, list(args.overrides or []), training_strategy="dpo", **extra)
    return cfg


# -- inference tools (chat, generate) --------------------------------------------------------------------


def add_model_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", metavar="MODEL_OR_RUN_DIR",
                        help="a run's output_dir (LoRA or full), a merged directory, or a base model (with --adapter)")
    parser.add_argument("--adapter", help="a LoRA adapter directory to apply to MODEL")
    parser.add_argument("--system", default=None,
                        help="system prompt (default: the run's system_prompt, else the template's own default)")
    parser.add_argument("--dtype", choices=("auto", "float32", "bfloat16", "float16"), default="auto",
                        help="weights precision (auto: bf16 on a capable GPU, float32 otherwise)")
    parser.add_argument("--device", default=None, help="torch device (default: cuda when available, else cpu)")
    add_trust_argument(parser)


def add_trust_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--trust-remote-code", action="store_true",
                        help="allow the model's own Python code (shipped with it) to run; never taken from a run "
                             "directory's saved config")
    parser.add_argument("--allow-pickle-weights", action="store_true",
                        help="also load pickle (.bin) weights you trust (default: safetensors only; never taken from a "
                             "run directory's saved config)")


def add_generation_arguments(parser: argparse.ArgumentParser, max_new_tokens: int = 256) -> None:
    g = parser.add_argument_group("generation")
    g.add_argument("--max-new-tokens", type=int, default=max_new_tokens, help=f"default {max_new_tokens}")
    g.add_argument("--temperature", type=float, default=0.7, help="0 = greedy decoding (default 0.7)")
    g.add_argument("--top-p", type=float, default=0.9, help="nucleus sampling mass (default 0.9)")
    g.add_argument("--top-k", type=int, default=50, help="sample among this many most likely tokens (default 50)")
    g.add_argument("--repetition-penalty", type=float, default=1.0, help="> 1 discourages repeats (default 1.0)")
    g.add_argument("--seed", type=int, default=None, help="random seed for sampling")


def generation_kwargs(args: argparse.Namespace, stop_ids: list[int], pad_id: int | None) -> dict:
    from ..errors import ConfigError

    if args.max_new_tokens < 1:
        raise ConfigError(f"--max-new-tokens={args.max_new_tokens}: must be >= 1.")
    if args.temperature < 0:
        raise ConfigError(f"--temperature={args.temperature}: must be >= 0 (0 = greedy).")
    kwargs: dict = dict(max_new_tokens=args.max_new_tokens, eos_token_id=stop_ids,
                        pad_token_id=pad_id if pad_id is not None else stop_ids[0],
                        repetition_penalty=args.repetition_penalty)
    if args.temperature > 0:
        kwargs.update(do_sample=True, temperature=args.temperature, top_p=args.top_p, top_k=args.top_k)
    else:
        kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
    return kwargs


def load_for_inference(args: argparse.Namespace):
    """(source, model, tokenizer, device) for chat/generate."""
    import torch

    from ..models import inference

    source = inference.resolve_source(args.model, args.adapter, trust_remote_code=args.trust_remote_code)
    source.allow_pickle_weights = args.allow_pickle_weights
    device = torch.device(args.device) if args.device else inference.default_device()
    tokenizer = inference.load_tokenizer_for(source)
    dtype = inference.pick_dtype(args.dtype, device)
    model = inference.load_model(source, tokenizer, dtype=dtype, device=device)
    if args.seed is not None:
        torch.manual_seed(args.seed)
    return source, model, tokenizer, device
