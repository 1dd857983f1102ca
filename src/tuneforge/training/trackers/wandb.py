"""Weights & Biases: the resolved config as the run's config, every record's numbers at their step, the
summary in the run's summary, and the output directory as a reference artifact (the weights too with
``tracker_log_model: true``).

Nothing is sent unless the user says so: the run is refused at config time unless ``WANDB_MODE`` is
``offline`` (files under ``WANDB_DIR``, else the run directory; upload later with ``wandb sync``) or
``disabled``, or W&B credentials are set (``WANDB_API_KEY`` or a ``wandb login`` entry in ~/.netrc).
Project: ``tracker_project``, else ``WANDB_PROJECT``, else 'tuneforge'; ``WANDB_ENTITY`` is W&B's own.
"""
from __future__ import annotations

import netrc
import os
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from ...errors import ConfigError
from .base import Tracker, TrackerRun, metrics_of, model_files

LOCAL_MODES = ("offline", "dryrun", "disabled")


def has_credentials() -> bool:
    """An API key in the environment, or a ``wandb login`` entry for the configured host in ~/.netrc."""
    if os.environ.get("WANDB_API_KEY"):
        return True
    host = urlparse(os.environ.get("WANDB_BASE_URL") or "https://api.wandb.ai").hostname
    try:
        return netrc.netrc(os.environ.get("NETRC")).authenticators(host or "") is not None
    except (OSError, netrc.NetrcParseError):
        return False


class WandbTracker(Tracker):
    name, package, extra = "wandb", "wandb", "wandb"

    @classmethod
    def check(cls, cfg) -> None:
        super().check(cfg)
        if os.environ.get("WANDB_MODE", "").lower() in LOCAL_MODES or has_credentials():
            return
        raise ConfigError("report_to: wandb: no W&B credentials and WANDB_MODE is not offline, and tuneforge sends "
                          "nothing anywhere unless you configure it. Either set WANDB_MODE=offline (the run is written "
                          "to the run directory; upload it later with 'wandb sync DIR'), or log in with 'wandb login' "
                          "(or set WANDB_API_KEY) to report online.")

    def start(self, config: dict[str, Any], resume_id: str | None) -> TrackerRun:
        import wandb

        # console off: W&B would otherwise wrap stdout/stderr; stats off: the records carry memory figures.
        settings = wandb.Settings(console="off", x_disable_stats=True, silent=True, save_code=False)
        self.run = run = wandb.init(project=self.project("WANDB_PROJECT"), name=self.run_name(),
                                    id=resume_id or uuid.uuid4().hex[:12], resume="allow",
                                    dir=os.environ.get("WANDB_DIR") or str(self.run_dir), config=config,
                                    allow_val_change=True, reinit="create_new", settings=settings)
        local_dir = str(Path(run.dir).parent)  # wandb/offline-run-<time>-<id> or wandb/run-<time>-<id>
        url = None if run.offline else run.url  # (an offline run's url warns)
        return TrackerRun(id=run.id, name=run.name or self.run_name(), project=run.project, url=url,
                          location=local_dir, view=f"wandb sync {local_dir}" if run.offline else url,
                          extra={"mode": "offline" if run.offline else "online"})

    def log(self, record: dict[str, Any], step: int) -> None:
        self.run.log(metrics_of(record), step=step)

    def finish(self, summary: dict[str, Any], output_dir: Path) -> None:
        import wandb

        self.run.summary.update({**metrics_of(summary), "output_dir": str(output_dir)})
        artifact = wandb.Artifact(f"output-{self.run.id}", type="model",
                                  metadata={"output_dir": str(output_dir)})
        if self.cfg.tracker_log_model:
            for path in model_files(output_dir):
                artifact.add_file(str(path))
        else:
            artifact.add_reference(output_dir.as_uri(), checksum=False)
        self.run.log_artifact(artifact)
        self.run.finish()
        self.run = None

    def close(self) -> None:
        run, self.run = getattr(self, "run", None), None
        if run is not None:
            run.finish(exit_code=1)


TRACKER = WandbTracker
