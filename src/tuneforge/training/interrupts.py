"""SIGINT and SIGTERM: one line and a documented exit code in every phase, a resumable stop while training.

Outside training (start-up, data, model loading) a signal stops the process at once. While a
single-process run trains, the first signal asks the run to stop after the current optimizer step:
the checkpoint hook then saves a checkpoint and raises ``RunInterrupted``; a second signal stops at
once. With several processes a stop must be collective, so a signal stops at once there (the last
periodic checkpoint is kept). docs/reliability.md lists the exit codes.
"""
from __future__ import annotations

import contextlib
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


def _raise_terminated(signum, frame) -> None:
    raise Terminated()


def install_process_handlers() -> None:
    """For the ``tuneforge`` process itself: SIGTERM raises ``Terminated`` so it ends with one line (143)."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _raise_terminated)


@contextlib.contextmanager
def graceful_stop(enabled: bool, say: Callable[[str], None]) -> Iterator[None]:
    """While training: the first SIGINT/SIGTERM requests a stop after the current step (when ``enabled``)."""
    _requested.clear()
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {s: signal.getsignal(s) for s in EXIT_CODES}

    def handler(signum, frame) -> None:
        if _requested:  # the second signal: stop now
            if signum == signal.SIGTERM:
                raise Terminated()
            raise KeyboardInterrupt()
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
