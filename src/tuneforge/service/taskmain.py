"""The process a task runs: ``python -m tuneforge.service.taskmain RUN_DIR [--sample-interval S]``.

It is ``tuneforge train RUN_DIR/tuneforge_task.yaml`` (the same function, ``train_command.train_command``, run
the same way: messages, exit codes, signal handling; no command line is rewritten) plus two things the service
needs even when it is not running: a thread writing ``resources.jsonl`` for this process tree (so the memory
history has no gap while the service restarts, and a Ray worker node records its own GPUs), and
``task_exit.json`` with the exit code (a re-attached task is not the new service's child, so its exit code
could not be read otherwise).
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path

from ..rundir import EXIT_FILE, RESOURCES_FILE, TASK_CONFIG_FILE
from .sampler import ResourceSampler

SIGTERM_EXIT = 128 + signal.SIGTERM


def _terminate(signum, frame):  # noqa: ARG001
    # Until the command installs its own handlers (at once, in tuneforge.cli.run_in_process), a stop still ends the
    # process through the code below that records the exit code.
    raise SystemExit(SIGTERM_EXIT)


def write_exit(run_dir: Path, code: int) -> None:
    tmp = run_dir / (EXIT_FILE + ".tmp")
    tmp.write_text(json.dumps({"exit_code": code, "time": round(time.time(), 3)}))
    os.replace(tmp, run_dir / EXIT_FILE)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tuneforge.service.taskmain")
    parser.add_argument("run_dir")
    parser.add_argument("--sample-interval", type=float, default=2.0)
    args = parser.parse_args(argv)
    run_dir = Path(args.run_dir).resolve()
    (run_dir / EXIT_FILE).unlink(missing_ok=True)
    signal.signal(signal.SIGTERM, _terminate)
    sampler = ResourceSampler(os.getpid(), run_dir / RESOURCES_FILE, args.sample_interval).start()
    code = 1
    try:
        from ..cli import quiet_libraries, run_in_process, run_reported
        from ..train_command import train_command

        # The console script `tuneforge train CONFIG` minus its parser: its signal handlers, messages, exit codes,
        # and its plain step lines (loss, lr, tokens/s: stdout is the log file, not a terminal, so no bar is drawn).
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        quiet_libraries()
        config = run_dir / TASK_CONFIG_FILE  # written once by the service when it queued the task
        code = run_in_process(lambda: run_reported(lambda: train_command(config, own_process=True)))
    except SystemExit as exc:  # a stop before the command's own handlers were installed (_terminate)
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sampler.stop()
        write_exit(run_dir, code)
        sys.stdout.flush()
    return code


if __name__ == "__main__":
    sys.exit(main())
