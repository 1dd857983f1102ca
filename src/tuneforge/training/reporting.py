"""Sinks that follow the metrics log during a run: the curves image and (optionally) TensorBoard.

``RunReporter`` is called with every logged record (main process only, from the loop's progress
hook): evaluation records redraw ``training_curves.png``; with ``report_to: tensorboard`` each
numeric field becomes a scalar. ``finish()`` draws the final image after the run's end record.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from ..config import TrainConfig
from ..errors import ConfigError
from ..plots import CURVES_FILE, plot_metrics_file

TENSORBOARD_DIR = "tensorboard"


def _summary_writer_class():
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise ConfigError("report_to='tensorboard' needs the tensorboard package: pip install tensorboard "
                          "(or pip install 'tuneforge[tensorboard]'), or set report_to: none.") from None
    return SummaryWriter


class RunReporter:
    def __init__(self, cfg: TrainConfig, output_dir: Path, metrics_path: Path):
        self.output_dir, self.metrics_path = output_dir, metrics_path
        self.title = f"{cfg.training_strategy} {cfg.method} | {cfg.model}"
        # Checked at construction (before weights load) so a missing package fails fast.
        self._writer_class = _summary_writer_class() if cfg.report_to == "tensorboard" else None
        self._writer: Any = None

    @property
    def curves_path(self) -> Path:
        return self.output_dir / CURVES_FILE

    def __call__(self, record: dict) -> None:
        if self._writer_class is not None:
            if self._writer is None:
                self._writer = self._writer_class(log_dir=str(self.output_dir / TENSORBOARD_DIR))
            step = int(record.get("step", 0))
            for key, value in record.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool) and key not in ("step", "time"):
                    self._writer.add_scalar(key, value, step)
            self._writer.flush()
        if any(key.startswith("eval_") for key in record):
            self.plot()

    def plot(self) -> None:
        plot_metrics_file(self.metrics_path, self.curves_path, self.title)

    def finish(self) -> None:
        self.plot()
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def chain(*callbacks: Callable[[dict], None] | None) -> Callable[[dict], None]:
    """One progress callback calling each given one in turn; its ``close`` closes those that have one."""
    active = [c for c in callbacks if c is not None]

    def call(record: dict) -> None:
        for c in active:
            c(record)

    closers = [c.close for c in active if hasattr(c, "close")]
    call.close = lambda: [close() for close in closers]  # type: ignore[attr-defined]
    return call
