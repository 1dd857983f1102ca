"""What the service is told at start: its home, address, limits, executor and security settings."""
from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_PORT = 8750
DEFAULT_HOST = "127.0.0.1"


def default_home() -> Path:
    """``TUNEFORGE_HOME`` or ``~/.tuneforge``."""
    return Path(os.environ.get("TUNEFORGE_HOME") or Path.home() / ".tuneforge").expanduser()


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


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
    scan_runs: bool = True  # index runs trained from the terminal into home/runs

    def __post_init__(self) -> None:
        self.home = Path(self.home).expanduser().resolve()
        self.allow_dirs = [Path(d).expanduser().resolve() for d in self.allow_dirs]

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
