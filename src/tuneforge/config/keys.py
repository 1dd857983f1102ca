"""``config_key``: one config field, its help text (the CLI help and README table) and its numeric bounds."""
from __future__ import annotations

from dataclasses import field
from typing import Any


def config_key(default: Any, help: str, *, lo: float | None = None, hi: float | None = None,
               lo_open: bool = False) -> Any:
    """A config field with its help text and optional numeric bounds (lo inclusive unless lo_open; without hi an
    integer key is capped at 2**31 - 1: beyond a key's bound a value is a typo or hostile, and would end in an
    overflow deep inside a library or a run without end)."""
    meta = {"help": help, "lo": lo, "hi": hi, "lo_open": lo_open}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=meta)
    return field(default=default, metadata=meta)
