"""``tuneforge train CONFIG --nproc N``: N local processes through PyTorch's own launcher (torchrun).

Each process runs the ordinary ``tuneforge train`` code; accelerate reads the launcher's environment
(RANK, WORLD_SIZE, MASTER_ADDR ...) and joins the process group, so the same config also runs under
``torchrun`` or ``accelerate launch`` directly (multi-node: see the README, Training on several devices).

Errors are reported once: a launched process that fails with a user error (config, data, a refused
parallelism, an interrupt) writes it to ``$TUNEFORGE_ERROR_DIR/rank<N>.json`` instead of printing it; the
launcher prints the first one and exits with its code. torchrun runs inside a small agent
(``python -m tuneforge.training.launch``) that turns its ``ChildFailedError`` report into that exit code.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from ..errors import ConfigError

ERROR_DIR_ENV = "TUNEFORGE_ERROR_DIR"
_STOP_WAIT_S = 60  # after a signal, how long the launched processes get to stop before they are killed


def launch_command(config: str | None, overrides: list[str], nproc: int) -> list[str]:
    """The torchrun command line (a list: no shell, so paths and values need no quoting)."""
    if nproc < 1:
        raise ConfigError(f"--nproc {nproc}: expected at least 1 process.")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
           "-m", "tuneforge.cli", "train"]
    if config is not None:
        cmd.append(config)
    return cmd + list(overrides)


def report_error(exc: BaseException, exit_code: int) -> bool:
    """In a launched process: hand the error to the launcher (True) instead of printing it."""
    directory = os.environ.get(ERROR_DIR_ENV)
    if not directory or "RANK" not in os.environ:
        return False
    record = {"time": time.time(), "rank": int(os.environ.get("RANK", 0)), "exit_code": exit_code,
              "message": str(exc) or exc.__class__.__name__, "kind": exc.__class__.__name__}
    path = Path(directory) / f"rank{record['rank']}.json"
    try:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(record), encoding="utf-8")
        tmp.replace(path)
    except OSError:
        pass  # the launcher has stopped listening (it already reported another process's error): stay quiet
    return True


def first_error(directory: Path) -> dict | None:
    """The earliest error a launched process reported."""
    found = []
    for path in directory.glob("rank*.json"):
        try:
            found.append(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError):
            continue
    return min(found, key=lambda r: r.get("time", 0)) if found else None


def _wait(proc: subprocess.Popen) -> int:
    """Wait for the launcher. A signal to this process is recorded (SIGTERM is passed on: it may have been sent
    to this process only; Ctrl-C reaches the whole process group), then the processes get time to stop and
    report; only after that are they killed."""
    received: list[int] = []

    def on_signal(signum, frame) -> None:
        received.append(signum)
        if signum == signal.SIGTERM:
            proc.send_signal(signal.SIGTERM)

    main_thread = threading.current_thread() is threading.main_thread()
    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)} if main_thread else {}
    try:
        while True:
            try:
                code = proc.wait(timeout=_STOP_WAIT_S if received else 0.5)
                return code if not received else (code or 128 + received[0])
            except subprocess.TimeoutExpired:
                if received:
                    proc.kill()
                    proc.wait()
                    return 128 + received[0]
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def launch_processes(config: str | None, overrides: list[str] | None, nproc: int) -> int:
    """Run the training in ``nproc`` local processes (rank 0 prints and writes); returns the exit code of the
    first process that failed (its message printed once), 0 when all succeeded."""
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // nproc)))
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    errors = Path(tempfile.mkdtemp(prefix="tuneforge-errors-"))
    env[ERROR_DIR_ENV] = str(errors)
    try:
        torchrun = launch_command(config, list(overrides or []), nproc)
        # the same torchrun arguments, run by this module's agent (torchrun's own ``run`` inside a wrapper)
        proc = subprocess.Popen([sys.executable, "-m", __name__] + torchrun[3:], env=env)
        code = _wait(proc)
        error = first_error(errors)
    finally:
        shutil.rmtree(errors, ignore_errors=True)
    if error is not None:
        interrupted = error["exit_code"] in (130, 143)
        label = "" if interrupted else "error: "
        print(f"tuneforge: {label}{error['message']}", file=sys.stderr, flush=True)
        return int(error["exit_code"])
    if code in (130, 143):
        print(f"tuneforge: {'interrupted' if code == 130 else 'terminated'}", file=sys.stderr, flush=True)
    return code


def _agent_main(argv: list[str]) -> int:
    """torchrun, with its failure report replaced by the first failed process's exit code."""
    import logging

    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.run import parse_args, run

    # torchrun's own reports (a worker failed, a signal is passed on) repeat what the workers said: the launcher
    # prints the first worker's message once instead. Its loggers carry their own levels, so set each one.
    for name in [n for n in logging.root.manager.loggerDict if n.startswith("torch.distributed")] + \
            ["torch.distributed.elastic"]:
        logging.getLogger(name).setLevel(logging.CRITICAL)
    try:
        run(parse_args(argv))
    except ChildFailedError as exc:
        _, failure = exc.get_first_failure()
        return failure.exitcode if failure.exitcode > 0 else 128 - failure.exitcode
    except SignalException as exc:
        return 128 + int(exc.sigval)
    except KeyboardInterrupt:
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(_agent_main(sys.argv[1:]))
