"""What every HTTP server tuneforge starts (the console and ``tuneforge serve``) checks before a route runs.

Three rules, in one ASGI middleware so no route can forget them:

* **Host.** A server bound to one address answers only requests whose ``Host`` names that address (for a
  loopback server: ``127.0.0.1``, ``localhost``, ``::1``), plus the names given with ``--allowed-host`` (a
  proxy's name). This defeats DNS rebinding: a page on ``evil.example`` whose name later resolves to
  127.0.0.1 still sends ``Host: evil.example``. A server bound to every address (0.0.0.0) requires a token,
  so it accepts any name unless ``--allowed-host`` narrows it.
* **Same origin for state changes.** POST, PUT, PATCH and DELETE from a browser must come from the server's
  own pages: ``Sec-Fetch-Site`` must be ``same-origin`` (or ``none``: typed by the user), and ``Origin`` (or,
  without it, ``Referer``) must name the host the request was sent to. Any web page can make a browser send
  a form POST or a ``no-cors`` fetch to 127.0.0.1; the browser always labels it, and that label is what is
  checked. Requests with no such headers come from programs (curl, httpx, the ``tuneforge tasks`` client)
  and are not affected; neither are requests carrying ``Authorization`` or ``X-Tuneforge-Token``, headers a
  cross-site page cannot add without a CORS preflight that these servers never grant.
* **Body size.** A body over the route's limit is refused with 413 naming the limit: at once when
  ``Content-Length`` says so, otherwise as soon as the bytes received pass the limit, so nothing larger is
  ever read into memory or onto disk.
"""
from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Callable
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.responses import Response

UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "::1"})
WILDCARD_ADDRESSES = frozenset({"0.0.0.0", "::", ""})
TRUSTED_SITES = frozenset({"same-origin", "none"})  # Sec-Fetch-Site values of the server's own pages
CLIENT_HEADERS = ("authorization", "x-tuneforge-token")  # need a CORS preflight to be sent cross-site

Refuse = Callable[[int, str, "str | None"], Response]  # (status, message, header or field at fault)


class BodyTooLarge(HTTPException):
    """Raised from the body stream once a request passes its limit; FastAPI re-raises HTTPExceptions from
    body parsing, so every route answers 413 with this message."""

    def __init__(self, limit: int):
        super().__init__(413, f"request body: over the limit of {format_bytes(limit)} for this route.")
        self.limit = limit


def format_bytes(n: int) -> str:
    mib = n / 2**20
    return f"{mib:g} MiB" if mib >= 1 else f"{n / 1024:g} KiB"


def host_name(value: str) -> str | None:
    """The name part of a ``Host`` header or of a URL's netloc, lower-cased; None when it cannot be read."""
    value = value.strip().lower()
    if not value or any(c in value for c in "/@ \\"):
        return None
    if value.startswith("["):  # [::1]:8750
        end = value.find("]")
        return value[1:end] if end > 0 else None
    name = value.rsplit(":", 1)[0] if value.count(":") == 1 else value
    return name or None


def is_loopback(host: str) -> bool:
    """Whether a server listening on ``host`` is reachable from this machine only (one rule for every server
    tuneforge starts: any other address needs a token or an API key)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def allowed_hosts(listen_host: str, extra: list[str] | tuple[str, ...] = ()) -> frozenset[str] | None:
    """The ``Host`` names a server listening on ``listen_host`` answers; None = any (a wildcard bind)."""
    extra_names = {n for n in (host_name(h) for h in extra) if n}
    if listen_host.strip("[]") in WILDCARD_ADDRESSES:
        return frozenset(extra_names) if extra_names else None
    names = {listen_host.strip("[]").lower()} | extra_names
    try:
        if ipaddress.ip_address(listen_host.strip("[]")).is_loopback:
            names |= LOOPBACK_NAMES
    except ValueError:
        if listen_host == "localhost":
            names |= LOOPBACK_NAMES
    return frozenset(names)


def cross_site_problem(method: str, headers: Headers) -> str | None:
    """Why a state-changing browser request did not come from the server's own pages (None: it did, or it
    is not a browser request, or it does not change state)."""
    if method not in UNSAFE_METHODS or any(h in headers for h in CLIENT_HEADERS):
        return None
    site = headers.get("sec-fetch-site")
    if site is not None and site.lower() not in TRUSTED_SITES:
        return f"cross-site request refused: Sec-Fetch-Site is {site!r}; only this server's own pages may change state."
    for header in ("origin", "referer"):
        value = headers.get(header)
        if value is None:
            continue
        netloc = urlsplit(value).netloc if value != "null" else ""
        if not netloc or netloc.lower() != headers.get("host", "").lower():
            return (f"cross-site request refused: {header.capitalize()} {value[:200]!r} is not this server "
                    f"({headers.get('host', '')!r}); only this server's own pages may change state.")
        return None  # Origin decides when present; Referer only stands in for it
    return None


@dataclass
class GuardSettings:
    hosts: frozenset[str] | None  # None: any Host
    body_limit: Callable[[str], int]  # path -> largest body in bytes
    refuse: Refuse


class RequestGuard:
    """ASGI middleware applying the three rules of this module (see its docstring)."""

    def __init__(self, app, settings: GuardSettings):
        self.app = app
        self.settings = settings

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = Headers(scope=scope)
        refusal = self._refusal(scope, headers)
        if refusal is not None:
            return await refusal(scope, receive, send)
        limit = self.settings.body_limit(scope["path"])
        started = False

        async def counted_receive() -> dict:
            message = await receive()
            if message["type"] == "http.request":
                counted_receive.total += len(message.get("body", b""))  # type: ignore[attr-defined]
                if counted_receive.total > limit:  # type: ignore[attr-defined]
                    raise BodyTooLarge(limit)
            return message

        counted_receive.total = 0  # type: ignore[attr-defined]

        async def tracked_send(message: dict) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted_receive, tracked_send)
        except BodyTooLarge as exc:  # raised where no exception handler turned it into a response
            if started:
                raise
            await self.settings.refuse(413, str(exc.detail), "body")(scope, receive, send)

    def _refusal(self, scope, headers: Headers) -> Response | None:
        s = self.settings
        host = headers.get("host")
        if s.hosts is not None and host_name(host or "") not in s.hosts:
            names = ", ".join(sorted(s.hosts))
            return s.refuse(403, f"Host {(host or '')[:200]!r} is not this server's address ({names}); "
                                 "behind a proxy, start the server with --allowed-host NAME.", "Host")
        problem = cross_site_problem(scope["method"], headers)
        if problem:
            return s.refuse(403, problem, "Origin")
        length = headers.get("content-length")
        if length is not None:
            limit = s.body_limit(scope["path"])
            if not length.isdigit():
                return s.refuse(400, f"Content-Length {length[:40]!r}: not a number of bytes.", "Content-Length")
            if int(length) > limit:
                return s.refuse(413, f"request body: {int(length)} bytes is over the limit of {format_bytes(limit)} "
                                     "for this route.", "body")
        return None

