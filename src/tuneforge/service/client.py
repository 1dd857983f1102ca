"""A small HTTP client of the task service for the ``tuneforge tasks`` commands (httpx)."""
from __future__ import annotations

import os
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
