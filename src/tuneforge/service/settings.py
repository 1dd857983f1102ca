"""What the service is told at start: its home, address, limits, executor and security settings."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_PORT = 8750
DEFAULT_HOST = "127.0.0.1"


def default_home() -> Path:
    """``TUNEFORGE_HOME`` or ``~/.tuneforge``."""
    return Path(os.environ.get("TUNEFORGE_HOME") or Path.home() / ".tuneforge").expanduser()


@dataclass
class Settings:
    home: Path = field(default_factory=default_home)
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    max_concurrent: int | None = None  # None: one task per GPU, one on a CPU-only machine
    executor: str = "local"  # local | ray
    ray_address: str | None = None  # e.g. http://127.0.0.1:8265 (the Ray dashboard / job server)
    token: str | None = None  # required on every request when set
    allow_dirs: list[Path] = field(default_factory=list)  # where configs may point besides the home
    sample_interval: float = 2.0  # seconds between resources.jsonl rows
    poll_interval: float = 0.5  # seconds between worker passes
    stop_grace: float = 30.0  # seconds between SIGTERM and SIGKILL when a task is stopped
    upload_limit_mb: float = 512.0
    max_body_mb: float = 8.0  # any other request body (configs, chat messages): larger is a 413
    allowed_hosts: list[str] = field(default_factory=list)  # Host names besides the listening address (proxies)
    allow_remote_code: bool = False  # with a token: may a task set trust_remote_code (hub code runs on this machine)
    scan_runs: bool = True  # index runs trained from the terminal into home/runs

    def __post_init__(self) -> None:
        self.home = Path(self.home).expanduser().resolve()
        self.allow_dirs = [Path(d).expanduser().resolve() for d in self.allow_dirs]
        self.check()

    def check(self) -> None:
        """Refuse settings that cannot work, naming the flag (the console exits 2 with this message)."""
        from ..errors import ConfigError

        if not 0 <= int(self.port) <= 65535:
            raise ConfigError(f"--port {self.port}: must be within 0..65535.")
        for flag, value in (("--upload-limit-mb", self.upload_limit_mb), ("--max-body-mb", self.max_body_mb)):
            if not (isinstance(value, (int, float)) and 0 < value < float("inf")):
                raise ConfigError(f"{flag} {value}: must be a positive number of MiB.")
        for flag, value in (("--sample-interval", self.sample_interval), ("--stop-grace", self.stop_grace)):
            if not (isinstance(value, (int, float)) and 0 <= value < float("inf")):
                raise ConfigError(f"{flag} {value}: must be a number of seconds >= 0.")

    @property
    def db_path(self) -> Path:
        return self.home / "tuneforge.db"

    @property
    def runs_dir(self) -> Path:
        return self.home / "runs"

    @property
    def datasets_dir(self) -> Path:
        return self.home / "datasets"

    def make_dirs(self) -> None:
        for d in (self.home, self.runs_dir, self.datasets_dir):
            d.mkdir(parents=True, exist_ok=True)
