"""Which files a task submitted over HTTP may name.

Relative data paths are looked up in the service's ``datasets/`` directory, then in each ``--allow-dir``.
With a token set (the service is reachable from other machines), every path key must lie — after resolving
symlinks and ``..`` — under ``datasets/``, an ``--allow-dir``, or (for models and adapters) the service's
``runs/``; models may also be ``builtin:`` names or hub ids. So nobody can make the service read
``/etc/shadow`` or write outside its home.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..config import check_text
from ..errors import ConfigError
from ..machine_check import HUB_ID
from ..models import catalog
from .settings import Settings

DATA_KEYS = ("train_data", "validation_data")
MODEL_KEYS = ("model", "adapter_name_or_path")
SHIPPED_DEEPSPEED = {"zero2", "zero3"}


class PathRefused(ValueError):
    """A path key that the request may not use; ``key`` names it."""

    def __init__(self, key: str, message: str):
        super().__init__(message)
        self.key = key


def _under(path: Path, roots: list[Path]) -> bool:
    return any(path == root or root in path.parents for root in roots)


def _looks_like_path(value: str) -> bool:
    return value.startswith(("/", ".", "~")) or os.sep in value and not HUB_ID.match(value) or Path(value).exists()


class PathPolicy:
    def __init__(self, settings: Settings):
        self.settings = settings

    @property
    def restricted(self) -> bool:
        return bool(self.settings.token)

    def data_roots(self) -> list[Path]:
        return [self.settings.datasets_dir, *self.settings.allow_dirs]

    def model_roots(self) -> list[Path]:
        return [*self.data_roots(), self.settings.runs_dir]

    def _resolve_data(self, value: str) -> Path:
        path = Path(value).expanduser()
        if path.is_absolute():
            return path.resolve()
        for root in self.data_roots():
            if (root / path).exists():
                return (root / path).resolve()
        return (self.settings.datasets_dir / path).resolve()  # missing: the config check names the key

    def _data_value(self, key: str, value: Any) -> Any:
        """A data key: one path, or (train_data) a list of paths / ``{path, weight, max_rows}`` mappings."""
        if isinstance(value, str):
            path = self._resolve_data(value)
            self._check(key, value, path, self.data_roots())
            return str(path)
        if isinstance(value, list):
            return [self._data_value(f"{key}[{i}]", item) for i, item in enumerate(value)]
        if isinstance(value, dict) and isinstance(value.get("path"), str):
            return {**value, "path": self._data_value(f"{key}.path", value["path"])}
        return value  # not a path: the config's own validation names what is wrong with it

    def _check(self, key: str, value: str, path: Path, roots: list[Path]) -> None:
        if self.restricted and not _under(path, roots):
            names = ", ".join(str(r) for r in roots)
            raise PathRefused(key, f"{key}={value!r}: outside the directories this service may read ({names}); "
                                   "upload the file (POST /api/datasets) or start the service with --allow-dir.")

    def _model(self, key: str, value: str) -> str:
        if key == "model" and not Path(value).exists() and (
                value.startswith("builtin:") or catalog.find(value) is not None
                or (HUB_ID.match(value) and ".." not in value)):
            return value  # not a path: built into tuneforge, a gallery id or a hub id
        if not _looks_like_path(value) and not self.restricted:
            return value
        path = Path(value).expanduser().resolve()
        self._check(key, value, path, self.model_roots())
        return str(path)

    def resolve(self, raw: dict[str, Any]) -> dict[str, Any]:
        """The config with its path keys made absolute; raises PathRefused for a path the request may not use."""
        for key, value in raw.items():  # no filesystem call below may see a NUL byte or an over-long name
            try:
                check_text(str(key), value)
            except ConfigError as exc:
                raise PathRefused(str(key), str(exc)) from None
        out = dict(raw)
        for key in DATA_KEYS:
            if out.get(key):
                out[key] = self._data_value(key, out[key])
        cache = out.get("data_cache_dir")
        if isinstance(cache, str) and cache:  # the cache is written: only inside the service's home
            path = Path(cache).expanduser().resolve()
            self._check("data_cache_dir", cache, path, [self.settings.home.resolve()])
            out["data_cache_dir"] = str(path)
        for key in MODEL_KEYS:
            value = out.get(key)
            if isinstance(value, str) and value:
                out[key] = self._model(key, value)
        deepspeed = out.get("deepspeed")
        if isinstance(deepspeed, str) and deepspeed and deepspeed not in SHIPPED_DEEPSPEED:
            path = Path(deepspeed).expanduser().resolve()
            self._check("deepspeed", deepspeed, path, self.model_roots())
            out["deepspeed"] = str(path)
        resume = out.get("resume_from_checkpoint")
        if isinstance(resume, str) and resume and resume != "auto":
            path = Path(resume).expanduser().resolve()
            self._check("resume_from_checkpoint", resume, path, self.model_roots())
            out["resume_from_checkpoint"] = str(path)
        return out
