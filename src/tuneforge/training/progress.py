"""``progress.json`` in the run directory: where training is, rewritten after every optimizer step.

``metrics.jsonl`` only grows at ``logging_steps``; a monitoring page that read progress from it sat at 0 % for
the first window and showed a stale step after a stop. This small file (step, total, epoch, the measured time
per step) is replaced atomically at most every ``MIN_INTERVAL_S`` and always at the last step, so its cost does
not depend on the step rate. The service reads it (``rundir.read_progress``) for the progress bar and the ETA.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

from ..rundir import PROGRESS_FILE
MIN_INTERVAL_S = 0.5
RECENT_STEPS = 20  # the step time is the mean of this many recent steps (a resume or an epoch start fades out)


class ProgressFile:
    """Writes ``progress.json`` for one run (main process only)."""

    def __init__(self, run_dir: Path, total_steps: int):
        self.path = Path(run_dir) / PROGRESS_FILE
        self.total_steps = total_steps
        self.durations: list[float] = []
        self.written = 0.0

    def step_done(self, step: int, epoch: float, seconds: float) -> None:
        self.durations = (self.durations + [seconds])[-RECENT_STEPS:]
        now = time.time()
        if now - self.written < MIN_INTERVAL_S and step < self.total_steps:
            return
        self.written = now
        record = {"step": step, "total_steps": self.total_steps, "epoch": round(epoch, 4), "time": round(now, 3),
                  "step_seconds": round(sum(self.durations) / len(self.durations), 4)}
        tmp = self.path.with_name(PROGRESS_FILE + ".tmp")
        try:
            tmp.write_text(json.dumps(record), encoding="utf-8")
            os.replace(tmp, self.path)
        except OSError:  # a full disk must not stop training for the sake of a progress bar
            pass

