"""trackio: the resolved config as the run's config, every record's numbers at their step, the summary
(under ``summary/``) at the last step. Local: trackio's store is ``TRACKIO_DIR`` (trackio's default
~/.cache/huggingface/trackio); ``trackio show --project PROJECT`` opens its dashboard. It reports to a
Hugging Face Space only when the user sets ``TRACKIO_SPACE_ID``.

trackio continues a run by name, so the name is what ``trackers.json`` keeps as the run's id.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from .base import Tracker, TrackerRun, metrics_of


class TrackioTracker(Tracker):
    name, package, extra = "trackio", "trackio", "trackio"

    def start(self, config: dict[str, Any], resume_id: str | None) -> TrackerRun:
        import trackio
        from trackio.utils import TRACKIO_DIR

        project = self.project("TRACKIO_PROJECT")
        # System sampling off: every record already carries the memory figures.
        self.run = run = trackio.init(project=project, name=resume_id or self.run_name(),
                                      config={**config, "output_dir": str(self.run_dir)}, resume="allow",
                                      auto_log_cpu=False, auto_log_gpu=False, embed=False)
        self.last_step = 0
        return TrackerRun(id=run.name, name=run.name, project=project, location=str(TRACKIO_DIR),
                          view=f'trackio show --project "{project}"')

    def log(self, record: dict[str, Any], step: int) -> None:
        self.run.log(metrics_of(record), step=step)
        self.last_step = step

    def finish(self, summary: dict[str, Any], output_dir: Path) -> None:
        self.run.log({f"summary/{k}": v for k, v in metrics_of(summary).items()}, step=self.last_step)
        self.close()

    def close(self) -> None:
        run, self.run = getattr(self, "run", None), None
        if run is None:
            return
        from trackio import context_vars

        run.finish()
        if context_vars.current_run.get() is run:  # else trackio's exit hook finishes it a second time
            context_vars.current_run.set(None)


TRACKER = TrackioTracker
