"""The errors the task service answers with: each carries its HTTP status and the key or field at fault."""
from __future__ import annotations


class ServiceError(Exception):
    """A request the service refuses; ``status`` is the HTTP code, ``key`` the config key or field at fault."""

    status = 400

    def __init__(self, message: str, key: str | None = None, errors: list[dict] | None = None):
        super().__init__(message)
        self.key = key
        self.errors = errors  # every problem found, [{"key", "detail"}], when there were several


class BadRequest(ServiceError):
    status = 400


class NotFound(ServiceError):
    status = 404


class Conflict(ServiceError):
    status = 409


class TooLarge(ServiceError):
    status = 413
