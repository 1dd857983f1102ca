"""TensorBoard: every numeric record field as a scalar under ``output_dir/tensorboard/``
(``tensorboard --logdir OUTPUT_DIR/tensorboard``). A resumed run appends to the same directory."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ...errors import ConfigError
from ...rundir import TENSORBOARD_DIR
from .base import Tracker, TrackerRun, flat_params, metrics_of


class TensorBoardTracker(Tracker):
    name, package, extra = "tensorboard", "tensorboard", "tensorboard"

    @classmethod
    def check(cls, cfg) -> None:
        try:  # torch's writer, which needs the tensorboard package
            from torch.utils.tensorboard import SummaryWriter  # noqa: F401
        except ImportError:
            raise ConfigError("report_to: tensorboard needs the tensorboard package: pip install tensorboard "
                              f"(or {cls.pip_command()}), or remove tensorboard from report_to.") from None

    def start(self, config: dict[str, Any], resume_id: str | None) -> TrackerRun:
        from torch.utils.tensorboard import SummaryWriter

        log_dir = self.run_dir / TENSORBOARD_DIR
        self.writer = SummaryWriter(log_dir=str(log_dir))
        if resume_id is None:  # the config once per run, as a text table
            rows = "\n".join(f"| {k} | {v} |" for k, v in flat_params(config).items())
            self.writer.add_text("config", "| key | value |\n|---|---|\n" + rows, 0)
        return TrackerRun(id=TENSORBOARD_DIR, name=self.run_name(), project=self.project(), location=str(log_dir),
                          view=f"tensorboard --logdir {log_dir}")

    def log(self, record: dict[str, Any], step: int) -> None:
        for key, value in metrics_of(record).items():
            self.writer.add_scalar(key, value, step)
        self.writer.flush()

    def finish(self, summary: dict[str, Any], output_dir: Path) -> None:
        for key, value in metrics_of(summary).items():
            self.writer.add_scalar(f"summary/{key}", value, int(summary.get("steps", 0)))
        self.close()

    def close(self) -> None:
        writer, self.writer = getattr(self, "writer", None), None
        if writer is not None:
            writer.close()


TRACKER = TensorBoardTracker
