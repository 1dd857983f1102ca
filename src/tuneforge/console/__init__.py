"""The web console: server-rendered pages (Jinja2) over the task service's JSON API.

``mount(app, service)`` adds the page routes and ``/static`` (hand-written JS/CSS and the vendored uPlot chart
library; nothing is loaded from a CDN, so the console works offline) to the service's FastAPI app
(``tuneforge.apps.create_app`` composes them). The pages call the service object they are handed (kept at
``app.state.service``; never an import of ``tuneforge.service``) for their first render and then follow the
``/api`` routes and the task event stream live, so all state stays on the server: a refresh or a second tab
loses nothing.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

STATIC_DIR = Path(__file__).parent / "static"


def mount(app: FastAPI, service: Any) -> None:
    """Add the console's pages and its static files to ``app`` (the service app, API under ``/api``); the pages
    call ``service`` (the task service object)."""
    from .pages import PageError, page_error_handler, router

    app.state.service = service

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.include_router(router)
    app.add_exception_handler(PageError, page_error_handler)


__all__ = ["mount", "STATIC_DIR"]
