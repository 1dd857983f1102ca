"""The composed web application of ``tuneforge console``: the task service's JSON API with the web console's pages
on top. This package is the floor above the service, the console and serving (docs/architecture.md): the one place
that knows more than one of them, so none of them imports another. The service knows nothing of pages; the console
knows the service only as the object it is handed; serving reaches the service only through its client.

``create_app(settings)`` builds the app; ``apps/cli.py`` is the ``tuneforge console`` command that serves it.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from fastapi import FastAPI

    from ..service.core import TaskService
    from ..service.settings import Settings


def create_app(settings: "Settings | None" = None, service: "TaskService | None" = None, *,
               start_worker: bool = True) -> "FastAPI":
    """The service's API (``/api``, with its request guard outermost and its token check) and, when the console's
    packages are installed, the console's pages and ``/static``, all around one ``TaskService`` (kept at
    ``app.state.service``). The worker starts with the app and stops with it."""
    from ..service.api import create_api

    app = create_api(settings, service, start_worker=start_worker)
    try:
        from ..console import mount
    except ImportError:  # the console is optional: the API works without its pages
        return app
    mount(app, app.state.service)  # the guard and the token check wrap these routes too (app-wide middleware)
    return app


__all__ = ["create_app"]
