"""Command line: ``tuneforge train CONFIG [key=value ...]`` and the workflow tools.

Every user error (config, data, paths) ends as one message on stderr and exit code 2.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys
import textwrap

from .errors import TuneforgeError

# Sub-command modules; each has ``add_parser(subparsers)`` that sets ``func(args) -> int``.
# A new command is one module with that function and one line here.
COMMAND_MODULES: list[str] = [
    "tuneforge.tools.stats",
    "tuneforge.tools.preview",
    "tuneforge.tools.merge",
    "tuneforge.tools.chat",
    "tuneforge.tools.generate",
]


def _train_epilog() -> str:
    from .config import help_lines

    lines = ["config keys (YAML/JSON file or key=value overrides; default in brackets):", ""]
    for key, type_name, default, help_text in help_lines():
        lines.append(f"  {key} ({type_name}) [{default}]")
        lines.extend(textwrap.wrap(help_text, width=92, initial_indent="      ", subsequent_indent="      "))
    return "\n".join(lines)


def _leave_process_group() -> None:
    """In a launched process: wait until every process is done (rank 0 may still be writing the output), then
    tear the group down. Exiting with it still up once aborted a DeepSpeed process ('terminate called without
    an active exception') after a finished run."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def _cmd_train(args: argparse.Namespace) -> int:
    from .config import load_config
    from .training.run import run_training

    cfg = load_config(args.config, args.overrides)
    if getattr(args, "own_process", False) and not (cfg.load_in_4bit or cfg.load_in_8bit) \
            and "bitsandbytes" not in sys.modules:
        # peft imports bitsandbytes whenever it is installed, and that import pulls in torch's compiler
        # stack (seconds of start-up); a run that quantizes nothing never needs it. Only when this
        # process is the command itself: in-process callers (tests, notebooks) may need it later.
        sys.modules["bitsandbytes"] = None  # type: ignore[assignment]
    from .training.parallel import needs_distributed_launch

    self_launch = needs_distributed_launch(cfg)  # accelerate needs one: be that launcher
    if self_launch and not args.nproc:
        print(f"{'deepspeed' if cfg.deepspeed else 'fsdp'} needs a distributed launch: running as --nproc 1", flush=True)
    nproc = args.nproc or 1
    if nproc > 1 or self_launch:
        from .training.launch import launch_processes

        return launch_processes(args.config, args.overrides, nproc)
    summary = run_training(cfg, progress=not args.no_progress)
    _leave_process_group()
    first, last = summary.first_eval.get("eval_loss"), summary.last_eval.get("eval_loss")
    if first is not None and last is not None and os.environ.get("RANK", "0") == "0":  # rank 0 speaks
        print(f"eval_loss: {first:.4f} at start -> {last:.4f} at the end")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tuneforge", description="Fine-tune causal language models: SFT and DPO, full / LoRA / QLoRA.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    train = sub.add_parser("train", help="train from a YAML/JSON config", epilog=_train_epilog(),
                           formatter_class=argparse.RawDescriptionHelpFormatter,
                           description="Train from a config file; key=value arguments override its keys.")
    train.add_argument("config", nargs="?", help="YAML or JSON config file (optional when every key is given as key=value)")
    train.add_argument("overrides", nargs="*", metavar="key=value", help="override config keys, e.g. learning_rate=2e-4")
    train.add_argument("--nproc", type=int, default=0, help="launch this many local processes (data parallel)")
    train.add_argument("--no-progress", action="store_true", help="no progress bar (metrics.jsonl is still written)")
    train.set_defaults(func=_cmd_train)
    for name in COMMAND_MODULES:
        importlib.import_module(name).add_parser(sub)
    return parser


def quiet_libraries() -> None:
    """Library chatter (deprecation notices, weight-loading bars) hides the lines users need."""
    import logging
    import warnings

    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", message=".*kernels.*")
    logging.getLogger("bitsandbytes").setLevel(logging.ERROR)
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()
    except ImportError:  # pragma: no cover
        pass


def entry() -> None:
    """The console script: this process runs one command and exits."""
    sys.exit(main(own_process=True))


def main(argv: list[str] | None = None, own_process: bool = False) -> int:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    quiet_libraries()
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    # key=value overrides may also follow options (argparse stops collecting positionals at an option).
    stray = [x for x in extra if x.startswith("-") or "=" not in x or not hasattr(args, "overrides")]
    if stray:
        parser.error(f"unrecognized arguments: {' '.join(stray)}")
    if extra:
        args.overrides = list(args.overrides) + extra
    args.own_process = own_process
    # A config path that looks like an override ("key=value") means no file was given.
    if getattr(args, "config", None) and "=" in args.config and not os.path.exists(args.config):
        args.overrides = [args.config] + list(args.overrides)
        args.config = None
    try:
        return int(args.func(args) or 0)
    except TuneforgeError as err:
        print(f"tuneforge: error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("tuneforge: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    entry()
