"""Command line: ``tuneforge train CONFIG [key=value ...]`` and the workflow tools.

Every user error (config, data, paths) ends as one message on stderr and exit code 2; the other codes
(3 numeric fault, 4 disk full, 130 SIGINT, 143 SIGTERM) are listed in docs/reliability.md.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys
import textwrap
from typing import Callable

from .errors import TuneforgeError

# Sub-command modules; each has ``add_parser(subparsers)`` that sets ``func(args) -> int``.
# A new command is one module with that function and one line here.
COMMAND_MODULES: list[str] = [
    "tuneforge.tools.stats",
    "tuneforge.tools.preview",
    "tuneforge.tools.merge",
    "tuneforge.tools.chat",
    "tuneforge.tools.generate",
    "tuneforge.tools.cache",
    "tuneforge.tools.export",
    "tuneforge.apps.cli",
    "tuneforge.service.cli",
    "tuneforge.serving.cli",
    "tuneforge.evaluation.cli",
    "tuneforge.gallery.cli",
]


def _train_epilog() -> str:
    from .config import help_groups

    lines = ["config keys (YAML/JSON file or key=value overrides; default in brackets):"]
    for group, rows in help_groups():
        lines += ["", f"{group.name}: {group.title}"]
        for key, type_name, default, help_text in rows:
            lines.append(f"  {key} ({type_name}) [{default}]")
            lines.extend(textwrap.wrap(help_text, width=92, initial_indent="      ", subsequent_indent="      "))
    return "\n".join(lines)


def _cmd_train(args: argparse.Namespace) -> int:
    from .train_command import train_command  # the one training command (also tuneforge.train and service tasks)

    return train_command(args.config, args.overrides, nproc=args.nproc, progress=not args.no_progress,
                         own_process=getattr(args, "own_process", False))


def build_parser() -> argparse.ArgumentParser:
    from . import __version__

    parser = argparse.ArgumentParser(prog="tuneforge",
                                     description="Fine-tune causal language models: SFT and DPO, full / LoRA / QLoRA.")
    parser.add_argument("--version", action="version", version=f"tuneforge {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    train = sub.add_parser("train", help="train from a YAML/JSON config", epilog=_train_epilog(),
                           formatter_class=argparse.RawDescriptionHelpFormatter,
                           description="Train from a config file; key=value arguments override its keys.")
    train.add_argument("config", nargs="?",
                       help="YAML or JSON config file (optional when every key is given as key=value)")
    train.add_argument("overrides", nargs="*", metavar="key=value",
                       help="override config keys, e.g. learning_rate=2e-4")
    train.add_argument("--nproc", type=int, default=0, help="launch this many local processes (data parallel)")
    train.add_argument("--no-progress", action="store_true",
                       help="no progress bar or per-step lines (evaluations and events are still printed; "
                            "metrics.jsonl is still written)")
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
    # DeepSpeed announces on import that it found no GPU ("Setting accelerator to CPU"), on every run where
    # it is installed, used or not. Its logger resets its level on creation; a filter survives that.
    logging.getLogger("DeepSpeed").addFilter(lambda record: "Setting accelerator to" not in record.getMessage())
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()
    except ImportError:  # pragma: no cover
        pass


def entry() -> None:
    """The console script: this process runs one command and exits (signals: one line, exit 130 / 143)."""
    sys.exit(run_in_process(lambda: main(own_process=True)))


def run_in_process(command: Callable[[], int]) -> int:
    """Run ``command`` as this process's one command (the console script, a service task): its signal
    handlers first, then its exit code; signals after it are ignored, so the code returned is the one kept."""
    from .training import interrupts

    interrupts.install_process_handlers()
    try:
        code = command()
    except (KeyboardInterrupt, interrupts.Terminated) as exc:  # raised while training (several processes)
        code = _report_interrupt(exc)
    except BrokenPipeError:
        # The reader of our output left (`tuneforge models list | head`): not an error. Point stdout at
        # /dev/null so the interpreter's final flush does not raise again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        code = 0
    interrupts.ignore_signals()
    return code


def _report_interrupt(exc: BaseException) -> int:
    from .training import interrupts
    from .training.launch import report_error

    code = interrupts.EXIT_CODES[interrupts.signal_of(exc)]
    if not report_error(exc if str(exc) else type(exc)(_interrupt_text(exc)), code):
        code = interrupts.report(exc)
    return code


def _interrupt_text(exc: BaseException) -> str:
    from .training import interrupts

    return "interrupted" if interrupts.signal_of(exc) == interrupts.signal.SIGINT else "terminated"


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
    return run_reported(lambda: args.func(args))


def run_reported(command: Callable[[], int | None]) -> int:
    """``command``'s exit code; a user error ends as one line on stderr and its exit code, an interrupt as its
    signal's code (in a launched process the launcher reports them instead)."""
    from .training import interrupts
    from .training.launch import report_error

    try:
        return int(command() or 0)
    except interrupts.RunInterrupted as err:
        return err.exit_code if report_error(err, err.exit_code) else interrupts.report(err)
    except TuneforgeError as err:
        if not report_error(err, err.exit_code):  # a launched process hands it to the launcher instead
            print(f"tuneforge: error: {err}", file=sys.stderr)
        return err.exit_code
    except (KeyboardInterrupt, interrupts.Terminated) as exc:
        return _report_interrupt(exc)


if __name__ == "__main__":
    entry()
