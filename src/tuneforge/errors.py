"""User-facing errors: each becomes one clear message and exit code 2, never a traceback."""
from __future__ import annotations


class TuneforgeError(Exception):
    """An error caused by the user's input (config, data, paths), reported without a traceback."""

    exit_code = 2


class ConfigError(TuneforgeError):
    """A config key or value is invalid; the message names the key and the value."""


class DataError(TuneforgeError):
    """A data row is invalid; the message names the file, the line and the field."""

    def __init__(self, path: str, line: int | None, field: str | None, why: str):
        where = f"{path}" + (f", line {line}" if line is not None else "") + (f", field '{field}'" if field else "")
        super().__init__(f"{where}: {why}")
        self.path, self.line, self.field, self.why = path, line, field, why


class TrainingAborted(TuneforgeError):
    """Training stopped on a fault it cannot recover from (e.g. repeated non-finite losses)."""

    exit_code = 3
