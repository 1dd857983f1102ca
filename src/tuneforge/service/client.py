"""The task service as the commands outside it reach it: a small HTTP client of a running service (the
``tuneforge tasks`` commands, httpx), and ``read_task`` for a task of a service that need not be running
(``tuneforge serve --task``). This module is the service's face to the floors beside it (docs/architecture.md)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import httpx

from ..errors import TuneforgeError
from .settings import DEFAULT_HOST, DEFAULT_PORT

DEFAULT_SERVER = f"http://{DEFAULT_HOST}:{DEFAULT_PORT}"


class ServiceUnavailable(TuneforgeError):
    """The task service cannot be reached."""


class RequestRefused(TuneforgeError):
    """The service answered 4xx: its detail is the message (the same text ``tuneforge train`` prints)."""

    def __init__(self, status: int, detail: str):
        super().__init__(detail)
        self.status = status


class TaskNotFound(TuneforgeError):
    """No such task in the service's home (or no task database there at all)."""


def read_task(task_id: int, home: str | os.PathLike | None = None) -> dict[str, Any]:
    """A task's id, name, status and run directory as the service whose home is ``home`` (default
    $TUNEFORGE_HOME or ~/.tuneforge) recorded them: read from its database, without a running service, and
    never creating a database just to look into it."""
    from .settings import Settings, default_home
    from .store import Store

    db = Settings(home=Path(home).expanduser() if home else default_home()).db_path
    if not db.is_file():
        raise TaskNotFound(f"no task database at {db} (give --home, or set $TUNEFORGE_HOME).")
    store = Store(db)
    try:
        row = store.get_task(task_id)
    finally:
        store.close()
    if row is None:
        raise TaskNotFound(f"no such task in {db}.")
    return {k: row.get(k) for k in ("id", "name", "status", "run_dir")}


class ServiceClient:
    def __init__(self, server: str | None = None, token: str | None = None, timeout: float = 30.0):
        self.server = (server or os.environ.get("TUNEFORGE_SERVER") or DEFAULT_SERVER).rstrip("/")
        token = token or os.environ.get("TUNEFORGE_TOKEN")
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=self.server, headers=headers, timeout=timeout)

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise ServiceUnavailable(f"cannot reach the task service at {self.server} ({exc.__class__.__name__}); "
                                     "start it with 'tuneforge console' or pass --server URL.") from None
        if response.status_code >= 400:
            try:
                detail = response.json().get("detail")
            except ValueError:
                detail = None
            raise RequestRefused(response.status_code, str(detail or f"HTTP {response.status_code} from {path}"))
        return response.json()

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params={k: v for k, v in params.items() if v is not None})

    def post(self, path: str, body: Any = None) -> Any:
        return self.request("POST", path, json=body)

    def close(self) -> None:
        self._http.close()
