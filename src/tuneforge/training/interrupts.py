"""SIGINT and SIGTERM: one line and a documented exit code in every phase, a resumable stop while training.

Outside training (start-up, data, model loading, writing the outputs) a signal ends the ``tuneforge``
process at once with its line and code (``os._exit``: an exception raised from a signal handler while a
C++ extension is being imported can abort the interpreter instead; nothing is half-written that a rerun
would trust: checkpoints are atomic and the run is marked finished only by its last file). While a
single-process run trains, the first signal asks the run to stop after the current optimizer step:
the checkpoint hook then saves a checkpoint and raises ``RunInterrupted``; a second signal stops at
once. With several processes a stop must be collective, so a signal stops at once there (the last
periodic checkpoint is kept). docs/reliability.md lists the exit codes.
"""
from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from typing import Callable, Iterator

from ..errors import TuneforgeError

EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}
NAMES = {signal.SIGINT: "SIGINT", signal.SIGTERM: "SIGTERM"}


class Terminated(BaseException):
    """SIGTERM, raised like KeyboardInterrupt is for SIGINT (a BaseException: nothing swallows it by accident)."""


class RunInterrupted(TuneforgeError):
    """A run stopped on a signal; the message says where it stopped and how to resume."""

    def __init__(self, signum: int, message: str):
        super().__init__(message)
        self.signum = signum
        self.exit_code = EXIT_CODES.get(signum, 130)


_requested: list[int] = []  # signals received while a graceful stop was possible


def requested() -> int | None:
    """The signal that asked the current run to stop after this step, or None."""
    return _requested[0] if _requested else None


def _exit_now(signum, frame) -> None:
    from .launch import report_error

    word = "interrupted" if signum == signal.SIGINT else "terminated"
    code = EXIT_CODES[signum]
    exc = KeyboardInterrupt(word) if signum == signal.SIGINT else Terminated(word)
    if not report_error(exc, code):  # a launched process hands it to the launcher instead
        os.write(2, f"tuneforge: {word}\n".encode())
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


def install_process_handlers() -> None:
    """For the ``tuneforge`` process itself: SIGINT and SIGTERM end it with one line (130 / 143)."""
    if threading.current_thread() is threading.main_thread():
        for s in EXIT_CODES:
            signal.signal(s, _exit_now)


def ignore_signals() -> None:
    """After the command's work is done: a late signal must not turn a finished run into a failed one."""
    if threading.current_thread() is threading.main_thread():
        for s in EXIT_CODES:
            signal.signal(s, signal.SIG_IGN)


def _raise_interrupt(signum, frame) -> None:
    if signum == signal.SIGTERM:
        raise Terminated()
    raise KeyboardInterrupt()


@contextlib.contextmanager
def graceful_stop(enabled: bool, say: Callable[[str], None]) -> Iterator[None]:
    """While training: the first SIGINT/SIGTERM requests a stop after the current step (when ``enabled``)."""
    _requested.clear()
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.getsignal(s) for s in EXIT_CODES}

    def handler(signum, frame) -> None:
        if _requested or not enabled:  # the second signal, or several processes: stop now (step named)
            _raise_interrupt(signum, frame)
        _requested.append(signum)
        say(f"\n{NAMES[signum]} received: stopping after this step and saving a checkpoint "
            "(send it again to stop at once)")

    for s in EXIT_CODES:
        signal.signal(s, handler)
    try:
        yield
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
        _requested.clear()


def signal_of(exc: BaseException) -> int:
    """The signal behind an interrupt exception."""
    if isinstance(exc, RunInterrupted):
        return exc.signum
    return signal.SIGTERM if isinstance(exc, Terminated) else signal.SIGINT


def report(exc: BaseException, where: str = "") -> int:
    """One line on stderr for an interrupt; returns the exit code."""
    signum = signal_of(exc)
    if isinstance(exc, RunInterrupted):
        text = str(exc)
    else:
        text = ("interrupted" if signum == signal.SIGINT else "terminated") + (f" {where}" if where else "")
    print(f"tuneforge: {text}", file=sys.stderr, flush=True)
    return EXIT_CODES[signum]
