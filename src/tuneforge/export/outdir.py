"""The output directory: refused when it holds anything (unless ``--overwrite``), written under a temporary
name beside it and renamed into place only after verification, so it never keeps a half-written export."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

from ..errors import ConfigError


def check_target(out: Path, run_dir: Path | None, overwrite: bool) -> None:
    if run_dir is not None and out.resolve() == run_dir.resolve():
        raise ConfigError("--out must differ from the run directory.")
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {str(out)!r} is a file; it is never replaced. Choose a directory.")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise ConfigError(f"--out {str(out)!r} exists and is not empty; choose another directory or pass --overwrite "
                          "(which replaces that directory after the new export is verified).")


def staging_dir(out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = out.parent / f".{out.name}.partial-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)  # only our own leftover of this very pid
    staging.mkdir()
    return staging


def move_into_place(staging: Path, out: Path) -> None:
    """Rename the verified export to ``out``; an old ``out`` (emptiness or --overwrite checked) goes after."""
    old = None
    if out.exists():
        old = out.parent / f".{out.name}.replaced-{os.getpid()}"
        out.rename(old)
    staging.rename(out)
    if old is not None:
        shutil.rmtree(old)
